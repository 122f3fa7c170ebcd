/**
 * A site's inventory of kits (issue 21, ADR 0059) and the small lookups the pharmacy's services share: a site of the
 * study by code, a kit number as typed or a kit label as scanned, who may see kit types. Blinded roles (no
 * supply.view_kit_types at the site, study not unblinded) get kit numbers, states in words and expiry, never a kit type
 * nor a lot.
 */
import { and, eq, inArray, sql } from "drizzle-orm";
import { toHex, utf8 } from "../../anchoring/log/bytes.ts";
import { KIT_NUMBER_PATTERN } from "../../anchoring/log/payloads.ts";
import type { DbOrTx } from "../../db/client.ts";
import { rowsOf } from "../../db/queries/rows.ts";
import { sites, supplyKits } from "../../db/schema/index.ts";
import { supplyRowDiffers } from "../integrity-audit/drug-supply-checks.server.ts";
import { hexOf, payloadOf, type Row } from "../integrity-audit/linked-table.ts";
import { MISMATCH_TEXT } from "../log/seal-text.ts";
import type { AppContext } from "../platform/context.server.ts";
import { type Problem, ServiceError } from "../platform/errors.server.ts";
import { type Action, can, type Principal } from "../platform/permissions.server.ts";
import { isStudyUnblinded } from "../randomization/unblinding-state.server.ts";
import { todayIn } from "../records/records.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { LABEL_TOKEN_PATTERN } from "./counterfeit-check.server.ts";
import { kitFacts } from "./kit-facts.server.ts";
import { type KitFacts, kitState, LOCATION_WORDS } from "./kit-state.ts";

export interface SupplySite {
  id: string;
  code: string;
  name: string;
  timeZone: string;
}

/** The study's site with this code, or a ServiceError naming `field`. */
export async function siteByCode(db: DbOrTx, studyId: string, code: unknown, field = "site"): Promise<SupplySite> {
  const c = String(code ?? "")
    .trim()
    .toUpperCase();
  if (!c) throw new ServiceError("invalid", `${field}: choose a site`, field);
  const [s] = await db
    .select({ id: sites.id, code: sites.code, name: sites.name, timeZone: sites.timeZone })
    .from(sites)
    .where(and(eq(sites.studyId, studyId), eq(sites.code, c)));
  if (!s) throw new ServiceError("not_found", `${field}: there is no site ${c} in this study`, field);
  return s;
}

/**
 * A kit number as typed (or scanned from its printed barcode): spaces dropped, capitals; refused (naming `field`)
 * unless it looks like one. A scanned label's QR code (its address) is read by resolveKitNumber.
 */
export function parseKitNumber(raw: unknown, field = "kit"): string {
  const n = String(raw ?? "")
    .replace(/\s+/g, "")
    .toUpperCase();
  if (!n) throw new ServiceError("invalid", `${field}: type or scan the kit number on the label`, field);
  if (!KIT_NUMBER_PATTERN.test(n))
    throw new ServiceError("invalid", `${field}: ${JSON.stringify(n.slice(0, 40))} is not a kit number`, field);
  return n;
}

/**
 * The label token of a scanned kit label, or null when `raw` is not a label's address (then it is a typed kit
 * number). A scanner types the label's QR content, the public check `<scheme>://<host>[/<path>]/kits/<token>` (ADR
 * 0060/0065); any scheme and host are taken (the public address may have changed since the label was printed), the
 * path must end in `/kits/<token>`. A text with a `/` is never a kit number: when it does not end in a whole token
 * (a damaged or cut-short scan) it is refused as unreadable, naming `field`. A bare token is NOT taken for a label:
 * a typed kit number is case-insensitive and up to 32 capitals, digits or dashes, so most tokens are also kit numbers
 * as typed; scanners send the whole address anyway.
 */
export function scannedLabelToken(raw: unknown, field = "kit"): string | null {
  const text = String(raw ?? "").replace(/\s+/g, "");
  if (!text.includes("/")) return null;
  const m = /\/kits\/([^/]*)$/i.exec(text);
  if (!m || !LABEL_TOKEN_PATTERN.test(m[1]))
    throw new ServiceError(
      "invalid",
      `${field}: the scanned text is not a kit label that can be read: scan the label's code again, or type the kit ` +
        "number printed on it",
      field,
    );
  return m[1];
}

/** What a kit field says of a scanned label that is not one of this study's kits (unknown, or another study's). */
const notOurLabel = (field: string, studyCode: string) =>
  `${field}: the scanned label is not the label of a kit of ${studyCode}: check the kit, or type the kit number ` +
  "printed on the label";

/**
 * Kit numbers as typed or scanned (a label's address, scannedLabelToken), in order: typed ones as parseKitNumber
 * reads them, scanned ones resolved to the kit of THIS study with that label token. A token of another study's kit
 * is refused exactly like an unknown one (not found, naming `field`): nothing about other studies, nor about the
 * kit's type, is said. Every problem is listed (ServiceError.problems); the first is the message.
 */
export async function resolveKitNumbers(
  db: DbOrTx,
  study: { id: string; code: string },
  raws: unknown[],
  field = "kit",
): Promise<string[]> {
  const problems: Problem[] = [];
  let invalid = false;
  const read = raws.map((raw): { number: string } | { token: string } | null => {
    try {
      const token = scannedLabelToken(raw, field);
      return token === null ? { number: parseKitNumber(raw, field) } : { token };
    } catch (err) {
      if (!(err instanceof ServiceError)) throw err;
      invalid = true;
      problems.push({ field, message: err.message });
      return null;
    }
  });
  const tokens = [...new Set(read.flatMap((r) => (r && "token" in r ? [r.token] : [])))];
  const byToken = new Map<string, string>();
  if (tokens.length)
    for (const k of await db
      .select({ number: supplyKits.number, token: supplyKits.labelToken })
      .from(supplyKits)
      .where(and(eq(supplyKits.studyId, study.id), inArray(supplyKits.labelToken, tokens))))
      byToken.set(k.token, k.number);
  const out: string[] = [];
  for (const r of read) {
    if (!r) continue;
    if ("number" in r) out.push(r.number);
    else {
      const n = byToken.get(r.token);
      if (n) out.push(n);
      else problems.push({ field, message: notOurLabel(field, study.code) });
    }
  }
  if (problems.length) throw new ServiceError(invalid ? "invalid" : "not_found", problems[0].message, field, problems);
  return out;
}

/** One kit number as typed or scanned (resolveKitNumbers): the field of a single kit (dispense, return). */
export async function resolveKitNumber(
  db: DbOrTx,
  study: { id: string; code: string },
  raw: unknown,
  field = "kit",
): Promise<string> {
  const [n] = await resolveKitNumbers(db, study, [raw], field);
  return n;
}

/** May this principal see kit types (and which lot a kit is of) at this site: supply.view_kit_types, or unblinded. */
export async function kitTypesVisible(
  ctx: AppContext,
  principal: Principal,
  scope: { studyId: string; siteId: string | null },
): Promise<boolean> {
  if (can(principal, "supply.view_kit_types", scope)) return true;
  return isStudyUnblinded(ctx.db, scope.studyId);
}

/** A kit's state in words: where it is, and recalled / expired when it is. */
export function kitStateWords(f: KitFacts, today: string): string {
  const s = kitState(f, today);
  const flags = [s.recalled ? "recalled" : "", s.expired ? `expired on ${f.expiresOn}` : ""].filter(Boolean);
  return [LOCATION_WORDS[s.location], ...flags].join(", ");
}

export interface InventoryKit {
  number: string;
  state: string;
  location: string;
  dispensable: boolean;
  expiresOn: string;
  units: number;
  /** The subject the kit was dispensed to (null when not dispensed). */
  subject: string | null;
  /** Only for roles that may see kit types here (absent otherwise). */
  kitType?: string;
}

/** The kits shipped to a site (in transit, on hand, dispensed, returned, destroyed), by number. */
export async function siteInventory(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  siteCode: string,
): Promise<{ site: SupplySite; today: string; showKitTypes: boolean; kits: InventoryKit[] }> {
  const study = await getStudyOrThrow(ctx, studyCode);
  const site = await siteByCode(ctx.db, study.id, siteCode);
  if (!can(principal, "supply.view", { studyId: study.id, siteId: site.id }))
    throw new ServiceError("forbidden", `not permitted: the supply of site ${site.code}`, "site");
  const showKitTypes = await kitTypesVisible(ctx, principal, { studyId: study.id, siteId: site.id });
  const today = todayIn(site.timeZone);
  const facts = await kitFacts(ctx.db, study.id, { siteId: site.id });
  const kits = facts.map((f) => {
    const s = kitState(f, today);
    const k: InventoryKit = {
      number: f.number,
      state: kitStateWords(f, today),
      location: s.location,
      dispensable: s.dispensable,
      expiresOn: f.expiresOn,
      units: f.units,
      subject: f.dispensed?.subject ?? null,
    };
    if (showKitTypes) k.kitType = f.kitType;
    return k;
  });
  return { site, today, showKitTypes, kits };
}

/** The study's sites where the principal may `action` (site-scoped roles: their own), by code. */
export async function supplySites(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  action: Action = "supply.view",
): Promise<{ code: string; name: string }[]> {
  const study = await getStudyOrThrow(ctx, studyCode);
  const all = await ctx.db
    .select({ id: sites.id, code: sites.code, name: sites.name })
    .from(sites)
    .where(eq(sites.studyId, study.id))
    .orderBy(sites.code);
  return all
    .filter((s) => can(principal, action, { studyId: study.id, siteId: s.id }))
    .map((s) => ({ code: s.code, name: s.name }));
}

/** A supply row checked against its ledger entry: sealed only when it matches; the fields that differ otherwise. */
export interface RowSeal {
  matches: boolean;
  /** In words: sealed in batch B (seq N) / pending seal / does not match its sealed entry: fields. */
  words: string;
  differs: string[];
}

/**
 * The rows of a supply `table` with these ids, each against its entry by the integrity audit's comparison
 * (supplyRowDiffers), its payload text against the entry's hash, and `more` (joined fields the caller checks, e.g.
 * kit number, subject, site). A row that differs is never called sealed.
 */
export async function rowSeals(
  db: DbOrTx,
  ctx: AppContext,
  table: "supply_dispensings" | "supply_returns" | "supply_destructions" | "supply_destruction_witnesses",
  ids: string[],
  more: (row: Row, payload: Record<string, unknown>) => string[] = () => [],
): Promise<Map<string, RowSeal>> {
  const out = new Map<string, RowSeal>();
  if (!ids.length) return out;
  const rows = rowsOf<Row>(
    await db.execute(
      sql`SELECT t.*, e.kind AS e_kind, e.payload_text AS e_payload, e.payload_hash AS e_hash, e.seq AS e_seq,
                 e.batch_no AS e_batch, e.status AS e_status
          FROM ${sql.identifier(table)} t LEFT JOIN ledger_entries e ON e.id = t.entry_id
          WHERE t.id IN (${sql.join(
            ids.map((i) => sql`${i}`),
            sql`, `,
          )})`,
    ),
  );
  for (const r of rows) {
    const p = payloadOf(r);
    const differs: string[] = [];
    if (!r.e_kind || !p) differs.push("entry");
    else {
      if (toHex(ctx.crypto.sha256(utf8(String(r.e_payload)))) !== hexOf(r.e_hash)) differs.push("payload");
      differs.push(...supplyRowDiffers(ctx, table, r, p), ...more(r, p));
    }
    const words = differs.length
      ? `${MISMATCH_TEXT}: ${differs.join(", ")}`
      : r.e_status === "sealed"
        ? `sealed in batch ${r.e_batch} (seq ${r.e_seq})`
        : "pending seal";
    out.set(String(r.id), { matches: differs.length === 0, words, differs });
  }
  return out;
}
