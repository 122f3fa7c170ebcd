/** Studies and sites. Each creation is a ledger entry written in the same transaction. */
import { z } from "zod";
import {
  findSiteById,
  findStudyByCode,
  insertSite,
  insertStudy,
  listSites,
  listStudies,
} from "../../db/queries/studies.ts";
import type { AppContext } from "../platform/context.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import { ServiceError, isUniqueViolation } from "../platform/errors.server.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { visibleStudyIds, type Principal } from "../platform/permissions.server.ts";
import { isTimeZone } from "../platform/time-zone.ts";

export const codeSchema = z
  .string()
  .trim()
  .regex(/^[A-Z0-9][A-Z0-9_-]{0,31}$/, "use 1-32 capital letters, digits, - or _ (starting with a letter or digit)");

/** A site's clock: an IANA time zone name ("Europe/Berlin"); UTC when not given (ADR 0030). */
export const timeZoneSchema = z
  .string()
  .trim()
  .optional()
  .transform((s) => s || "UTC")
  .refine(isTimeZone, "choose a time zone from the list (an IANA name such as Europe/Berlin)");

export const CreateStudyInput = z.object({
  code: codeSchema,
  title: z.string().trim().min(1, "title is required").max(500),
  sites: z
    .array(z.object({ code: codeSchema, name: z.string().trim().min(1).max(200), timeZone: timeZoneSchema }))
    .min(1, "at least one site is required"),
});

export async function createStudy(ctx: AppContext, input: z.input<typeof CreateStudyInput>, actorId: string | null) {
  const parsed = CreateStudyInput.safeParse(input);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new ServiceError("invalid", `${i.path.join(".")}: ${i.message}`, String(i.path[0] ?? ""));
  }
  const v = parsed.data;
  const dup = new Set<string>();
  for (const s of v.sites) {
    if (dup.has(s.code)) throw new ServiceError("invalid", `site ${s.code} is listed twice`, "sites");
    dup.add(s.code);
  }
  try {
    return await ctx.db.transaction(async (tx) => {
      const study = await insertStudy(tx, { code: v.code, title: v.title });
      await appendEntry(tx, ctx.crypto, study, "study.registered", (salt) => ({
        study: study.code,
        titleHash: saltedTextHash(ctx.crypto, salt, study.title),
        actor: actorId,
      }));
      const sites = [];
      for (const s of v.sites) {
        const site = await insertSite(tx, { studyId: study.id, code: s.code, name: s.name, timeZone: s.timeZone });
        await appendEntry(tx, ctx.crypto, study, "site.added", {
          site: site.code,
          timeZone: site.timeZone,
          actor: actorId,
        });
        sites.push(site);
      }
      await audit(tx, {
        action: "study.create",
        actorUserId: actorId,
        studyId: study.id,
        detail: { code: study.code },
      });
      return { study, sites };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw new ServiceError("conflict", `study ${v.code} already exists`, "code");
    throw err;
  }
}

/** The study with this protocol code, or null. */
export async function findStudy(ctx: AppContext, code: string) {
  return findStudyByCode(ctx.db, code);
}

/** The studies this principal has a role in (every study for a platform admin). */
export async function visibleStudies(ctx: AppContext, principal: Principal) {
  return listStudies(ctx.db, visibleStudyIds(principal));
}

export async function getStudyOrThrow(ctx: AppContext, code: string) {
  const study = await findStudyByCode(ctx.db, code);
  if (!study) throw new ServiceError("not_found", `no study ${code}`, "study");
  return study;
}

export async function studySites(ctx: AppContext, studyId: string) {
  return listSites(ctx.db, studyId);
}

/** A site's time zone (IANA name; "UTC" for an unknown site): the clock its CRF datetimes are entered on. */
export async function siteTimeZone(ctx: AppContext, siteId: string): Promise<string> {
  return (await findSiteById(ctx.db, siteId))?.timeZone ?? "UTC";
}
