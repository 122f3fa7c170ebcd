/**
 * Shipments of kits from a depot to a site, their receipt and the sponsor's decision on an excursion (issue 21,
 * ADR 0058). The depot manager sends kits at the depot of released, unrecalled, unexpired lots (by number or "n kits
 * of lot X"); the site receives the shipment once, with the lowest and highest temperature in transit and/or the
 * logger's CSV file (its SHA-256 sealed); a temperature outside any of its kits' lots' storage range, a logger reading
 * outside it or the receiver's own word makes it an excursion: its kits are quarantined (kit-state.ts) and the sponsor
 * is told through the outbox; the sponsor releases them or has them destroyed, with a reason, once. Every write is its
 * row, its ledger entry and an audit event in one transaction. Blinded roles read shipments as kit numbers and states,
 * never a kit's lot or type; the sponsor's notice names neither. Sending holds the chosen kits' rows and reads their
 * facts again (a kit recalled, destroyed or shipped meanwhile is refused); receiving holds the shipment's row. The
 * pages' rows are checked against their entries (supplyRowSeals): a row that differs is never shown as sealed.
 */
import { createHash, randomUUID } from "node:crypto";
import { and, asc, desc, eq, inArray, sql } from "drizzle-orm";
import { z } from "zod";
import { canonicalize } from "../../anchoring/log/canonical.ts";
import { toHex, utf8 } from "../../anchoring/log/bytes.ts";
import { KIT_NUMBER_PATTERN } from "../../anchoring/log/payloads.ts";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import type { DbOrTx } from "../../db/client.ts";
import { firstFinalAnchorsCovering } from "../../db/queries/anchors.ts";
import { rowsOf } from "../../db/queries/rows.ts";
import {
  sites,
  supplyKits,
  supplyLotRecalls,
  supplyLotReleases,
  supplyLots,
  supplyQuarantineDecisions,
  supplyShipmentKits,
  supplyShipmentReceipts,
  supplyShipments,
  users,
} from "../../db/schema/index.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { supplyRowDiffers } from "../integrity-audit/drug-supply-checks.server.ts";
import { hexOf, payloadOf, type Row } from "../integrity-audit/linked-table.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { MISMATCH_TEXT, type Seal, sealText } from "../log/seal-text.ts";
import { notifyStudyRoles } from "../notifications/notify.server.ts";
import { auditActor, auditDetail, payloadActor, rowTokenColumns, tokenLabel } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import { isUniqueViolation, ServiceError } from "../platform/errors.server.ts";
import { can, type Principal } from "../platform/permissions.server.ts";
import { dateInZone } from "../study-documents/protocol-in-force.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { kitFacts } from "./kit-facts.server.ts";
import { type KitFacts, LOCATION_WORDS, kitLocation, kitState } from "./kit-state.ts";
import { type LoggerReading, parseLoggerCsv } from "./logger-file.ts";

/** The largest logger file accepted: 1 MiB (a reading a minute for weeks fits well within it). */
export const LOGGER_MAX_BYTES = 1024 * 1024;
/** Kits in one shipment, at most (the payload's limit). */
export const MAX_KITS_PER_SHIPMENT = 2000;

type Study = { id: string; code: string };

function invalid(message: string, field: string): never {
  throw new ServiceError("invalid", message, field);
}

/**
 * Read an uploaded logger file as it streams in, refusing it (field `logger`) once it passes `limit` bytes, so a
 * larger file is never held whole.
 */
export async function readLoggerUpload(
  data: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  limit = LOGGER_MAX_BYTES,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for await (const chunk of data) {
    bytes += chunk.byteLength;
    if (bytes > limit) invalid(`Logger file: the file is larger than ${limit / (1024 * 1024)} MB`, "logger");
    chunks.push(chunk);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

/** Tenths of a degree in words: "8.5 °C", "-0.5 °C". */
export const celsiusText = (tenths: number) => `${(tenths / 10).toFixed(1)} °C`;
const utc = (at: Date) => `${at.toISOString().slice(0, 16).replace("T", " ")} UTC`;

const LABEL: Record<string, string> = {
  site: "Site",
  depot: "Depot",
  kits: "Kit numbers",
  fromLots: "Kits from lots",
  temperatureMinC: "Lowest temperature",
  temperatureMaxC: "Highest temperature",
  excursion: "Excursion",
  outcome: "Decision",
  reason: "Reason",
};

function parse<T extends z.ZodTypeAny>(schema: T, input: unknown): z.output<T> {
  const r = schema.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0];
    const field = String(i.path[0] ?? "body");
    invalid(`${LABEL[field] ?? field}: ${i.message}`, field);
  }
  return r.data;
}

/** A temperature in °C (a decimal comma accepted, at most one decimal) as tenths; empty is "not given". */
const optionalCelsius = (what: string) =>
  z.union([z.number(), z.string(), z.null(), z.undefined()]).transform((v, c) => {
    if (v === null || v === undefined || String(v).trim() === "") return null;
    const s = String(v).trim().replace(",", ".").replace("\u2212", "-");
    if (!/^[+-]?\d{1,3}(\.\d)?$/.test(s)) {
      c.addIssue({ code: "custom", message: `give the ${what} in °C with at most one decimal (for example 4.5)` });
      return z.NEVER;
    }
    const tenths = Math.round(Number(s) * 10);
    if (tenths < -1000 || tenths > 1000) {
      c.addIssue({ code: "custom", message: `the ${what} must be between -100 and 100 °C` });
      return z.NEVER;
    }
    return tenths === 0 ? 0 : tenths;
  });

const yes = z
  .union([z.boolean(), z.string(), z.null(), z.undefined()])
  .transform((v) => v === true || (typeof v === "string" && /^(on|yes|true|1)$/i.test(v.trim())));

export const ShipmentInput = z.object({
  site: z.string({ message: "choose the site" }).trim().min(1, "choose the site"),
  depot: z
    .string({ message: "give the depot's code (for example DEPOT-EU)" })
    .trim()
    .min(1, "give the depot's code (for example DEPOT-EU)")
    .max(64, "keep the depot's code to 64 characters")
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "use letters, digits and . _ - only"),
  kits: z
    .array(
      z
        .string()
        .trim()
        .transform((s) => s.toUpperCase())
        .refine((s) => KIT_NUMBER_PATTERN.test(s), { message: "a kit number is 3 to 32 capitals, digits or dashes" }),
    )
    .max(MAX_KITS_PER_SHIPMENT, `at most ${MAX_KITS_PER_SHIPMENT} kits in one shipment`)
    .optional(),
  fromLots: z
    .array(
      z.object({
        lotNumber: z.string().trim().min(1, "choose the lot"),
        count: z.coerce
          .number({ message: "give the number of kits as a whole number" })
          .int("give the number of kits as a whole number")
          .min(1, "the number of kits must be at least 1")
          .max(MAX_KITS_PER_SHIPMENT, `at most ${MAX_KITS_PER_SHIPMENT} kits in one shipment`),
      }),
    )
    .max(100)
    .optional(),
});

export const ReceiptInput = z.object({
  temperatureMinC: optionalCelsius("lowest temperature in transit"),
  temperatureMaxC: optionalCelsius("highest temperature in transit"),
  excursion: yes,
});

export const DecisionInput = z.object({
  outcome: z.enum(["release", "destroy"], { message: "choose release the kits or have them destroyed" }),
  reason: z
    .string({ message: "give the reason for the decision" })
    .trim()
    .min(1, "give the reason for the decision")
    .max(2000, "keep the reason under 2000 characters"),
});

async function siteOf(db: DbOrTx, study: Study, code: string) {
  const c = String(code ?? "")
    .trim()
    .toUpperCase();
  const [s] = c
    ? await db
        .select()
        .from(sites)
        .where(and(eq(sites.studyId, study.id), eq(sites.code, c)))
    : [];
  if (!s) throw new ServiceError("not_found", `Site: ${study.code} has no site ${c || "(none given)"}`, "site");
  return s;
}

/** A shipment of the study by its number, with its site, or a not_found ServiceError naming it. */
async function shipmentByNumber(db: DbOrTx, study: Study, number: string) {
  const n = String(number ?? "")
    .trim()
    .toUpperCase();
  const [s] = n
    ? await db
        .select({
          id: supplyShipments.id,
          number: supplyShipments.number,
          siteId: supplyShipments.siteId,
          siteCode: sites.code,
          timeZone: sites.timeZone,
        })
        .from(supplyShipments)
        .innerJoin(sites, eq(sites.id, supplyShipments.siteId))
        .where(and(eq(supplyShipments.studyId, study.id), eq(supplyShipments.number, n)))
    : [];
  if (!s) throw new ServiceError("not_found", `${study.code} has no shipment ${n || "(none given)"}`, "shipment");
  return s;
}

/** Who made a row: the user's name, or the API token's label. */
async function whoMade(
  db: DbOrTx,
  row: { actorUserId: string | null; actorTokenId?: string | null; actorTokenName?: string | null },
) {
  if (row.actorTokenId && row.actorTokenName) return tokenLabel({ id: row.actorTokenId, name: row.actorTokenName });
  if (!row.actorUserId) return "unknown";
  const [u] = await db.select({ name: users.fullName }).from(users).where(eq(users.id, row.actorUserId));
  return u?.name ?? "unknown user";
}

/** Why a kit cannot be shipped (the depot manager sees lots: the lot is named), or null. */
function sendRefusal(f: KitFacts, lotNumber: string, today: string): string | null {
  const k = `kit ${f.number}`;
  const where = kitLocation(f);
  if (where !== "at_depot")
    return f.shipment
      ? `${k} was already shipped in ${f.shipment.number} to ${f.shipment.siteCode}`
      : `${k} is not at the depot (${LOCATION_WORDS[where]})`;
  if (f.lotRecalled) return `${k} is of lot ${lotNumber}, which is recalled`;
  if (!f.lotReleased) return `${k} is of lot ${lotNumber}, which the sponsor has not released`;
  if (today > f.expiresOn) return `${k} is of lot ${lotNumber}, which expired on ${f.expiresOn}`;
  return null;
}

/**
 * Send a shipment from a depot to a site (supply.manage): the kits named and/or `count` kits of each lot given
 * (first by number among those at the depot). Every kit must be at the depot, of a released, unrecalled lot that has
 * not expired (at the site's date); a refusal names every kit or lot at fault. Numbers run SHP-0001, SHP-0002, ...
 */
export async function sendShipment(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  input: unknown,
): Promise<{ shipmentId: string; number: string; kits: string[] }> {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!can(principal, "supply.manage", { studyId: study.id }))
    throw new ServiceError("forbidden", "not permitted: supply.manage (only the depot manager sends shipments)");
  const v = parse(ShipmentInput, input);
  const wanted = [...new Set(v.kits ?? [])];
  const fromLots = v.fromLots ?? [];
  if (wanted.length === 0 && fromLots.length === 0)
    invalid("Kits from lots: choose how many kits of which lot to send, or give kit numbers", "fromLots");
  const site = await siteOf(ctx.db, study, v.site);
  const today = dateInZone(new Date(), site.timeZone);
  const field = wanted.length ? "kits" : "fromLots";
  try {
    return await ctx.db.transaction(async (tx) => {
      // One shipment per study at a time: its number and the kits picked below stay unique.
      await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtextextended(${`supply_shipments:${study.id}`}, 0))`);
      const lots = await tx
        .select({
          id: supplyLots.id,
          lotNumber: supplyLots.lotNumber,
          expiresOn: supplyLots.expiresOn,
          released: supplyLotReleases.id,
          recalled: supplyLotRecalls.id,
        })
        .from(supplyLots)
        .leftJoin(supplyLotReleases, eq(supplyLotReleases.lotId, supplyLots.id))
        .leftJoin(supplyLotRecalls, eq(supplyLotRecalls.lotId, supplyLots.id))
        .where(eq(supplyLots.studyId, study.id));
      const lotNumberOf = new Map(lots.map((l) => [l.id, l.lotNumber]));
      const problems: string[] = [];
      const chosen = new Map<string, KitFacts>();
      if (wanted.length) {
        const facts = await kitFacts(tx, study.id, { numbers: wanted });
        const byNumber = new Map(facts.map((f) => [f.number, f]));
        for (const n of wanted) {
          const f = byNumber.get(n);
          const why = f ? sendRefusal(f, lotNumberOf.get(f.lotId) ?? "?", today) : `kit ${n} does not exist`;
          if (why) problems.push(why);
          else if (f) chosen.set(f.id, f);
        }
      }
      for (const want of fromLots) {
        const lot = lots.find((l) => l.lotNumber === want.lotNumber);
        if (!lot) problems.push(`lot ${want.lotNumber} does not exist`);
        else if (lot.recalled) problems.push(`lot ${lot.lotNumber} is recalled`);
        else if (!lot.released) problems.push(`lot ${lot.lotNumber} is not released by the sponsor`);
        else if (today > lot.expiresOn) problems.push(`lot ${lot.lotNumber} expired on ${lot.expiresOn}`);
        else {
          const free = (await kitFacts(tx, study.id, { lotId: lot.id })).filter(
            (f) => !chosen.has(f.id) && sendRefusal(f, lot.lotNumber, today) === null,
          );
          if (free.length < want.count)
            problems.push(
              `lot ${lot.lotNumber} has ${free.length} kit${free.length === 1 ? "" : "s"} at the depot to send, ` +
                `not ${want.count}`,
            );
          else for (const f of free.slice(0, want.count)) chosen.set(f.id, f);
        }
      }
      if (problems.length)
        throw new ServiceError("conflict", `${LABEL[field]}: nothing was sent: ${problems.join("; ")}`, field);
      if (chosen.size > MAX_KITS_PER_SHIPMENT)
        invalid(`${LABEL[field]}: at most ${MAX_KITS_PER_SHIPMENT} kits in one shipment`, field);
      // The chosen kits' rows, in id order as a recall, a destruction and a dispensing take them; their facts read
      // again once held: a kit recalled, destroyed or shipped by a transaction that committed meanwhile is refused.
      const ids = [...chosen.keys()].sort();
      await tx.execute(
        sql`SELECT id FROM supply_kits WHERE id IN (${sql.join(
          ids.map((i) => sql`${i}`),
          sql`, `,
        )}) ORDER BY id FOR UPDATE`,
      );
      for (const f of await kitFacts(tx, study.id, { kitIds: ids })) {
        const why = sendRefusal(f, lotNumberOf.get(f.lotId) ?? "?", today);
        if (why) problems.push(why);
        else chosen.set(f.id, f);
      }
      if (problems.length)
        throw new ServiceError("conflict", `${LABEL[field]}: nothing was sent: ${problems.join("; ")}`, field);
      const [{ n }] = await tx
        .select({ n: sql<number>`count(*)::int` })
        .from(supplyShipments)
        .where(eq(supplyShipments.studyId, study.id));
      const number = `SHP-${String(Number(n) + 1).padStart(4, "0")}`;
      const id = randomUUID();
      const kits = [...chosen.values()].map((f) => f.number).sort();
      const e = await appendEntry(tx, ctx.crypto, study, "supply.shipment_sent", {
        shipment: id,
        number,
        depot: v.depot,
        site: site.code,
        kits,
        ...payloadActor(principal),
      });
      await tx.insert(supplyShipments).values({
        id,
        studyId: study.id,
        number,
        depot: v.depot,
        siteId: site.id,
        actorUserId: principal.userId,
        ...rowTokenColumns(principal),
        entryId: e.id,
      });
      await tx
        .insert(supplyShipmentKits)
        .values([...chosen.keys()].map((kitId) => ({ studyId: study.id, shipmentId: id, kitId })));
      // The audit trail is read by blinded roles: kit numbers, never their lots.
      await audit(tx, {
        action: "supply.shipment_sent",
        ...auditActor(principal),
        studyId: study.id,
        siteId: site.id,
        detail: auditDetail(principal, { shipment: id, number, depot: v.depot, site: site.code, kits, entry: e.id }),
      });
      return { shipmentId: id, number, kits };
    });
  } catch (err) {
    if (isUniqueViolation(err))
      throw new ServiceError(
        "conflict",
        `${LABEL[field]}: a kit was shipped by someone else at the same moment; nothing was sent, try again`,
        field,
      );
    throw err;
  }
}

/** The storage ranges of the lots of a shipment's kits (tenths of a degree). */
async function shipmentRanges(db: DbOrTx, shipmentId: string) {
  return db
    .selectDistinct({ min: supplyLots.storageMinTenths, max: supplyLots.storageMaxTenths })
    .from(supplyShipmentKits)
    .innerJoin(supplyKits, eq(supplyKits.id, supplyShipmentKits.kitId))
    .innerJoin(supplyLots, eq(supplyLots.id, supplyKits.lotId))
    .where(eq(supplyShipmentKits.shipmentId, shipmentId));
}

async function alreadyReceived(db: DbOrTx, shipment: { id: string; number: string }) {
  const [r] = await db.select().from(supplyShipmentReceipts).where(eq(supplyShipmentReceipts.shipmentId, shipment.id));
  if (!r) return null;
  return new ServiceError(
    "conflict",
    `shipment ${shipment.number} was already received on ${utc(r.createdAt)} by ${await whoMade(db, r)}`,
    "shipment",
  );
}

/**
 * Receive a shipment at its site (supply.receive at that site), once: the lowest and highest temperature in transit
 * and/or the logger file. An excursion (a temperature or a logger reading outside any of the kits' lots' storage
 * range, or declared by the receiver) quarantines its kits and queues a notice to the sponsor (the study's admins).
 */
export async function receiveShipment(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  shipmentNumber: string,
  input: {
    temperatureMinC?: unknown;
    temperatureMaxC?: unknown;
    logger?: { fileName: string; bytes: Uint8Array } | null;
    excursion?: unknown;
  },
): Promise<{ receiptId: string; excursion: boolean; quarantined: number; why: string[] }> {
  const study = await getStudyOrThrow(ctx, studyCode);
  const shipment = await shipmentByNumber(ctx.db, study, shipmentNumber);
  if (!can(principal, "supply.receive", { studyId: study.id, siteId: shipment.siteId }))
    throw new ServiceError(
      "forbidden",
      `not permitted: supply.receive at site ${shipment.siteCode} (only its staff receive shipment ${shipment.number})`,
    );
  const v = parse(ReceiptInput, input);
  const min = v.temperatureMinC;
  const max = v.temperatureMaxC;
  if ((min === null) !== (max === null))
    invalid(
      min === null
        ? "Lowest temperature: give the lowest temperature in transit as well"
        : "Highest temperature: give the highest temperature in transit as well",
      min === null ? "temperatureMinC" : "temperatureMaxC",
    );
  if (min !== null && max !== null && min > max)
    invalid(
      `Highest temperature: ${celsiusText(max)} is below the lowest temperature ${celsiusText(min)}`,
      "temperatureMaxC",
    );
  const file = input.logger && input.logger.bytes.byteLength > 0 ? input.logger : null;
  let logger: { fileName: string; content: Uint8Array; sha256: string; readings: LoggerReading[] } | null = null;
  let loggerRange: { min: number; max: number } | null = null;
  if (file) {
    const fileName = String(file.fileName ?? "").trim() || "logger.csv";
    if (fileName.length > 255) invalid("Logger file: the file name is longer than 255 characters", "logger");
    if (file.bytes.byteLength > LOGGER_MAX_BYTES)
      invalid(`Logger file: the file is larger than ${LOGGER_MAX_BYTES / (1024 * 1024)} MB`, "logger");
    const r = parseLoggerCsv(file.bytes);
    if (!r.ok) invalid(`Logger file: ${fileName}, ${r.error.message}`, "logger");
    logger = {
      fileName,
      content: file.bytes,
      sha256: createHash("sha256").update(file.bytes).digest("hex"),
      readings: r.readings,
    };
    loggerRange = { min: r.minTenths, max: r.maxTenths };
  }
  if (min === null && !logger)
    invalid(
      "Lowest temperature: give the lowest and highest temperature in transit, or upload the logger file",
      "temperatureMinC",
    );
  const ranges = await shipmentRanges(ctx.db, shipment.id);
  const outside = (t: number) => ranges.some((r) => t < r.min || t > r.max);
  const why: string[] = [];
  if (v.excursion) why.push("the receiver declared a temperature excursion");
  if (min !== null && max !== null && (outside(min) || outside(max)))
    why.push(`the temperature in transit was ${celsiusText(min)} to ${celsiusText(max)}`);
  if (logger && loggerRange && (outside(loggerRange.min) || outside(loggerRange.max))) {
    const first = logger.readings.find((r) => outside(r.tenths));
    why.push(
      first
        ? `the logger read ${celsiusText(first.tenths)} at ${first.time} (line ${first.line} of ${logger.fileName})`
        : `the logger's readings went from ${celsiusText(loggerRange.min)} to ${celsiusText(loggerRange.max)}`,
    );
  }
  const excursion = why.length > 0;
  const sealedMin = min ?? loggerRange?.min ?? null;
  const sealedMax = max ?? loggerRange?.max ?? null;
  const before = await alreadyReceived(ctx.db, shipment);
  if (before) throw before;
  const [who] = principal.userId
    ? await ctx.db.select({ name: users.fullName }).from(users).where(eq(users.id, principal.userId))
    : [];
  const id = randomUUID();
  try {
    return await ctx.db.transaction(async (tx) => {
      // The shipment's row: two receipts of one shipment never cross (the unique receipt guards as well).
      await tx.execute(sql`SELECT 1 FROM supply_shipments WHERE id = ${shipment.id} FOR UPDATE`);
      const again = await alreadyReceived(tx, shipment);
      if (again) throw again;
      const [{ kits }] = await tx
        .select({ kits: sql<number>`count(*)::int` })
        .from(supplyShipmentKits)
        .where(eq(supplyShipmentKits.shipmentId, shipment.id));
      const e = await appendEntry(tx, ctx.crypto, study, "supply.shipment_received", (salt) => ({
        receipt: id,
        shipment: shipment.id,
        temperatureMinTenths: sealedMin,
        temperatureMaxTenths: sealedMax,
        loggerSha256: logger?.sha256 ?? null,
        loggerBytes: logger?.content.byteLength ?? null,
        loggerNameHash: logger ? saltedTextHash(ctx.crypto, salt, logger.fileName) : null,
        excursion,
        ...payloadActor(principal),
      }));
      await tx.insert(supplyShipmentReceipts).values({
        id,
        studyId: study.id,
        shipmentId: shipment.id,
        temperatureMinTenths: sealedMin,
        temperatureMaxTenths: sealedMax,
        loggerFileName: logger?.fileName ?? null,
        loggerSha256: logger ? Buffer.from(logger.sha256, "hex") : null,
        loggerBytes: logger?.content.byteLength ?? null,
        loggerContent: logger ? Buffer.from(logger.content) : null,
        excursion,
        actorUserId: principal.userId,
        ...rowTokenColumns(principal),
        entryId: e.id,
      });
      await audit(tx, {
        action: "supply.shipment_received",
        ...auditActor(principal),
        studyId: study.id,
        siteId: shipment.siteId,
        detail: auditDetail(principal, {
          receipt: id,
          shipment: shipment.id,
          number: shipment.number,
          excursion,
          loggerSha256: logger?.sha256 ?? null,
          entry: e.id,
        }),
      });
      if (excursion) {
        const at = e.at instanceof Date ? e.at : new Date(e.at);
        const by = principal.kind === "token" ? principal.label : (who?.name ?? principal.label);
        await notifyStudyRoles(tx, {
          studyId: study.id,
          siteId: null,
          roles: ["admin"],
          exceptUserId: principal.userId,
          kind: "shipment_quarantined",
          subject: `${study.code}: shipment ${shipment.number} quarantined at site ${shipment.siteCode}`,
          body: [
            `${by} received shipment ${shipment.number} at site ${shipment.siteCode} on ${utc(at)} ` +
              `with a temperature excursion: ${why.join("; ")}.`,
            "",
            `Its ${kits} kit${kits === 1 ? " is" : "s are"} quarantined: ${kits === 1 ? "it" : "they"} cannot be ` +
              "dispensed until the sponsor decides.",
            `Decide on the study's shipments page (/studies/${study.code}/supply/shipments): release the kits for ` +
              "use, or have them destroyed, with the reason.",
          ].join("\n"),
        });
      }
      return { receiptId: id, excursion, quarantined: excursion ? kits : 0, why };
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw (await alreadyReceived(ctx.db, shipment)) ?? err;
    throw err;
  }
}

async function alreadyDecided(db: DbOrTx, shipment: { id: string; number: string }) {
  const [d] = await db
    .select()
    .from(supplyQuarantineDecisions)
    .where(eq(supplyQuarantineDecisions.shipmentId, shipment.id));
  if (!d) return null;
  const what = d.outcome === "release" ? "released its kits" : "had its kits destroyed";
  return new ServiceError(
    "conflict",
    `shipment ${shipment.number} was already decided on: ${await whoMade(db, d)} ${what} on ${utc(d.createdAt)}`,
    "shipment",
  );
}

/**
 * The sponsor's decision on a quarantined shipment (supply.release, a signed-in person): release its kits for use or
 * have them destroyed, with a reason (sealed as its salted hash). Only for a received shipment with an excursion,
 * once.
 */
export async function decideQuarantine(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  shipmentNumber: string,
  input: unknown,
): Promise<{ decisionId: string; outcome: "release" | "destroy" }> {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!can(principal, "supply.release", { studyId: study.id }))
    throw new ServiceError("forbidden", "not permitted: supply.release (only the sponsor decides on a quarantine)");
  if (principal.kind !== "user" || !principal.userId)
    throw new ServiceError("forbidden", "a quarantine is decided by a signed-in person of the sponsor, not a token");
  const v = parse(DecisionInput, input);
  const shipment = await shipmentByNumber(ctx.db, study, shipmentNumber);
  const [receipt] = await ctx.db
    .select({ excursion: supplyShipmentReceipts.excursion })
    .from(supplyShipmentReceipts)
    .where(eq(supplyShipmentReceipts.shipmentId, shipment.id));
  if (!receipt) throw new ServiceError("conflict", `shipment ${shipment.number} has not been received yet`, "shipment");
  if (!receipt.excursion)
    throw new ServiceError(
      "conflict",
      `shipment ${shipment.number} was received without an excursion: its kits are not quarantined`,
      "shipment",
    );
  const before = await alreadyDecided(ctx.db, shipment);
  if (before) throw before;
  const id = randomUUID();
  try {
    await ctx.db.transaction(async (tx) => {
      await tx.execute(sql`SELECT 1 FROM supply_shipments WHERE id = ${shipment.id} FOR UPDATE`);
      const again = await alreadyDecided(tx, shipment);
      if (again) throw again;
      const e = await appendEntry(tx, ctx.crypto, study, "supply.quarantine_decided", (salt) => ({
        decision: id,
        shipment: shipment.id,
        outcome: v.outcome,
        reasonHash: saltedTextHash(ctx.crypto, salt, v.reason),
        actor: principal.userId as string,
      }));
      await tx.insert(supplyQuarantineDecisions).values({
        id,
        studyId: study.id,
        shipmentId: shipment.id,
        outcome: v.outcome,
        reason: v.reason,
        actorUserId: principal.userId,
        entryId: e.id,
      });
      await audit(tx, {
        action: "supply.quarantine_decided",
        ...auditActor(principal),
        studyId: study.id,
        siteId: shipment.siteId,
        detail: { decision: id, shipment: shipment.id, number: shipment.number, outcome: v.outcome, entry: e.id },
      });
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw (await alreadyDecided(ctx.db, shipment)) ?? err;
    throw err;
  }
  return { decisionId: id, outcome: v.outcome };
}

/** A row's seal state, checked against its entry; `words` never says "sealed" for a row that differs. */
export interface RowSeal {
  seal: Seal;
  /** "sealed in batch B (seq N)", "pending seal", or "does not match its sealed entry: fields". */
  words: string;
  /** The fields of the row that differ from its entry (empty: it matches). */
  differs: string[];
}

/**
 * The seal state of supply rows of `table` (by id), each checked against its ledger entry: the entry is there, of
 * `kind` and of the row's study, its payload still hashes to the entry's hash, the row's columns match the payload by
 * the integrity audit's own comparison (supplyRowDiffers), and `joined(row, payload)` names what the row holds
 * through joins (site codes, kit lists) that differs. A row missing from the answer was not found.
 */
export async function supplyRowSeals(
  ctx: AppContext,
  table: "supply_shipments" | "supply_shipment_receipts" | "supply_quarantine_decisions" | "supply_reconciliations",
  kind: string,
  ids: string[],
  joined: (row: Row, payload: Record<string, unknown>) => string[] = () => [],
): Promise<Map<string, RowSeal>> {
  const out = new Map<string, RowSeal>();
  if (ids.length === 0) return out;
  const rows = rowsOf<Row>(
    await ctx.db.execute(
      sql`SELECT t.*, e.id AS e_id, e.kind AS e_kind, e.study_id AS e_study, e.payload_text AS e_payload,
                 e.payload_hash AS e_hash, e.seq AS e_seq, e.batch_no AS e_batch, e.status AS e_status
          FROM ${sql.identifier(table)} t LEFT JOIN ledger_entries e ON e.id = t.entry_id
          WHERE t.id IN (${sql.join(
            ids.map((i) => sql`${i}`),
            sql`, `,
          )})`,
    ),
  );
  const anchored = new Map<number, string[]>();
  for (const b of new Set(
    rows
      .map((r) => r.e_batch)
      .filter((x) => x !== null && x !== undefined)
      .map(Number),
  ))
    anchored.set(
      b,
      (await firstFinalAnchorsCovering(ctx.db, b)).map((a) => a.ledger),
    );
  for (const r of rows) {
    const p = payloadOf(r);
    const differs: string[] = [];
    if (!r.e_id || !p || r.e_kind !== kind || String(r.e_study) !== String(r.study_id)) differs.push("entry");
    else {
      if (toHex(ctx.crypto.sha256(utf8(String(r.e_payload)))) !== hexOf(r.e_hash)) differs.push("payload");
      differs.push(...supplyRowDiffers(ctx, table, r, p), ...joined(r, p));
    }
    const batch = r.e_batch === null || r.e_batch === undefined ? null : Number(r.e_batch);
    const seal: Seal = {
      status: r.e_status ? String(r.e_status) : "missing",
      seq: r.e_seq === null || r.e_seq === undefined ? null : Number(r.e_seq),
      batch,
      anchoredOn: batch === null ? [] : (anchored.get(batch) ?? []),
      matchesSeal: differs.length === 0,
    };
    const words = differs.length ? `${MISMATCH_TEXT}: ${differs.join(", ")}` : sealText(seal);
    out.set(String(r.id), { seal, words, differs });
  }
  return out;
}

export type ShipmentStatus = "in_transit" | "received" | "quarantined" | "released" | "rejected";

export const SHIPMENT_STATUS_WORDS: Record<ShipmentStatus, string> = {
  in_transit: "in transit",
  received: "received",
  quarantined: "quarantined: temperature excursion, awaiting the sponsor's decision",
  released: "received with an excursion; released by the sponsor",
  rejected: "received with an excursion; rejected by the sponsor (kits to be destroyed)",
};

export interface ShipmentView {
  number: string;
  depot: string;
  site: string;
  sentAt: string;
  sentBy: string;
  status: ShipmentStatus;
  statusWords: string;
  /** The shipment's row (and its kit list and site) against its entry. */
  seal: RowSeal;
  /** Kit numbers and states in words (never a kit's lot or type). */
  kits: { number: string; state: string; expired: boolean; recalled: boolean }[];
  receipt: {
    at: string;
    by: string;
    temperatureMin: string | null;
    temperatureMax: string | null;
    logger: { fileName: string; sha256: string; bytes: number } | null;
    excursion: boolean;
    seal: RowSeal;
  } | null;
  decision: { outcome: "release" | "destroy"; reason: string; at: string; by: string; seal: RowSeal } | null;
  canReceive: boolean;
  canDecide: boolean;
}

/** The sites whose shipments the principal sees: null for all (study-wide roles), else the sites of its roles. */
function visibleSites(principal: Principal, studyId: string): Set<string> | null {
  if (principal.platformAdmin) return null;
  const ms = principal.memberships.filter((m) => m.studyId === studyId);
  if (ms.some((m) => m.siteId === null)) return null;
  return new Set(ms.map((m) => m.siteId as string));
}

/**
 * The study's shipments, newest first (supply.view): site-scoped roles see their sites' only. Kits as numbers and
 * states in words; each shipment says whether this principal may receive it or decide on it.
 */
export async function shipmentsView(ctx: AppContext, principal: Principal, studyCode: string) {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!can(principal, "supply.view", { studyId: study.id }))
    throw new ServiceError("forbidden", "not permitted: supply.view");
  const only = visibleSites(principal, study.id);
  const rows = await ctx.db
    .select({
      id: supplyShipments.id,
      number: supplyShipments.number,
      depot: supplyShipments.depot,
      siteId: supplyShipments.siteId,
      site: sites.code,
      timeZone: sites.timeZone,
      createdAt: supplyShipments.createdAt,
      actorUserId: supplyShipments.actorUserId,
      actorTokenId: supplyShipments.actorTokenId,
      actorTokenName: supplyShipments.actorTokenName,
    })
    .from(supplyShipments)
    .innerJoin(sites, eq(sites.id, supplyShipments.siteId))
    .where(
      and(
        eq(supplyShipments.studyId, study.id),
        only === null ? undefined : only.size ? inArray(supplyShipments.siteId, [...only]) : sql`false`,
      ),
    )
    .orderBy(desc(supplyShipments.number));
  if (rows.length === 0) return { study: study.code, shipments: [] as ShipmentView[] };
  const ids = rows.map((r) => r.id);
  const receipts = await ctx.db
    .select()
    .from(supplyShipmentReceipts)
    .where(inArray(supplyShipmentReceipts.shipmentId, ids));
  const decisions = await ctx.db
    .select()
    .from(supplyQuarantineDecisions)
    .where(inArray(supplyQuarantineDecisions.shipmentId, ids));
  const kitRows = await ctx.db
    .select({ shipmentId: supplyShipmentKits.shipmentId, kitId: supplyShipmentKits.kitId })
    .from(supplyShipmentKits)
    .where(inArray(supplyShipmentKits.shipmentId, ids))
    .orderBy(asc(supplyShipmentKits.shipmentId));
  const facts = new Map(
    (await kitFacts(ctx.db, study.id, { kitIds: kitRows.map((k) => k.kitId) })).map((f) => [f.id, f]),
  );
  const userIds = [
    ...new Set([...rows, ...receipts, ...decisions].map((r) => r.actorUserId).filter((x): x is string => !!x)),
  ];
  const names = new Map(
    userIds.length
      ? (await ctx.db.select({ id: users.id, name: users.fullName }).from(users).where(inArray(users.id, userIds))).map(
          (u) => [u.id, u.name],
        )
      : [],
  );
  const by = (r: { actorUserId: string | null; actorTokenId?: string | null; actorTokenName?: string | null }) =>
    r.actorTokenId && r.actorTokenName
      ? tokenLabel({ id: r.actorTokenId, name: r.actorTokenName })
      : (names.get(r.actorUserId ?? "") ?? "unknown");
  // Each row against its entry; the shipment's site code and kit list through their joins.
  const numbersOf = (shipmentId: string) =>
    kitRows
      .filter((k) => k.shipmentId === shipmentId)
      .map((k) => facts.get(k.kitId)?.number ?? k.kitId)
      .sort();
  const siteOf = new Map(rows.map((r) => [r.id, r.site]));
  const sentSeals = await supplyRowSeals(ctx, "supply_shipments", "supply.shipment_sent", ids, (r, p) => {
    const sealed = Array.isArray(p.kits) ? p.kits.map(String).sort() : [];
    return [
      ...(p.site === siteOf.get(String(r.id)) ? [] : ["site"]),
      ...(canonicalize(sealed) === canonicalize(numbersOf(String(r.id))) ? [] : ["kits"]),
    ];
  });
  const receiptSeals = await supplyRowSeals(
    ctx,
    "supply_shipment_receipts",
    "supply.shipment_received",
    receipts.map((r) => r.id),
  );
  const decisionSeals = await supplyRowSeals(
    ctx,
    "supply_quarantine_decisions",
    "supply.quarantine_decided",
    decisions.map((d) => d.id),
  );
  const sealOf = (m: Map<string, RowSeal>, id: string): RowSeal =>
    m.get(id) ?? {
      seal: { status: "missing", seq: null, batch: null, anchoredOn: [], matchesSeal: false },
      words: `${MISMATCH_TEXT}: row`,
      differs: ["row"],
    };
  const canDecide = can(principal, "supply.release", { studyId: study.id }) && principal.kind === "user";
  const shipments = rows.map((s): ShipmentView => {
    const rc = receipts.find((r) => r.shipmentId === s.id) ?? null;
    const d = decisions.find((x) => x.shipmentId === s.id) ?? null;
    const today = dateInZone(new Date(), s.timeZone);
    const status: ShipmentStatus = !rc
      ? "in_transit"
      : !rc.excursion
        ? "received"
        : !d
          ? "quarantined"
          : d.outcome === "release"
            ? "released"
            : "rejected";
    const kits = kitRows
      .filter((k) => k.shipmentId === s.id)
      .map((k) => facts.get(k.kitId))
      .filter((f): f is NonNullable<typeof f> => !!f)
      .sort((a, b) => a.number.localeCompare(b.number))
      .map((f) => {
        const st = kitState(f, today);
        const extra = [st.recalled ? "recalled" : null, st.expired ? "expired" : null].filter(Boolean);
        return {
          number: f.number,
          state: LOCATION_WORDS[st.location] + (extra.length ? ` (${extra.join(", ")})` : ""),
          expired: st.expired,
          recalled: st.recalled,
        };
      });
    return {
      number: s.number,
      depot: s.depot,
      site: s.site,
      sentAt: s.createdAt.toISOString(),
      sentBy: by(s),
      status,
      statusWords: SHIPMENT_STATUS_WORDS[status],
      seal: sealOf(sentSeals, s.id),
      kits,
      receipt: rc
        ? {
            at: rc.createdAt.toISOString(),
            by: by(rc),
            temperatureMin: rc.temperatureMinTenths === null ? null : celsiusText(rc.temperatureMinTenths),
            temperatureMax: rc.temperatureMaxTenths === null ? null : celsiusText(rc.temperatureMaxTenths),
            logger:
              rc.loggerFileName && rc.loggerSha256
                ? {
                    fileName: rc.loggerFileName,
                    sha256: Buffer.from(rc.loggerSha256).toString("hex"),
                    bytes: rc.loggerBytes ?? 0,
                  }
                : null,
            excursion: rc.excursion,
            seal: sealOf(receiptSeals, rc.id),
          }
        : null,
      decision: d
        ? {
            outcome: d.outcome,
            reason: d.reason,
            at: d.createdAt.toISOString(),
            by: by(d),
            seal: sealOf(decisionSeals, d.id),
          }
        : null,
      canReceive: !rc && can(principal, "supply.receive", { studyId: study.id, siteId: s.siteId }),
      canDecide: canDecide && status === "quarantined",
    };
  });
  return { study: study.code, shipments };
}

/**
 * What the depot manager's "new shipment" form offers (supply.manage; empty for anyone else): the sites, and each lot
 * with how many of its kits are at the depot and whether it can be shipped (released, not recalled, not expired).
 */
export async function shipmentFormData(ctx: AppContext, principal: Principal, studyCode: string) {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!can(principal, "supply.manage", { studyId: study.id })) return { sites: [], lots: [] };
  const siteRows = await ctx.db
    .select({ code: sites.code, name: sites.name })
    .from(sites)
    .where(eq(sites.studyId, study.id))
    .orderBy(asc(sites.code));
  const today = dateInZone(new Date(), "UTC");
  const all = await kitFacts(ctx.db, study.id, { all: true });
  const lots = await ctx.db
    .select({
      id: supplyLots.id,
      lotNumber: supplyLots.lotNumber,
      expiresOn: supplyLots.expiresOn,
      released: supplyLotReleases.id,
      recalled: supplyLotRecalls.id,
    })
    .from(supplyLots)
    .leftJoin(supplyLotReleases, eq(supplyLotReleases.lotId, supplyLots.id))
    .leftJoin(supplyLotRecalls, eq(supplyLotRecalls.lotId, supplyLots.id))
    .where(eq(supplyLots.studyId, study.id))
    .orderBy(asc(supplyLots.lotNumber));
  return {
    sites: siteRows,
    lots: lots.map((l) => {
      const atDepot = all.filter((f) => f.lotId === l.id && kitLocation(f) === "at_depot").length;
      const why = l.recalled
        ? "recalled"
        : !l.released
          ? "not released by the sponsor"
          : today > l.expiresOn
            ? `expired on ${l.expiresOn}`
            : null;
      return { lotNumber: l.lotNumber, expiresOn: l.expiresOn, atDepot, shippable: why === null && atDepot > 0, why };
    }),
  };
}
