/**
 * A site's inventory of kits (issue 21, ADR 0059) and the small lookups the pharmacy's services share: a site of the
 * study by code, a kit number as typed or scanned, who may see kit types. Blinded roles (no supply.view_kit_types at
 * the site, study not unblinded) get kit numbers, states in words and expiry, never a kit type nor a lot.
 */
import { and, eq, sql } from "drizzle-orm";
import { toHex, utf8 } from "../../anchoring/log/bytes.ts";
import { KIT_NUMBER_PATTERN } from "../../anchoring/log/payloads.ts";
import type { DbOrTx } from "../../db/client.ts";
import { rowsOf } from "../../db/queries/rows.ts";
import { sites } from "../../db/schema/index.ts";
import { supplyRowDiffers } from "../integrity-audit/drug-supply-checks.server.ts";
import { hexOf, payloadOf, type Row } from "../integrity-audit/linked-table.ts";
import { MISMATCH_TEXT } from "../log/seal-text.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { type Action, can, type Principal } from "../platform/permissions.server.ts";
import { isStudyUnblinded } from "../randomization/unblinding-state.server.ts";
import { todayIn } from "../records/records.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
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

/** A kit number as typed or scanned: spaces dropped, capitals; refused (naming `field`) unless it looks like one. */
export function parseKitNumber(raw: unknown, field = "kit"): string {
  const n = String(raw ?? "")
    .replace(/\s+/g, "")
    .toUpperCase();
  if (!n) throw new ServiceError("invalid", `${field}: type or scan the kit number on the label`, field);
  if (!KIT_NUMBER_PATTERN.test(n))
    throw new ServiceError("invalid", `${field}: ${JSON.stringify(n.slice(0, 40))} is not a kit number`, field);
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
