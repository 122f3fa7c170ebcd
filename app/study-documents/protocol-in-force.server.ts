/**
 * The protocol version in force at a site when a value was entered (ADR 0048): read once per study (every site
 * approval of a protocol version with its sealed entry, each site's time zone), then asked per value without the
 * database. Only approvals whose rows match their sealed entries count (and whose protocol version's row matches its
 * entry in id, type and version); one that does not is left out and counted, so the record page can say so. Only
 * approvals already recorded (their entry's time) when the value was entered count: the protocol in force as known
 * then.
 */
import { eq, sql } from "drizzle-orm";
import type { DbOrTx } from "../../db/client.ts";
import { rowsOf } from "../../db/queries/rows.ts";
import { sites } from "../../db/schema/index.ts";
import { type InForce, inForceLookup, type SiteApproval } from "./protocol-in-force.ts";
import { siteApprovalSealDifferences } from "./study-documents.server.ts";

export type { InForce };

interface ApprovalRow {
  id: string;
  document_id: string;
  site_id: string;
  site: string;
  approved_on: string;
  actor_user_id: string | null;
  actor_token_id: string | null;
  actor_token_name: string | null;
  a_kind: string | null;
  a_payload: string | null;
  a_at_ms: number | string | null;
  doc_type: string;
  version: string;
  registered_ms: number | string;
  d_kind: string | null;
  d_payload: string | null;
}

function sealedDocumentMatches(r: ApprovalRow): boolean {
  if (r.d_kind !== "study_document.registered" || r.d_payload === null) return false;
  try {
    const p = JSON.parse(r.d_payload) as Record<string, unknown>;
    return p.document === r.document_id && p.type === r.doc_type && p.version === r.version;
  } catch {
    return false;
  }
}

/**
 * The study's protocol site approvals that may decide the protocol in force (rows matching their entries), and per
 * site how many were left out because they (or their version's row) no longer match their sealed entries.
 */
export async function protocolApprovals(
  db: DbOrTx,
  studyId: string,
): Promise<{ usable: SiteApproval[]; unusable: Map<string, number> }> {
  const rows = rowsOf<ApprovalRow>(
    await db.execute(sql`
      SELECT a.id, a.document_id, a.site_id, s.code AS site, to_char(a.approved_on, 'YYYY-MM-DD') AS approved_on,
             a.actor_user_id, a.actor_token_id, a.actor_token_name,
             ea.kind AS a_kind, ea.payload_text AS a_payload, extract(epoch FROM ea.at) * 1000 AS a_at_ms,
             d.type AS doc_type, d.version, extract(epoch FROM d.created_at) * 1000 AS registered_ms,
             ed.kind AS d_kind, ed.payload_text AS d_payload
        FROM document_site_approvals a
        JOIN sites s ON s.id = a.site_id
        JOIN study_documents d ON d.id = a.document_id
        LEFT JOIN ledger_entries ea ON ea.id = a.entry_id
        LEFT JOIN ledger_entries ed ON ed.id = d.entry_id
       WHERE a.study_id = ${studyId}
         AND (d.type = 'protocol' OR ed.payload_text LIKE '%"type":"protocol"%')`),
  );
  const usable: SiteApproval[] = [];
  const unusable = new Map<string, number>();
  for (const r of rows) {
    const approvalMatches =
      r.a_kind === "study_document.site_approved" &&
      r.a_at_ms !== null &&
      siteApprovalSealDifferences(
        {
          id: r.id,
          documentId: r.document_id,
          site: r.site,
          approvedOn: r.approved_on,
          actorUserId: r.actor_user_id,
          actorTokenId: r.actor_token_id,
          actorTokenName: r.actor_token_name,
        },
        r.a_payload,
      ).length === 0;
    if (approvalMatches && sealedDocumentMatches(r) && r.doc_type === "protocol")
      usable.push({
        siteId: r.site_id,
        approvedOn: r.approved_on,
        documentId: r.document_id,
        version: r.version,
        registeredAt: new Date(Number(r.registered_ms)),
        recordedAt: new Date(Number(r.a_at_ms)),
      });
    else unusable.set(r.site_id, (unusable.get(r.site_id) ?? 0) + 1);
  }
  return { usable, unusable };
}

async function timeZones(db: DbOrTx, studyId: string) {
  const zones = await db
    .select({ id: sites.id, timeZone: sites.timeZone })
    .from(sites)
    .where(eq(sites.studyId, studyId));
  return new Map(zones.map((z) => [z.id, z.timeZone]));
}

/**
 * (siteId, at) -> the protocol version whose approval at that site is the latest on or before `at`'s local date,
 * among the approvals recorded by `at` whose rows match their sealed entries.
 */
export async function protocolInForce(
  db: DbOrTx,
  studyId: string,
): Promise<(siteId: string, at: Date) => InForce | null> {
  const { usable } = await protocolApprovals(db, studyId);
  return inForceLookup(usable, await timeZones(db, studyId));
}

/** The protocol in force for one value, and how many of its site's approvals were left out (altered behind the log). */
export interface ProtocolAt {
  version: string | null;
  unusedApprovals: number;
}

/** For a record page: the site's code and, for each instant, the protocol version in force there (null: none yet). */
export async function protocolVersionsAt(
  ctx: { db: DbOrTx },
  studyId: string,
  siteId: string,
  ats: readonly (string | Date)[],
): Promise<{ site: string; versions: ProtocolAt[] }> {
  const { usable, unusable } = await protocolApprovals(ctx.db, studyId);
  const lookup = inForceLookup(usable, await timeZones(ctx.db, studyId));
  const [s] = await ctx.db.select({ code: sites.code }).from(sites).where(eq(sites.id, siteId));
  const unusedApprovals = unusable.get(siteId) ?? 0;
  return {
    site: s?.code ?? "?",
    versions: ats.map((at) => ({ version: lookup(siteId, new Date(at))?.version ?? null, unusedApprovals })),
  };
}

/** The words the record page shows for one version (and, when some were left out, that they were). */
export function protocolInForceText(site: string, at: ProtocolAt | string | null): string {
  const { version, unusedApprovals } = at !== null && typeof at === "object" ? at : { version: at, unusedApprovals: 0 };
  const text =
    version === null ? `No protocol approved at ${site} yet` : `Protocol in force at ${site}: version ${version}`;
  if (unusedApprovals === 0) return text;
  const n = unusedApprovals === 1 ? "1 protocol approval" : `${unusedApprovals} protocol approvals`;
  return `${text} (${n} at ${site} ${unusedApprovals === 1 ? "differs" : "differ"} from ${
    unusedApprovals === 1 ? "its" : "their"
  } sealed entry and ${unusedApprovals === 1 ? "is" : "are"} not used: run the integrity audit)`;
}
