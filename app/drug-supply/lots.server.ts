/**
 * Lots and kits of investigational product (issue 21, ADR 0056, blinding ADR 0057). The depot manager registers a
 * lot (product, lot number, kit type of the committed randomization design, dates, storage range, daily units) with
 * its certificate of analysis (a PDF whose SHA-256 is sealed), and kits of a lot: random six-digit numbers, a 128-bit
 * label token each, one `supply.kit_registered` entry per kit in one transaction. The sponsor releases a lot once.
 * Kit types (and which lot a kit is of) are sealed only as blindHash over a secret nonce and are returned only to
 * roles with `supply.view_kit_types` (or after the study is unblinded).
 */
import { createHash, randomBytes, randomInt, randomUUID } from "node:crypto";
import { and, asc, eq, sql } from "drizzle-orm";
import { z } from "zod";
import { toBase64Url, toHex, utf8 } from "../../anchoring/log/bytes.ts";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import { kitBlindHash, lotBlindHash } from "../../anchoring/supply/blind-hash.ts";
import type { DbOrTx } from "../../db/client.ts";
import { firstFinalAnchorsCovering } from "../../db/queries/anchors.ts";
import { rowsOf } from "../../db/queries/rows.ts";
import {
  ledgerEntries,
  sites,
  supplyKits,
  supplyLotRecalls,
  supplyLotReleases,
  supplyLots,
  users,
} from "../../db/schema/index.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { supplyRowDiffers } from "../integrity-audit/drug-supply-checks.server.ts";
import { hexOf, jsonOf, payloadOf, type Row } from "../integrity-audit/linked-table.ts";
import type { Seal } from "../log/seal-text.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { auditActor, auditDetail, payloadActor, rowTokenColumns } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import { isUniqueViolation, ServiceError } from "../platform/errors.server.ts";
import { can, type Principal } from "../platform/permissions.server.ts";
import { committedList, designOf } from "../randomization/list-state.server.ts";
import { isStudyUnblinded } from "../randomization/unblinding-state.server.ts";
import { todayIn } from "../records/records.server.ts";
import { dateInZone } from "../study-documents/protocol-in-force.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { kitFacts } from "./kit-facts.server.ts";
import { type KitLocation, kitLocation, kitState } from "./kit-state.ts";

/** The largest certificate of analysis accepted: 20 MiB, like a study document (ADR 0048). */
export const COA_MAX_BYTES = 20 * 1024 * 1024;
/** Kits registered in one go, at most. */
export const MAX_KITS_PER_REGISTRATION = 500;
const PDF_MAGIC = Buffer.from("%PDF-", "latin1");

type Study = { id: string; code: string };

function invalid(message: string, field: string): never {
  throw new ServiceError("invalid", message, field);
}

/** The latest date anywhere on Earth now (UTC+14): a manufacturing date after it is in the future everywhere. */
const latestToday = () => dateInZone(new Date(), "Pacific/Kiritimati");

const isoDate = (what: string) =>
  z
    .string()
    .trim()
    .regex(/^\d{4}-\d{2}-\d{2}$/, `give the ${what} as YYYY-MM-DD`)
    .refine(
      (d) => !Number.isNaN(Date.parse(`${d}T00:00:00Z`)) && new Date(`${d}T00:00:00Z`).toISOString().startsWith(d),
      "not a calendar date",
    );

/** A temperature in °C with at most one decimal (a decimal comma is accepted), as tenths of a degree. */
const celsius = (what: string) =>
  z.union([z.number(), z.string()]).transform((v, c) => {
    const s = String(v).trim().replace(",", ".");
    if (!/^-?\d{1,3}(\.\d)?$/.test(s)) {
      c.addIssue({ code: "custom", message: `give the ${what} in °C with at most one decimal (for example 2 or 8.5)` });
      return z.NEVER;
    }
    const tenths = Math.round(Number(s) * 10);
    if (tenths < -1000 || tenths > 1000) {
      c.addIssue({ code: "custom", message: `the ${what} must be between -100 and 100 °C` });
      return z.NEVER;
    }
    return tenths;
  });

const wholeNumber = (what: string, min: number, max: number) =>
  z.coerce
    .number({ message: `give the ${what} as a whole number` })
    .int(`give the ${what} as a whole number`)
    .min(min, `the ${what} must be at least ${min}`)
    .max(max, `the ${what} must be at most ${max}`);

export const LotInput = z.object({
  product: z
    .string()
    .trim()
    .min(1, "give the product as labelled (for example BP-101 10 mg tablets or placebo)")
    .max(200, "keep the product to 200 characters"),
  lotNumber: z
    .string()
    .trim()
    .min(1, "give the manufacturer's lot number")
    .max(64, "keep the lot number to 64 characters")
    .regex(/^[A-Za-z0-9][A-Za-z0-9._/-]*$/, "use letters, digits and . _ / - only (as printed on the lot)"),
  kitType: z.string().trim().min(1, "choose the kit type of the lot"),
  manufacturedOn: isoDate("manufacturing date"),
  expiresOn: isoDate("expiry date"),
  storageMinC: celsius("lowest storage temperature"),
  storageMaxC: celsius("highest storage temperature"),
  dailyUnits: wholeNumber("daily units", 0, 1000),
});

const KitLotInput = z.object({
  lotNumber: z.string().trim().min(1, "choose the lot"),
  count: wholeNumber("number of kits", 1, MAX_KITS_PER_REGISTRATION),
});

/** Kits of one or more lots registered together (ADR 0056): one count per lot, the same units per kit. */
export const KitsInput = z.object({
  lots: z.array(KitLotInput).min(1, "give the number of kits of at least one lot").max(200, "too many lots at once"),
  units: wholeNumber("units per kit", 1, 10_000),
});

const LABEL: Record<string, string> = {
  product: "Product",
  lotNumber: "Lot number",
  kitType: "Kit type",
  manufacturedOn: "Manufacturing date",
  expiresOn: "Expiry date",
  storageMinC: "Lowest storage temperature",
  storageMaxC: "Highest storage temperature",
  dailyUnits: "Daily units",
  count: "Number of kits",
  units: "Units per kit",
  coa: "Certificate of analysis",
  reason: "Reason",
};

/** Parse `input` with `schema`; the first problem as a ServiceError naming the field in words. */
export function parseSupplyInput<T extends z.ZodTypeAny>(schema: T, input: unknown): z.output<T> {
  const r = schema.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0];
    const field = String(i.path[0] ?? "body");
    invalid(`${LABEL[field] ?? field}: ${i.message}`, field);
  }
  return r.data;
}

/** A site id no site has: `can` with it passes only study-wide memberships (a site-scoped one names its site). */
export const NO_SITE = "00000000-0000-0000-0000-000000000000";

/** May the principal do `action` study-wide (a membership without a site), not only at some site? */
export const canStudyWide = (p: Principal, action: Parameters<typeof can>[1], studyId: string) =>
  can(p, action, { studyId, siteId: NO_SITE });

/**
 * Does this principal see kit types and which lot a kit is of across the study (the lots page, ADR 0057)? Only with a
 * study-wide supply.view_kit_types membership (a site-scoped unblinded pharmacist sees kit types of its site's kits
 * only, on the pharmacy page), or once the study is unblinded.
 */
export async function seesKitTypes(ctx: AppContext, principal: Principal, studyId: string): Promise<boolean> {
  if (canStudyWide(principal, "supply.view_kit_types", studyId)) return true;
  return isStudyUnblinded(ctx.db, studyId);
}

/** A lot of the study by its number, or a not_found ServiceError naming the lot (field `lotNumber`). */
export async function lotByNumber(db: DbOrTx, study: Study, lotNumber: string) {
  const n = String(lotNumber ?? "").trim();
  const [lot] = n
    ? await db
        .select()
        .from(supplyLots)
        .where(and(eq(supplyLots.studyId, study.id), eq(supplyLots.lotNumber, n)))
    : [];
  if (!lot)
    throw new ServiceError("not_found", `Lot number: ${study.code} has no lot ${n || "(none given)"}`, "lotNumber");
  return lot;
}

const whoName = async (db: DbOrTx, userId: string | null) => {
  if (!userId) return "an API token";
  const [u] = await db.select({ name: users.fullName }).from(users).where(eq(users.id, userId));
  return u?.name ?? "unknown user";
};
const day = (d: Date) => d.toISOString().slice(0, 10);

/** Text compared word for word: whitespace collapsed, case kept (the label prints it as given). */
const sameWords = (text: string) => text.trim().replace(/\s+/g, " ");

/**
 * Words every blinded label of a placebo-controlled trial may carry for all kit types alike ("BP-101 10 mg tablets
 * or matching placebo"): not a sign of one arm, since every lot repeats the first lot's product text.
 */
const LABEL_WORDS = new Set(["placebo", "matching", "tablet", "tablets", "capsule", "capsules", "oral", "dose"]);

/**
 * Does the product name an arm of the design: any word of 3 characters or more (letters and digits, not only
 * digits) of an arm's code or name, case-insensitive, except the generic LABEL_WORDS?
 */
export function productNamesArm(product: string, arms: { code: string; name: string }[]): boolean {
  const words = (t: string) => t.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
  const inProduct = new Set(words(product));
  return arms
    .flatMap((a) => [...words(a.code), ...words(a.name)])
    .some((w) => w.length >= 3 && !/^\d+$/.test(w) && !LABEL_WORDS.has(w) && inProduct.has(w));
}

/**
 * Register a lot (supply.manage): the row, its `supply.lot_registered` entry (product and file name as salted
 * hashes, kit type only in blindHash) and an audit event, in one transaction.
 */
export async function registerLot(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  input: unknown,
  coa: { fileName: string; bytes: Uint8Array },
): Promise<{ lotId: string }> {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!can(principal, "supply.manage", { studyId: study.id }))
    throw new ServiceError("forbidden", "not permitted: supply.manage (only the depot manager registers lots)");
  const v = parseSupplyInput(LotInput, input);
  const list = await committedList(ctx.db, study.id);
  if (!list)
    invalid(
      `Kit type: ${study.code} has no committed randomization list yet; kit types follow the committed list`,
      "kitType",
    );
  const design = designOf(list.designText);
  const kitTypes = Object.keys(design.kitTypes);
  // Never echo what was typed as a kit type: the list of the design's types is shown only to this role anyway.
  if (!kitTypes.includes(v.kitType))
    invalid(`Kit type: choose one of the committed design's kit types (${kitTypes.join(", ")})`, "kitType");
  const named = kitTypes.find((k) => k.length >= 3 && v.product.toUpperCase().includes(k.toUpperCase()));
  if (named)
    invalid(
      "Product: leave the kit type out of the product name: it is printed on every label and shown to blinded staff",
      "product",
    );
  if (productNamesArm(v.product, design.arms))
    invalid(
      "Product: leave the arms' codes and names out of the product name: it is printed on every label and shown to " +
        "blinded staff (label every kit type alike, for example BP-101 10 mg tablets or matching placebo)",
      "product",
    );
  if (v.manufacturedOn > latestToday())
    invalid(`Manufacturing date: ${v.manufacturedOn} is in the future`, "manufacturedOn");
  if (v.expiresOn <= v.manufacturedOn)
    invalid(`Expiry date: ${v.expiresOn} must be after the manufacturing date ${v.manufacturedOn}`, "expiresOn");
  if (v.storageMinC >= v.storageMaxC)
    invalid(
      `Lowest storage temperature: ${v.storageMinC / 10} °C must be below the highest (${v.storageMaxC / 10} °C)`,
      "storageMinC",
    );
  const fileName = String(coa?.fileName ?? "").trim() || "certificate-of-analysis.pdf";
  if (fileName.length > 255) invalid("Certificate of analysis: the file name is longer than 255 characters", "coa");
  const bytes = coa?.bytes;
  if (!bytes || bytes.byteLength === 0) invalid("Certificate of analysis: choose the PDF (the file is empty)", "coa");
  if (bytes.byteLength > COA_MAX_BYTES)
    invalid(`Certificate of analysis: the PDF is larger than ${COA_MAX_BYTES / (1024 * 1024)} MB`, "coa");
  if (!Buffer.from(bytes.subarray(0, PDF_MAGIC.length)).equals(PDF_MAGIC))
    invalid(`Certificate of analysis: ${fileName} is not a PDF (a PDF starts with %PDF-)`, "coa");
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  const duplicate = () =>
    new ServiceError("conflict", `Lot number: ${study.code} already has a lot ${v.lotNumber}`, "lotNumber");
  const [same] = await ctx.db
    .select({ id: supplyLots.id })
    .from(supplyLots)
    .where(and(eq(supplyLots.studyId, study.id), eq(supplyLots.lotNumber, v.lotNumber)));
  if (same) throw duplicate();
  const id = randomUUID();
  const nonce = randomBytes(16);
  try {
    await ctx.db.transaction(async (tx) => {
      // One lot registration per study at a time: the first lot's product is the one every later lot repeats.
      await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtextextended(${`supply_lots:${study.id}`}, 0))`);
      const [first] = await tx
        .select({ product: supplyLots.product, lotNumber: supplyLots.lotNumber })
        .from(supplyLots)
        .where(eq(supplyLots.studyId, study.id))
        .orderBy(asc(supplyLots.createdAt), asc(supplyLots.id))
        .limit(1);
      if (first && sameWords(first.product) !== sameWords(v.product))
        invalid(
          `Product: every lot of ${study.code} carries the same product text as its first lot (${first.lotNumber}): ` +
            `"${first.product}". The product is labelled alike for every kit type, so that a label or the lots ` +
            "page does not tell the kit types apart",
          "product",
        );
      const e = await appendEntry(tx, ctx.crypto, study, "supply.lot_registered", (salt) => ({
        lot: id,
        lotNumber: v.lotNumber,
        productHash: saltedTextHash(ctx.crypto, salt, v.product),
        blindHash: lotBlindHash(ctx.crypto, { lot: id, kitType: v.kitType, nonce: toBase64Url(nonce) }),
        manufacturedOn: v.manufacturedOn,
        expiresOn: v.expiresOn,
        storageMinTenths: v.storageMinC,
        storageMaxTenths: v.storageMaxC,
        dailyUnits: v.dailyUnits,
        coaSha256: sha256,
        coaBytes: bytes.byteLength,
        coaNameHash: saltedTextHash(ctx.crypto, salt, fileName),
        ...payloadActor(principal),
      }));
      await tx.insert(supplyLots).values({
        id,
        studyId: study.id,
        product: v.product,
        lotNumber: v.lotNumber,
        kitType: v.kitType,
        blindNonce: nonce,
        manufacturedOn: v.manufacturedOn,
        expiresOn: v.expiresOn,
        storageMinTenths: v.storageMinC,
        storageMaxTenths: v.storageMaxC,
        dailyUnits: v.dailyUnits,
        coaFileName: fileName,
        coaSha256: Buffer.from(sha256, "hex"),
        coaBytes: bytes.byteLength,
        coaContent: Buffer.from(bytes),
        actorUserId: principal.userId,
        ...rowTokenColumns(principal),
        entryId: e.id,
      });
      // The audit trail is read by blinded roles: no kit type in it.
      await audit(tx, {
        action: "supply.lot_registered",
        ...auditActor(principal),
        studyId: study.id,
        detail: auditDetail(principal, { lot: id, lotNumber: v.lotNumber, coaSha256: sha256, entry: e.id }),
      });
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw duplicate();
    throw err;
  }
  return { lotId: id };
}

/** The lot's release and recall, if any (with who and when, for refusals). */
async function lotStatus(db: DbOrTx, lotId: string) {
  const [rel] = await db.select().from(supplyLotReleases).where(eq(supplyLotReleases.lotId, lotId));
  const [rec] = await db.select().from(supplyLotRecalls).where(eq(supplyLotRecalls.lotId, lotId));
  return { release: rel ?? null, recall: rec ?? null };
}

/** Refusal of a write on a recalled lot, naming when and by whom. */
export async function recalledRefusal(
  db: DbOrTx,
  lotNumber: string,
  recall: { createdAt: Date; actorUserId: string | null },
  what: string,
) {
  return new ServiceError(
    "conflict",
    `Lot number: lot ${lotNumber} was recalled on ${day(recall.createdAt)} by ` +
      `${await whoName(db, recall.actorUserId)}: ${what} is refused`,
    "lotNumber",
  );
}

/** Release a lot for use (supply.release, the sponsor): once; never a recalled lot. */
export async function releaseLot(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  lotNumber: string,
): Promise<{ releaseId: string }> {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!can(principal, "supply.release", { studyId: study.id }))
    throw new ServiceError("forbidden", "not permitted: supply.release (only the sponsor releases lots)");
  if (principal.kind !== "user" || !principal.userId)
    throw new ServiceError("forbidden", "a lot is released by a signed-in person of the sponsor, not an API token");
  const lot = await lotByNumber(ctx.db, study, lotNumber);
  const refusal = async () => {
    const s = await lotStatus(ctx.db, lot.id);
    if (s.release)
      return new ServiceError(
        "conflict",
        `Lot number: lot ${lot.lotNumber} was already released on ${day(s.release.createdAt)} by ` +
          `${await whoName(ctx.db, s.release.actorUserId)}`,
        "lotNumber",
      );
    if (s.recall) return recalledRefusal(ctx.db, lot.lotNumber, s.recall, "releasing it");
    return null;
  };
  const before = await refusal();
  if (before) throw before;
  const id = randomUUID();
  try {
    await ctx.db.transaction(async (tx) => {
      // The lot's row, so a recall and a release of one lot never cross.
      await tx.execute(sql`SELECT 1 FROM supply_lots WHERE id = ${lot.id} FOR UPDATE`);
      const [rec] = await tx
        .select({ id: supplyLotRecalls.id })
        .from(supplyLotRecalls)
        .where(eq(supplyLotRecalls.lotId, lot.id));
      if (rec)
        throw new ServiceError(
          "conflict",
          `Lot number: lot ${lot.lotNumber} was recalled: releasing it is refused`,
          "lotNumber",
        );
      const e = await appendEntry(tx, ctx.crypto, study, "supply.lot_released", {
        release: id,
        lot: lot.id,
        actor: principal.userId as string,
      });
      await tx.insert(supplyLotReleases).values({
        id,
        studyId: study.id,
        lotId: lot.id,
        actorUserId: principal.userId,
        entryId: e.id,
      });
      await audit(tx, {
        action: "supply.lot_released",
        ...auditActor(principal),
        studyId: study.id,
        detail: { release: id, lot: lot.id, lotNumber: lot.lotNumber, entry: e.id },
      });
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw (await refusal()) ?? err;
    throw err;
  }
  return { releaseId: id };
}

/** A random six-digit kit number not in `taken` (ADR 0057: a number says nothing of lot or type). */
function drawKitNumber(taken: Set<string>): string {
  for (;;) {
    const n = String(randomInt(0, 1_000_000)).padStart(6, "0");
    if (!taken.has(n)) return n;
  }
}

/** SHA-256 (hex) of a label token's UTF-8 bytes: the payload's `labelTokenHash`. */
export const labelTokenHash = (ctx: AppContext, token: string) => toHex(ctx.crypto.sha256(utf8(token)));

/** A uniformly random permutation of `items` in place (Fisher-Yates over the CSPRNG: node:crypto randomInt). */
export function shuffleInPlace<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomInt(0, i + 1);
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

/**
 * The kits input as `{ lots: [{lotNumber, count}], units }`; the single-lot form `{ lotNumber, count, units }` is
 * still accepted (its problems name the fields `lotNumber` and `count`; the form with `lots` names `count:LOT`).
 */
function parseKitsInput(input: unknown): z.output<typeof KitsInput> & { single: boolean } {
  const o = (input ?? {}) as Record<string, unknown>;
  const single = !("lots" in o);
  const raw = single ? { lots: [{ lotNumber: o.lotNumber, count: o.count }], units: o.units } : o;
  const r = KitsInput.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    const [top, index, key] = i.path;
    if (top === "lots" && typeof index === "number" && key !== undefined) {
      const lotNumber = String((raw.lots as Record<string, unknown>[] | undefined)?.[index]?.lotNumber ?? "").trim();
      if (single) invalid(`${LABEL[String(key)] ?? String(key)}: ${i.message}`, String(key));
      if (key === "count") invalid(`Number of kits of lot ${lotNumber}: ${i.message}`, `count:${lotNumber}`);
      invalid(`Lot: ${i.message}`, "lots");
    }
    invalid(`${LABEL[String(top)] ?? "Kits"}: ${i.message}`, String(top ?? "lots"));
  }
  const seen = new Set<string>();
  for (const l of r.data.lots) {
    if (seen.has(l.lotNumber)) invalid(`Lot: lot ${l.lotNumber} is given twice`, "lots");
    seen.add(l.lotNumber);
  }
  const total = r.data.lots.reduce((n, l) => n + l.count, 0);
  if (total > MAX_KITS_PER_REGISTRATION)
    invalid(
      `Number of kits: ${total} in all; register at most ${MAX_KITS_PER_REGISTRATION} at a time`,
      single ? "count" : "lots",
    );
  return { ...r.data, single };
}

/**
 * Register kits of one or more lots (supply.manage), in one transaction: random unique six-digit numbers, a
 * 22-character label token each (16 random bytes, base64url), one `supply.kit_registered` entry per kit. The kits of
 * all the lots are written in ONE random order (ADR 0056): a blinded reader of the log cannot group them by lot, as
 * kits written lot after lot would allow. The audit event carries counts, never kit numbers.
 */
export async function registerKits(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  input: unknown,
): Promise<{ kits: { id: string; number: string; labelToken: string; lotNumber: string }[] }> {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!can(principal, "supply.manage", { studyId: study.id }))
    throw new ServiceError("forbidden", "not permitted: supply.manage (only the depot manager registers kits)");
  const v = parseKitsInput(input);
  const lots: { lot: Awaited<ReturnType<typeof lotByNumber>>; count: number }[] = [];
  for (const l of v.lots) {
    const lot = await lotByNumber(ctx.db, study, l.lotNumber);
    lots.push({ lot, count: l.count });
  }
  return ctx.db.transaction(async (tx) => {
    // One kit registration per study at a time: the numbers drawn below stay unique.
    await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtextextended(${`supply_kits:${study.id}`}, 0))`);
    for (const { lot } of lots) {
      const [rec] = await tx.select().from(supplyLotRecalls).where(eq(supplyLotRecalls.lotId, lot.id));
      if (rec) throw await recalledRefusal(tx, lot.lotNumber, rec, "registering kits of it");
    }
    const taken = new Set(
      (await tx.select({ n: supplyKits.number }).from(supplyKits).where(eq(supplyKits.studyId, study.id))).map(
        (r) => r.n,
      ),
    );
    const total = lots.reduce((n, l) => n + l.count, 0);
    if (taken.size + total > 900_000)
      invalid(
        `Number of kits: ${study.code} has ${taken.size} kits; six-digit numbers are running out`,
        v.single ? "count" : "lots",
      );
    // Every kit of every lot, then one random order for all of them.
    const order = shuffleInPlace(lots.flatMap(({ lot, count }) => Array.from({ length: count }, () => lot)));
    const kits: { id: string; number: string; labelToken: string; lotNumber: string }[] = [];
    for (const lot of order) {
      const id = randomUUID();
      const number = drawKitNumber(taken);
      taken.add(number);
      const labelToken = toBase64Url(randomBytes(16));
      const nonce = randomBytes(16);
      const e = await appendEntry(tx, ctx.crypto, study, "supply.kit_registered", {
        kit: id,
        number,
        blindHash: kitBlindHash(ctx.crypto, { kit: id, lot: lot.id, kitType: lot.kitType, nonce: toBase64Url(nonce) }),
        units: v.units,
        labelTokenHash: labelTokenHash(ctx, labelToken),
        ...payloadActor(principal),
      });
      await tx.insert(supplyKits).values({
        id,
        studyId: study.id,
        lotId: lot.id,
        number,
        kitType: lot.kitType,
        blindNonce: nonce,
        units: v.units,
        labelToken,
        actorUserId: principal.userId,
        ...rowTokenColumns(principal),
        entryId: e.id,
      });
      kits.push({ id, number, labelToken, lotNumber: lot.lotNumber });
    }
    // The audit trail is read by blinded roles: counts per lot, never kit numbers (they would tie kits to a lot).
    await audit(tx, {
      action: "supply.kits_registered",
      ...auditActor(principal),
      studyId: study.id,
      detail: auditDetail(principal, {
        count: kits.length,
        lots: lots.map(({ lot, count }) => ({ lotNumber: lot.lotNumber, count })),
        units: v.units,
      }),
    });
    return { kits };
  });
}

/** A lot's, release's or recall's row against its entry: the seal, and the fields that differ (empty: it matches). */
export interface RowSeal {
  seal: Seal;
  differs: string[];
  /** The differing fields in words (empty when the row matches). */
  words: string;
}

export interface LotView {
  id: string;
  lotNumber: string;
  product: string;
  /** Only for roles that see kit types (ADR 0057); null otherwise. */
  kitType: string | null;
  manufacturedOn: string;
  expiresOn: string;
  storageMinC: number;
  storageMaxC: number;
  dailyUnits: number;
  coaFileName: string;
  coaSha256: string;
  coaBytes: number;
  registeredAt: string;
  released: ({ on: string; by: string } & RowSeal) | null;
  recalled:
    | ({ on: string; by: string; reason: string; kitsBlocked: number; subjectsAffected: number } & RowSeal)
    | null;
  /** The lot's row against its `supply.lot_registered` entry. */
  registered: RowSeal;
  /**
   * Kits registered; where they are only for roles that see which lot a kit is of (null otherwise): a lot's count at
   * a site or dispensed, beside a participant's dispensing, would tell which lot the participant received.
   */
  kits: {
    total: number;
    atDepot: number | null;
    atSites: number | null;
    dispensed: number | null;
    destroyed: number | null;
  };
}

const FIELD_WORDS: Record<string, string> = {
  entry: "its entry is missing",
  payload: "the entry's payload",
  lot: "the lot",
  lotNumber: "the lot number",
  product: "the product",
  blindHash: "the blinded commitment (kit type)",
  manufacturedOn: "the manufacturing date",
  expiresOn: "the expiry date",
  storageMinTenths: "the storage range",
  storageMaxTenths: "the storage range",
  dailyUnits: "the daily units",
  coaSha256: "the certificate of analysis",
  coaContent: "the certificate of analysis",
  coaBytes: "the certificate of analysis",
  coaContentBytes: "the certificate of analysis",
  coaName: "the certificate's file name",
  actor: "who acted",
  token: "the API token",
  tokenName: "the API token",
  release: "the release",
  recall: "the recall",
  reason: "the reason",
  kitsBlocked: "the kits blocked",
  subjectsAffected: "the participants affected",
  sitesNotified: "the sites notified",
};

/** The fields that differ from the entry, in words ("the product, the expiry date"). */
export function differenceWords(differs: string[]): string {
  return [...new Set(differs.map((f) => FIELD_WORDS[f] ?? f))].join(", ");
}

/**
 * Each row of `table` in the study against its entry, by the integrity audit's own comparison (supplyRowDiffers),
 * plus the payload against its hash; a lot's certificate bytes hashed by the database (never read here).
 */
async function rowSeals(
  ctx: AppContext,
  studyId: string,
  table: "supply_lots" | "supply_lot_releases" | "supply_lot_recalls",
): Promise<Map<string, RowSeal>> {
  const coa =
    table === "supply_lots"
      ? sql`encode(sha256(t.coa_content), 'hex') AS coa_actual, octet_length(t.coa_content) AS coa_actual_bytes`
      : sql`NULL AS coa_actual, NULL AS coa_actual_bytes`;
  const rows = rowsOf<Row>(
    await ctx.db.execute(sql`SELECT to_jsonb(t) - 'coa_content' AS r, ${coa}, e.id AS e_id,
        e.payload_text AS e_payload, e.payload_hash AS e_hash, e.seq AS e_seq, e.status AS e_status,
        e.batch_no AS e_batch
      FROM ${sql.raw(table)} t LEFT JOIN ledger_entries e ON e.id = t.entry_id WHERE t.study_id = ${studyId}`),
  );
  const anchored = new Map<number, string[]>();
  const out = new Map<string, RowSeal>();
  for (const x of rows) {
    const r = jsonOf(x.r) as Row;
    const p = payloadOf(x);
    const differs: string[] = [];
    if (!x.e_id || !p) differs.push("entry");
    else {
      differs.push(...supplyRowDiffers(ctx, table, r, p).filter((f) => f !== "coaContent" && f !== "coaContentBytes"));
      if (toHex(ctx.crypto.sha256(utf8(String(x.e_payload)))) !== hexOf(x.e_hash)) differs.push("payload");
      if (table === "supply_lots") {
        if (x.coa_actual !== p.coaSha256) differs.push("coaContent");
        if (Number(x.coa_actual_bytes) !== p.coaBytes) differs.push("coaContentBytes");
      }
    }
    const batch = x.e_batch === null || x.e_batch === undefined ? null : Number(x.e_batch);
    if (batch !== null && !anchored.has(batch))
      anchored.set(
        batch,
        (await firstFinalAnchorsCovering(ctx.db, batch)).map((a) => a.ledger),
      );
    out.set(String(r.id), {
      seal: {
        status: x.e_status ? String(x.e_status) : "missing",
        seq: x.e_seq === null || x.e_seq === undefined ? null : Number(x.e_seq),
        batch,
        anchoredOn: batch === null ? [] : (anchored.get(batch) ?? []),
        matchesSeal: differs.length === 0,
      },
      differs,
      words: differenceWords(differs),
    });
  }
  return out;
}

const NO_ROW_SEAL: RowSeal = {
  seal: { status: "missing", seq: null, batch: null, anchoredOn: [], matchesSeal: false },
  differs: ["entry"],
  words: "its entry is missing",
};

/**
 * Every lot of the study with its kit counts (supply.view) and each lot, release and recall row checked against its
 * entry. The kit type and where a lot's kits are only for roles that see which lot a kit is of (study-wide
 * supply.view_kit_types, or the study unblinded). Never a kit's number next to its lot.
 */
export async function lotsView(
  ctx: AppContext,
  /** null: the operator's CLI (`trialseal lots list`), which never shows kit types. */
  principal: Principal | null,
  studyCode: string,
): Promise<{ study: Study; seesKitTypes: boolean; kitTypes: string[]; lots: LotView[] }> {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (principal && !can(principal, "supply.view", { studyId: study.id }))
    throw new ServiceError("forbidden", "not permitted: supply.view");
  const sees = principal ? await seesKitTypes(ctx, principal, study.id) : false;
  // The operator's CLI answers "which participants received lot X" anyway: it keeps the counts per lot.
  const showWhere = principal === null || sees;
  const rows = await ctx.db
    .select({
      l: supplyLots,
      releaseId: supplyLotReleases.id,
      releasedAt: supplyLotReleases.createdAt,
      releasedBy: supplyLotReleases.actorUserId,
      recallId: supplyLotRecalls.id,
      recalledAt: supplyLotRecalls.createdAt,
      recalledBy: supplyLotRecalls.actorUserId,
      recallReason: supplyLotRecalls.reason,
      kitsBlocked: supplyLotRecalls.kitsBlocked,
      subjectsAffected: supplyLotRecalls.subjectsAffected,
    })
    .from(supplyLots)
    .leftJoin(supplyLotReleases, eq(supplyLotReleases.lotId, supplyLots.id))
    .leftJoin(supplyLotRecalls, eq(supplyLotRecalls.lotId, supplyLots.id))
    .where(eq(supplyLots.studyId, study.id))
    .orderBy(asc(supplyLots.createdAt), asc(supplyLots.lotNumber));
  const names = new Map<string, string>();
  const name = async (id: string | null) => {
    if (!id) return "an API token";
    if (!names.has(id)) names.set(id, await whoName(ctx.db, id));
    return names.get(id) as string;
  };
  const seals = {
    lots: await rowSeals(ctx, study.id, "supply_lots"),
    releases: await rowSeals(ctx, study.id, "supply_lot_releases"),
    recalls: await rowSeals(ctx, study.id, "supply_lot_recalls"),
  };
  type Where = { total: number; atDepot: number; atSites: number; dispensed: number; destroyed: number };
  const counts = new Map<string, Where>();
  for (const f of await kitFacts(ctx.db, study.id, { all: true })) {
    const c = counts.get(f.lotId) ?? { total: 0, atDepot: 0, atSites: 0, dispensed: 0, destroyed: 0 };
    c.total++;
    const where = kitLocation(f);
    if (where === "at_depot") c.atDepot++;
    else if (where === "destroyed") c.destroyed++;
    else if (where === "dispensed" || where === "returned") c.dispensed++;
    else c.atSites++;
    counts.set(f.lotId, c);
  }
  const kitsOf = (lotId: string): LotView["kits"] => {
    const c = counts.get(lotId) ?? { total: 0, atDepot: 0, atSites: 0, dispensed: 0, destroyed: 0 };
    return showWhere ? c : { total: c.total, atDepot: null, atSites: null, dispensed: null, destroyed: null };
  };
  const list = sees ? await committedList(ctx.db, study.id) : null;
  const lots: LotView[] = [];
  for (const r of rows)
    lots.push({
      id: r.l.id,
      lotNumber: r.l.lotNumber,
      product: r.l.product,
      kitType: sees ? r.l.kitType : null,
      manufacturedOn: r.l.manufacturedOn,
      expiresOn: r.l.expiresOn,
      storageMinC: r.l.storageMinTenths / 10,
      storageMaxC: r.l.storageMaxTenths / 10,
      dailyUnits: r.l.dailyUnits,
      coaFileName: r.l.coaFileName,
      coaSha256: toHex(r.l.coaSha256),
      coaBytes: r.l.coaBytes,
      registeredAt: r.l.createdAt.toISOString(),
      released:
        r.releasedAt && r.releaseId
          ? {
              on: day(r.releasedAt),
              by: await name(r.releasedBy),
              ...(seals.releases.get(r.releaseId) ?? NO_ROW_SEAL),
            }
          : null,
      recalled:
        r.recalledAt && r.recallId
          ? {
              on: day(r.recalledAt),
              by: await name(r.recalledBy),
              reason: r.recallReason ?? "",
              kitsBlocked: r.kitsBlocked ?? 0,
              subjectsAffected: r.subjectsAffected ?? 0,
              ...(seals.recalls.get(r.recallId) ?? NO_ROW_SEAL),
            }
          : null,
      registered: seals.lots.get(r.l.id) ?? NO_ROW_SEAL,
      kits: kitsOf(r.l.id),
    });
  return {
    study: { id: study.id, code: study.code },
    seesKitTypes: sees,
    kitTypes: list ? Object.keys(designOf(list.designText).kitTypes) : [],
    lots,
  };
}

/**
 * A lot's certificate of analysis for download (supply.view), only when its bytes hash to the SHA-256 of the row
 * and of its sealed entry: altered bytes are refused (409), never served.
 */
export async function lotCoa(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  lotNumber: string,
): Promise<{ fileName: string; bytes: Uint8Array<ArrayBuffer>; sha256: string }> {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!can(principal, "supply.view", { studyId: study.id }))
    throw new ServiceError("forbidden", "not permitted: supply.view");
  const lot = await lotByNumber(ctx.db, study, lotNumber);
  const [e] = await ctx.db
    .select({ payloadText: ledgerEntries.payloadText })
    .from(ledgerEntries)
    .where(eq(ledgerEntries.id, lot.entryId));
  let sealed: string | null = null;
  try {
    const p = e ? (JSON.parse(e.payloadText) as Record<string, unknown>) : null;
    sealed = typeof p?.coaSha256 === "string" ? p.coaSha256 : null;
  } catch {
    sealed = null;
  }
  const what = `The certificate of analysis of lot ${lot.lotNumber}`;
  if (sealed === null)
    throw new ServiceError(
      "conflict",
      `${what} has no sealed entry behind it; it is not served. Run the integrity audit`,
    );
  const actual = createHash("sha256").update(lot.coaContent).digest("hex");
  if (actual !== sealed || actual !== toHex(lot.coaSha256))
    throw new ServiceError(
      "conflict",
      `${what} is not the file that was sealed (SHA-256 ${actual} instead of ${sealed}); it was altered outside ` +
        "TrialSeal and is not served. Run the integrity audit",
    );
  return { fileName: lot.coaFileName, bytes: new Uint8Array(lot.coaContent), sha256: actual };
}

/** What each supply permission lets a person do, in words (the hub page). */
export const SUPPLY_ABILITIES: [action: Parameters<typeof can>[1], words: string][] = [
  ["supply.manage", "Register lots and their kits, print kit labels and send shipments from the depot to sites"],
  ["supply.release", "Release lots for use, decide on quarantined shipments and recall lots"],
  ["supply.receive", "Receive shipments at your site, with transit temperatures or the logger file"],
  ["supply.dispense", "Dispense kits to participants by their allocation"],
  ["supply.return", "Record kits returned by participants, with the units counted back"],
  ["supply.destroy", "Record the destruction of kits"],
  ["supply.witness", "Witness a destruction someone else recorded"],
  ["supply.reconcile", "Reconcile a site's kits: expected against counted"],
  ["supply.export", "Export the accountability log (CSV, PDF), FHIR and ODM"],
  ["supply.custody", "Download a kit's chain of custody, verifiable offline"],
  ["supply.view_kit_types", "See kit types and which lot a kit is of (you are unblinded)"],
];

export type KitCounts = Record<
  "atDepot" | "inTransit" | "quarantined" | "rejected" | "onHand" | "dispensed" | "returned" | "destroyed",
  number
> & { recalled: number; expired: number };

/**
 * The supply hub (supply.view): what this person may do, in words, and kits by state per site (only the sites the
 * person may see; the depot's row for study-wide roles). Counts only: never a kit type, a lot or a kit number.
 */
export async function supplyOverview(ctx: AppContext, principal: Principal, studyCode: string) {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!can(principal, "supply.view", { studyId: study.id }))
    throw new ServiceError("forbidden", "not permitted: supply.view");
  const abilities = SUPPLY_ABILITIES.filter(([a]) => can(principal, a, { studyId: study.id })).map(([, w]) => w);
  const allSites = await ctx.db
    .select({ id: sites.id, code: sites.code, name: sites.name, timeZone: sites.timeZone })
    .from(sites)
    .where(eq(sites.studyId, study.id))
    .orderBy(asc(sites.code));
  const studyWide = principal.platformAdmin || principal.memberships.some((m) => m.studyId === study.id && !m.siteId);
  const visible = studyWide
    ? allSites
    : allSites.filter((s) => principal.memberships.some((m) => m.studyId === study.id && m.siteId === s.id));
  const empty = (): KitCounts => ({
    atDepot: 0,
    inTransit: 0,
    quarantined: 0,
    rejected: 0,
    onHand: 0,
    dispensed: 0,
    returned: 0,
    destroyed: 0,
    recalled: 0,
    expired: 0,
  });
  const key: Record<KitLocation, keyof KitCounts> = {
    at_depot: "atDepot",
    in_transit: "inTransit",
    quarantined: "quarantined",
    rejected: "rejected",
    on_hand: "onHand",
    dispensed: "dispensed",
    returned: "returned",
    destroyed: "destroyed",
  };
  const bySite = new Map<string, KitCounts>(visible.map((s) => [s.id, empty()]));
  const depot = empty();
  const zone = new Map(allSites.map((s) => [s.id, s.timeZone]));
  for (const f of await kitFacts(ctx.db, study.id, { all: true })) {
    const siteId = f.dispensed?.siteId ?? f.shipment?.siteId ?? null;
    const c = siteId === null ? (studyWide ? depot : null) : (bySite.get(siteId) ?? null);
    if (!c) continue;
    const s = kitState(f, todayIn(siteId ? zone.get(siteId) : "UTC"));
    c[key[s.location]]++;
    const held = s.location !== "dispensed" && s.location !== "returned" && s.location !== "destroyed";
    if (held && s.recalled) c.recalled++;
    if (held && s.expired) c.expired++;
  }
  return {
    study: { id: study.id, code: study.code },
    abilities,
    depot: studyWide ? depot : null,
    sites: visible.map((s) => ({ code: s.code, name: s.name, kits: bySite.get(s.id) ?? empty() })),
  };
}
