/**
 * Destruction of kits with a witness (issue 21, ADR 0064). At a site: kits returned, expired, recalled, or rejected by
 * the sponsor after an excursion, shipped to that site and not destroyed yet; at the depot (site null, the depot
 * manager): kits never shipped nor dispensed. The method enters the payload as its salted hash. A second signed-in
 * person, never the recorder, witnesses it later in their own session (once). Destruction is not trial data: it goes
 * on under a database lock (close-out).
 */
import { randomUUID } from "node:crypto";
import { and, desc, eq, inArray, isNull, sql } from "drizzle-orm";
import { z } from "zod";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import {
  sites,
  supplyDestructionKits,
  supplyDestructions,
  supplyDestructionWitnesses,
  supplyKits,
  users,
} from "../../db/schema/index.ts";
import { reauthenticate, type RequestMeta } from "../accounts/auth.server.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { auditActor } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import { type Problem, ServiceError } from "../platform/errors.server.ts";
import { can, type Principal } from "../platform/permissions.server.ts";
import { todayIn } from "../records/records.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { kitFacts } from "./kit-facts.server.ts";
import { type KitFacts, kitState } from "./kit-state.ts";
import {
  kitStateWords,
  resolveKitNumbers,
  type RowSeal,
  rowSeals,
  type SupplySite,
  siteByCode,
} from "./inventory.server.ts";

export const METHOD_MAX = 500;

/** A study-wide member (or a platform admin): sees the depot's destructions; a site's people see their site's. */
const studyWide = (p: Principal, studyId: string) =>
  p.platformAdmin || p.memberships.some((m) => m.studyId === studyId && m.siteId === null);
const mayView = (p: Principal, studyId: string, siteId: string | null) =>
  can(p, "supply.view", { studyId, siteId }) && (siteId !== null || studyWide(p, studyId));

/** Why this kit cannot be destroyed here (null: it can), in words without kit type or lot. */
export function destructionRefusal(f: KitFacts, site: SupplySite | null, today: string): string | null {
  const k = `kit ${f.number}`;
  if (f.destroyed) return `${k} has already been destroyed`;
  if (site === null) {
    if (f.shipment) return `${k} was shipped to site ${f.shipment.siteCode}: destroy it there`;
    return null;
  }
  if (!f.shipment || f.shipment.siteId !== site.id) return `${k} is not at site ${site.code}`;
  const s = kitState(f, today);
  if (s.location === "in_transit") return `${k} has not been received at site ${site.code} yet`;
  if (s.location === "quarantined") return `${k} is quarantined: the sponsor decides first (release or destroy)`;
  if (s.location === "dispensed") return `${k} is dispensed and not returned yet: record its return first`;
  if (s.location === "returned" || s.location === "rejected" || s.recalled || s.expired) return null;
  const only = "only returned, expired, recalled or rejected kits are destroyed";
  return `${k} is ${kitStateWords(f, today)} and usable: ${only}`;
}

/** Record a destruction of `kits` at `site` (null: at the depot) by `method`; a different person witnesses it. */
export async function recordDestruction(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  input: { site: string | null; kits: unknown[]; method: unknown },
): Promise<{ destructionId: string }> {
  const study = await getStudyOrThrow(ctx, studyCode);
  const site = input.site ? await siteByCode(ctx.db, study.id, input.site) : null;
  const scope = { studyId: study.id, siteId: site?.id ?? null };
  if (!can(principal, "supply.destroy", scope))
    throw new ServiceError("forbidden", `not permitted: supply.destroy${site ? ` at site ${site.code}` : ""}`);
  // At the depot: the depot's own people (study-wide supply.manage), not a site's pharmacist.
  if (!site && !can(principal, "supply.manage", { studyId: study.id }))
    throw new ServiceError("forbidden", "not permitted: only the depot manager records a destruction at the depot");
  if (principal.kind !== "user" || !principal.userId)
    throw new ServiceError("forbidden", "a destruction is recorded by a signed-in person, not an API token");
  const method = String(input.method ?? "").trim();
  if (!method) throw new ServiceError("invalid", "method: say how the kits were destroyed", "method");
  if (method.length > METHOD_MAX)
    throw new ServiceError("invalid", `method: at most ${METHOD_MAX} characters`, "method");
  // Typed kit numbers or scanned labels (resolveKitNumbers), every unreadable or unknown one listed.
  const numbers = [...new Set(await resolveKitNumbers(ctx.db, study, input.kits ?? [], "kits"))].sort();
  if (!numbers.length) throw new ServiceError("invalid", "kits: choose the kits destroyed", "kits");
  if (numbers.length > 2000) throw new ServiceError("invalid", "kits: at most 2000 kits at once", "kits");
  const today = todayIn(site?.timeZone ?? "UTC");
  const userId = principal.userId;
  return ctx.db.transaction(async (tx) => {
    const found = await tx
      .select({ id: supplyKits.id, number: supplyKits.number })
      .from(supplyKits)
      .where(and(eq(supplyKits.studyId, study.id), inArray(supplyKits.number, numbers)));
    const unknown = numbers.filter((n) => !found.some((k) => k.number === n));
    if (unknown.length)
      throw new ServiceError("not_found", `kits: there is no kit ${unknown.join(", ")} in ${study.code}`, "kits");
    const ids = found.map((k) => k.id).sort();
    await tx.execute(
      sql`SELECT id FROM supply_kits WHERE id IN (${sql.join(
        ids.map((i) => sql`${i}`),
        sql`, `,
      )}) ORDER BY id FOR UPDATE`,
    );
    const facts = await kitFacts(tx, study.id, { kitIds: ids });
    const problems: Problem[] = [];
    for (const f of facts) {
      const why = destructionRefusal(f, site, today);
      if (why) problems.push({ field: "kits", message: why });
    }
    if (problems.length) throw new ServiceError("conflict", problems[0].message, "kits", problems);
    const id = randomUUID();
    const e = await appendEntry(tx, ctx.crypto, study, "supply.destruction_recorded", (salt) => ({
      destruction: id,
      site: site?.code ?? null,
      kits: numbers,
      methodHash: saltedTextHash(ctx.crypto, salt, method),
      actor: userId,
    }));
    await tx.insert(supplyDestructions).values({
      id,
      studyId: study.id,
      siteId: site?.id ?? null,
      method,
      actorUserId: userId,
      entryId: e.id,
    });
    await tx
      .insert(supplyDestructionKits)
      .values(ids.map((kitId) => ({ studyId: study.id, destructionId: id, kitId })));
    await audit(tx, {
      action: "supply.destruction_recorded",
      ...auditActor(principal),
      studyId: study.id,
      siteId: site?.id ?? null,
      detail: { destruction: id, site: site?.code ?? null, kits: numbers, entry: e.id },
    });
    return { destructionId: id };
  });
}

export const WitnessInput = z.object({
  password: z.string().min(1, "enter your password"),
  code: z.string().trim().optional(),
});

/**
 * Witness someone else's destruction (supply.witness at its site; once; never the recorder), re-authenticated with
 * the witness's own password (and authenticator code when they use one) in their own session: a recorder at the
 * witness's unlocked computer cannot sign for them.
 */
export async function witnessDestruction(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  destructionId: string,
  input: { password?: unknown; code?: unknown },
  meta: RequestMeta,
): Promise<{ witnessId: string }> {
  const r = WitnessInput.safeParse({
    password: typeof input?.password === "string" ? input.password : "",
    code: typeof input?.code === "string" && input.code.trim() ? input.code : undefined,
  });
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = String(issue.path[0] ?? "password");
    throw new ServiceError("invalid", `${field === "code" ? "authenticator code" : field}: ${issue.message}`, field);
  }
  const study = await getStudyOrThrow(ctx, studyCode);
  const idText = String(destructionId ?? "");
  if (!/^[0-9a-f-]{36}$/i.test(idText))
    throw new ServiceError("not_found", "destruction: there is no such destruction", "destruction");
  const [d] = await ctx.db
    .select({ id: supplyDestructions.id, siteId: supplyDestructions.siteId, recorder: supplyDestructions.actorUserId })
    .from(supplyDestructions)
    .where(and(eq(supplyDestructions.studyId, study.id), eq(supplyDestructions.id, idText)));
  if (!d || !mayView(principal, study.id, d.siteId))
    throw new ServiceError("not_found", "destruction: there is no such destruction", "destruction");
  if (!can(principal, "supply.witness", { studyId: study.id, siteId: d.siteId }))
    throw new ServiceError("forbidden", "not permitted: supply.witness", "destruction");
  if (principal.kind !== "user" || !principal.userId)
    throw new ServiceError("forbidden", "a destruction is witnessed by a signed-in person, not an API token");
  if (principal.userId === d.recorder)
    throw new ServiceError(
      "forbidden",
      "the witness must be someone other than the person who recorded the destruction",
      "destruction",
    );
  const userId = principal.userId;
  await reauthenticate(ctx, userId, r.data.password, r.data.code, meta);
  return ctx.db.transaction(async (tx) => {
    await tx.execute(sql`SELECT id FROM supply_destructions WHERE id = ${d.id} FOR UPDATE`);
    const [prev] = await tx
      .select({ at: supplyDestructionWitnesses.createdAt, by: users.fullName })
      .from(supplyDestructionWitnesses)
      .leftJoin(users, eq(users.id, supplyDestructionWitnesses.actorUserId))
      .where(eq(supplyDestructionWitnesses.destructionId, d.id));
    if (prev)
      throw new ServiceError(
        "conflict",
        `this destruction was already witnessed by ${prev.by ?? "someone"} on ${prev.at.toISOString().slice(0, 10)}`,
        "destruction",
      );
    const id = randomUUID();
    const e = await appendEntry(tx, ctx.crypto, study, "supply.destruction_witnessed", {
      witness: id,
      destruction: d.id,
      actor: userId,
    });
    await tx.insert(supplyDestructionWitnesses).values({
      id,
      studyId: study.id,
      destructionId: d.id,
      actorUserId: userId,
      entryId: e.id,
    });
    await audit(tx, {
      action: "supply.destruction_witnessed",
      ...auditActor(principal),
      studyId: study.id,
      siteId: d.siteId,
      detail: { witness: id, destruction: d.id, entry: e.id },
    });
    return { witnessId: id };
  });
}

export interface DestructionRow {
  id: string;
  site: string | null;
  method: string;
  kits: string[];
  recordedBy: string;
  recordedAt: Date;
  witnessedBy: string | null;
  witnessedAt: Date | null;
  /** The principal may witness it: permitted, not the recorder, not witnessed yet. */
  canWitness: boolean;
  /** The destruction row (site, kits, method, recorder) against its entry, and the witness row against its own. */
  seal: RowSeal;
  witnessSeal: RowSeal | null;
}

/** Destructions the principal may see (site-scoped), newest first; `pendingOnly` keeps those without a witness. */
export async function destructionsView(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  opts: { pendingOnly?: boolean } = {},
): Promise<DestructionRow[]> {
  const study = await getStudyOrThrow(ctx, studyCode);
  const rows = await ctx.db
    .select({
      id: supplyDestructions.id,
      siteId: supplyDestructions.siteId,
      site: sites.code,
      method: supplyDestructions.method,
      recorder: supplyDestructions.actorUserId,
      recordedBy: users.fullName,
      recordedAt: supplyDestructions.createdAt,
      witnessId: supplyDestructionWitnesses.id,
      witnessUser: supplyDestructionWitnesses.actorUserId,
      witnessedAt: supplyDestructionWitnesses.createdAt,
    })
    .from(supplyDestructions)
    .leftJoin(sites, eq(sites.id, supplyDestructions.siteId))
    .leftJoin(users, eq(users.id, supplyDestructions.actorUserId))
    .leftJoin(supplyDestructionWitnesses, eq(supplyDestructionWitnesses.destructionId, supplyDestructions.id))
    .where(
      opts.pendingOnly
        ? and(eq(supplyDestructions.studyId, study.id), isNull(supplyDestructionWitnesses.id))
        : eq(supplyDestructions.studyId, study.id),
    )
    .orderBy(desc(supplyDestructions.createdAt));
  const visible = rows.filter((r) => mayView(principal, study.id, r.siteId));
  if (!visible.length) return [];
  const kits = await ctx.db
    .select({ destructionId: supplyDestructionKits.destructionId, number: supplyKits.number })
    .from(supplyDestructionKits)
    .innerJoin(supplyKits, eq(supplyKits.id, supplyDestructionKits.kitId))
    .where(
      inArray(
        supplyDestructionKits.destructionId,
        visible.map((r) => r.id),
      ),
    );
  const witnessIds = visible.map((r) => r.witnessUser).filter((x): x is string => Boolean(x));
  const witnesses = witnessIds.length
    ? await ctx.db.select({ id: users.id, name: users.fullName }).from(users).where(inArray(users.id, witnessIds))
    : [];
  const kitsOf = (id: string) =>
    kits
      .filter((k) => k.destructionId === id)
      .map((k) => k.number)
      .sort();
  const siteOf = new Map(visible.map((r) => [r.id, r.site]));
  const seals = await rowSeals(
    ctx.db,
    ctx,
    "supply_destructions",
    visible.map((r) => r.id),
    (row, p) => {
      const id = String(row.id);
      const sealed = Array.isArray(p.kits) ? [...p.kits].map(String).sort() : [];
      return [
        ...((p.site ?? null) === (siteOf.get(id) ?? null) ? [] : ["site"]),
        ...(sealed.join(",") === kitsOf(id).join(",") ? [] : ["kits"]),
      ];
    },
  );
  const witnessSeals = await rowSeals(
    ctx.db,
    ctx,
    "supply_destruction_witnesses",
    visible.map((r) => r.witnessId).filter((x): x is string => Boolean(x)),
  );
  const missing: RowSeal = { matches: false, words: "does not match its sealed entry: row", differs: ["row"] };
  return visible.map((r) => ({
    id: r.id,
    site: r.site,
    method: r.method,
    kits: kitsOf(r.id),
    seal: seals.get(r.id) ?? missing,
    witnessSeal: r.witnessId ? (witnessSeals.get(r.witnessId) ?? missing) : null,
    recordedBy: r.recordedBy ?? "",
    recordedAt: r.recordedAt,
    witnessedBy: r.witnessUser ? (witnesses.find((w) => w.id === r.witnessUser)?.name ?? "") : null,
    witnessedAt: r.witnessedAt,
    canWitness:
      r.witnessId === null &&
      principal.kind === "user" &&
      principal.userId !== r.recorder &&
      can(principal, "supply.witness", { studyId: study.id, siteId: r.siteId }),
  }));
}

/** The destructions still waiting for a witness. */
export const pendingDestructions = (ctx: AppContext, principal: Principal, studyCode: string) =>
  destructionsView(ctx, principal, studyCode, { pendingOnly: true });

/** Kits the principal may destroy at `site` (null: the depot) today, by number with their state in words. */
export async function destructibleKits(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  siteCode: string | null,
): Promise<{ number: string; state: string }[]> {
  const study = await getStudyOrThrow(ctx, studyCode);
  const site = siteCode ? await siteByCode(ctx.db, study.id, siteCode) : null;
  if (!can(principal, "supply.destroy", { studyId: study.id, siteId: site?.id ?? null })) return [];
  if (!site && !can(principal, "supply.manage", { studyId: study.id })) return [];
  const today = todayIn(site?.timeZone ?? "UTC");
  const facts = await kitFacts(ctx.db, study.id, site ? { siteId: site.id } : { all: true });
  return facts
    .filter((f) => destructionRefusal(f, site, today) === null)
    .map((f) => ({ number: f.number, state: kitStateWords(f, today) }));
}
