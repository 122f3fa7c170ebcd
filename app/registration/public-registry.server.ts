/**
 * What the public registration page shows (issue 20, ADR 0050), for anyone, signed in or not, once the sponsor has
 * published it: the study's code and title; each sealed study document (type, version, approval date, approving
 * body, the version it replaces) with its sealed SHA-256, when it was recorded and sealed, and the ledgers that
 * anchor it; the outcome list and its history (changes after the first enrolment flagged); the database lock and
 * unblinding times. Nothing personal: no participant, no staff name or id, no site, no free-text reason, no file name.
 * Hashes come from the sealed entries, never from the rows alone: a row that no longer matches its entry is shown
 * as such and is not offered as a registered version.
 */
import { asc, eq, sql } from "drizzle-orm";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import { documentSealDifferences } from "../study-documents/study-documents.server.ts";
import { hexOf } from "../integrity-audit/linked-table.ts";
import { rowsOf } from "../../db/queries/rows.ts";
import { studyDocuments } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import { findStudy } from "../studies/studies.server.ts";
import { outcomeHistory } from "../study-documents/sap-outcomes.server.ts";
import type { Outcome } from "../study-documents/outcome-list.ts";
import { registrationState } from "./registration.server.ts";

export const DOCUMENT_TYPE_WORDS: Record<string, string> = {
  protocol: "Protocol",
  sap: "Statistical analysis plan",
  ib: "Investigator's brochure",
  dmp: "Data management plan",
};

export interface PublicSeal {
  /** pending (not in a batch yet), sealed, or missing (no entry). */
  status: string;
  /** When the portal wrote the entry, when its batch was sealed (null while pending). */
  recordedAt: string | null;
  sealedAt: string | null;
  seq: number | null;
  batch: number | null;
  /**
   * Each ledger whose final anchor covers the entry: the first such anchor's checkpoint size and time, and the
   * ledger in words a reader understands (`words`).
   */
  anchors: { ledger: string; words: string; treeSize: number; at: string | null }[];
}

/** EVM chain ids a reader may meet, by the names people know them by. */
const EVM_CHAINS: Record<number, string> = {
  1: "Ethereum",
  10: "OP Mainnet",
  137: "Polygon",
  8453: "Base",
  42161: "Arbitrum One",
  11155111: "the Sepolia test network",
  17000: "the Holesky test network",
  31337: "a local test chain",
};

/** A ledger named in words a regulator understands: the deployment's own signed ledger, a blockchain, a TSA. */
export function ledgerWords(ctx: Pick<AppContext, "env">, ledger: string): string {
  if (ledger === "local") return "the deployment's own signed ledger (local)";
  if (ledger === "evm") {
    const id = ctx.env.anchoring.evm?.chainId;
    const chain = id === undefined ? null : (EVM_CHAINS[id] ?? null);
    return `a public blockchain: ${chain ?? "an EVM chain"}${id === undefined ? "" : ` (chain id ${id})`} (evm)`;
  }
  if (ledger === "rfc3161") return "an independent time-stamp authority (RFC 3161)";
  return ledger;
}

interface EntryRow {
  id: string;
  status: string;
  seq: number | null;
  batch: number | null;
  at: Date;
  sealedAt: Date | null;
  payload: Record<string, unknown> | null;
}

const iso = (v: unknown) => (v === null || v === undefined ? null : new Date(v as string).toISOString());

async function entries(ctx: AppContext, ids: string[]): Promise<Map<string, EntryRow>> {
  const out = new Map<string, EntryRow>();
  if (ids.length === 0) return out;
  const rows = rowsOf<Record<string, unknown>>(
    await ctx.db.execute(
      sql`SELECT e.id, e.status, e.seq, e.batch_no, e.at, e.payload_text, b.sealed_at
            FROM ledger_entries e LEFT JOIN batches b ON b.batch_no = e.batch_no
           WHERE e.id IN (${sql.join(
             ids.map((id) => sql`${id}::uuid`),
             sql`, `,
           )})`,
    ),
  );
  for (const r of rows) {
    let payload: Record<string, unknown> | null = null;
    try {
      payload = JSON.parse(String(r.payload_text));
    } catch {
      payload = null;
    }
    out.set(String(r.id), {
      id: String(r.id),
      status: String(r.status),
      seq: r.seq === null ? null : Number(r.seq),
      batch: r.batch_no === null ? null : Number(r.batch_no),
      at: new Date(r.at as string),
      sealedAt: r.sealed_at === null ? null : new Date(r.sealed_at as string),
      payload,
    });
  }
  return out;
}

/** The first final anchor per ledger covering each batch (cached per batch for one page). */
async function anchorsCovering(ctx: AppContext, batch: number, cache: Map<number, PublicSeal["anchors"]>) {
  const hit = cache.get(batch);
  if (hit) return hit;
  const rows = rowsOf<Record<string, unknown>>(
    await ctx.db.execute(sql`
      SELECT DISTINCT ON (ledger) ledger, tree_size, coalesce(final_at, anchored_at) AS at FROM anchors
       WHERE status = 'final' AND tree_size > ${batch} ORDER BY ledger, tree_size`),
  );
  const a = rows.map((r) => ({
    ledger: String(r.ledger),
    words: ledgerWords(ctx, String(r.ledger)),
    treeSize: Number(r.tree_size),
    at: iso(r.at),
  }));
  cache.set(batch, a);
  return a;
}

async function sealOf(ctx: AppContext, e: EntryRow | undefined, cache: Map<number, PublicSeal["anchors"]>) {
  if (!e) return { status: "missing", recordedAt: null, sealedAt: null, seq: null, batch: null, anchors: [] };
  return {
    status: e.status,
    recordedAt: e.at.toISOString(),
    sealedAt: e.sealedAt?.toISOString() ?? null,
    seq: e.seq,
    batch: e.batch,
    anchors: e.batch === null ? [] : await anchorsCovering(ctx, e.batch, cache),
  } satisfies PublicSeal;
}

export interface PublicDocument {
  type: string;
  typeWords: string;
  version: string;
  approvedOn: string;
  approvingBody: string;
  /** The version label this one amends (same type), or null for a first version. */
  replaces: string | null;
  /** The SHA-256 as sealed in its entry (lowercase hex), and its size in bytes. */
  sha256: string;
  bytes: number;
  /** False when the stored row no longer matches its sealed entry: not offered as a registered version. */
  matchesSeal: boolean;
  /** The fields that differ from the sealed entry, in words (empty when it matches): "approving body", ... */
  differences: string[];
  entry: string;
  seal: PublicSeal;
}

export interface PublicOutcomeVersion {
  version: number;
  sapVersion: string;
  setAt: string;
  outcomes: Outcome[];
  changes: string[];
  afterFirstEnrolment: boolean;
  /** A reason is on record (sealed as a salted hash; its text is not shown publicly: ADR 0050). */
  reasonRecorded: boolean;
  matchesSeal: boolean;
  seal: PublicSeal;
}

/**
 * When the randomization list was committed: the `randomization.committed` entry's time and seal, nothing else
 * about the list (its strata, sizes and roots say nothing a reader needs; they are checked at unblinding).
 */
export interface PublicRandomizationCommitment {
  at: string;
  seal: PublicSeal;
}

export interface PublicDatabaseLock {
  at: string;
  seal: PublicSeal;
  /** When the lock was released (unlocked), or null while it holds. */
  unlockedAt: string | null;
  /** The unlock's own entry (`lock.released`), when unlocked. */
  unlockSeal: PublicSeal | null;
  /** Unlocked after the study was unblinded. */
  unlockedAfterUnblinding: boolean;
}

export interface PublicRegistry {
  study: { code: string; title: string };
  publishedSince: string | null;
  documents: PublicDocument[];
  outcomes: PublicOutcomeVersion[];
  /**
   * The SAP version in force (the newest registered SAP), and whether it is newer than the one the current outcome
   * list was sealed with (the list unchanged since): null when no SAP is registered.
   */
  sapInForce: string | null;
  /** When the randomization list was committed, or null before it is. */
  randomizationCommitted: PublicRandomizationCommitment | null;
  /** Each database lock, and its unlock when it was unlocked (with when, and whether that was after unblinding). */
  databaseLocks: PublicDatabaseLock[];
  unblindings: { at: string; seal: PublicSeal }[];
  /** True when the database was unlocked after the study was unblinded: data could change with the arms known. */
  unlockedAfterUnblinding: boolean;
  /** Proof bundles are served to signed-in study staff only (GET /api/v1/entries/ID/proof). */
  proofBundles: "sign-in required";
}

/** The public page's data, or null when there is no such study or its page is not published (both: 404). */
export async function publicRegistry(ctx: AppContext, code: string): Promise<PublicRegistry | null> {
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(code)) return null;
  const study = await findStudy(ctx, code);
  if (!study) return null;
  const reg = await registrationState(ctx.db, study.id);
  if (!reg.published) return null;
  const docs = await ctx.db
    .select({
      id: studyDocuments.id,
      type: studyDocuments.type,
      version: studyDocuments.version,
      sha256: studyDocuments.sha256,
      bytes: studyDocuments.bytes,
      approvedOn: studyDocuments.approvedOn,
      approvingBody: studyDocuments.approvingBody,
      replacesId: studyDocuments.replacesId,
      fileName: studyDocuments.fileName,
      reason: studyDocuments.reason,
      actorUserId: studyDocuments.actorUserId,
      actorTokenId: studyDocuments.actorTokenId,
      actorTokenName: studyDocuments.actorTokenName,
      // The stored PDF's own SHA-256, computed by the database (the bytes never leave it for this page).
      contentSha256: sql<string>`encode(sha256(${studyDocuments.content}), 'hex')`,
      createdAt: studyDocuments.createdAt,
      entryId: studyDocuments.entryId,
    })
    .from(studyDocuments)
    .where(eq(studyDocuments.studyId, study.id))
    .orderBy(asc(studyDocuments.type), asc(studyDocuments.createdAt), asc(studyDocuments.id));
  const history = await outcomeHistory(ctx, study.id);
  const locks = rowsOf<Record<string, unknown>>(
    await ctx.db.execute(
      sql`SELECT d.created_at, d.entry_id, d.lock_id, l.released_at,
                 (SELECT e.id FROM ledger_entries e WHERE e.kind = 'lock.released' AND e.study_code = ${study.code}
                     AND e.payload_text LIKE '%"lock":"' || d.lock_id || '"%'
                   ORDER BY e.at LIMIT 1) AS release_entry_id
            FROM database_locks d JOIN locks l ON l.id = d.lock_id
           WHERE d.study_id = ${study.id} ORDER BY d.created_at, d.id`,
    ),
  );
  const unblindings = rowsOf<Record<string, unknown>>(
    await ctx.db.execute(
      sql`SELECT created_at, entry_id FROM randomization_unblindings WHERE study_id = ${study.id}
          ORDER BY created_at, id`,
    ),
  );
  const commitments = rowsOf<Record<string, unknown>>(
    await ctx.db.execute(
      sql`SELECT committed_at AS created_at, entry_id FROM randomization_lists
           WHERE study_id = ${study.id} AND committed_at IS NOT NULL AND entry_id IS NOT NULL
           ORDER BY committed_at LIMIT 1`,
    ),
  );
  const outcomeRows = rowsOf<Record<string, unknown>>(
    await ctx.db.execute(sql`SELECT id, outcomes_text FROM sap_outcome_sets WHERE study_id = ${study.id}`),
  );
  const e = await entries(ctx, [
    ...docs.map((d) => d.entryId),
    ...history.map((h) => h.entryId),
    ...locks.map((l) => String(l.entry_id)),
    ...locks.filter((l) => l.release_entry_id).map((l) => String(l.release_entry_id)),
    ...unblindings.map((u) => String(u.entry_id)),
    ...commitments.map((c) => String(c.entry_id)),
  ]);
  const cache = new Map<number, PublicSeal["anchors"]>();
  const versionOf = new Map(docs.map((d) => [d.id, d.version]));
  const documents: PublicDocument[] = [];
  for (const d of docs) {
    const entry = e.get(d.entryId);
    const p = entry?.payload ?? {};
    const sha = hexOf(d.sha256);
    const differences = documentSealDifferences(
      ctx.crypto,
      d,
      entry?.payload ? JSON.stringify(entry.payload) : null,
      d.contentSha256,
    );
    documents.push({
      type: d.type,
      typeWords: DOCUMENT_TYPE_WORDS[d.type] ?? d.type,
      version: d.version,
      approvedOn: d.approvedOn,
      approvingBody: d.approvingBody,
      replaces: d.replacesId ? (versionOf.get(d.replacesId) ?? null) : null,
      sha256: typeof p.sha256 === "string" ? p.sha256 : sha,
      bytes: d.bytes,
      matchesSeal: differences.length === 0,
      differences,
      entry: d.entryId,
      seal: await sealOf(ctx, entry, cache),
    });
  }
  const textOf = new Map(outcomeRows.map((r) => [String(r.id), r]));
  const outcomes: PublicOutcomeVersion[] = [];
  for (const h of history) {
    const entry = e.get(h.entryId);
    const p = entry?.payload ?? {};
    const row = textOf.get(h.id);
    const matchesSeal =
      typeof p.salt === "string" &&
      p.outcomes === h.id &&
      p.afterFirstEnrolment === h.afterFirstEnrolment &&
      p.outcomesHash === saltedTextHash(ctx.crypto, p.salt, String(row?.outcomes_text ?? ""));
    outcomes.push({
      version: h.version,
      sapVersion: h.sapVersion,
      setAt: h.createdAt,
      outcomes: h.outcomes,
      changes: h.changes.map((c) => c.words),
      afterFirstEnrolment: h.afterFirstEnrolment,
      reasonRecorded: typeof p.reasonHash === "string",
      matchesSeal,
      seal: await sealOf(ctx, entry, cache),
    });
  }
  const timed = async (rows: Record<string, unknown>[]) =>
    Promise.all(
      rows.map(async (r) => ({
        at: iso(r.created_at) ?? "",
        seal: await sealOf(ctx, e.get(String(r.entry_id)), cache),
      })),
    );
  const unblinded = await timed(unblindings);
  const firstUnblinding = unblinded.length ? Date.parse(unblinded[0].at) : null;
  const databaseLocks: PublicDatabaseLock[] = [];
  for (const l of locks) {
    const unlockedAt = iso(l.released_at);
    databaseLocks.push({
      at: iso(l.created_at) ?? "",
      seal: await sealOf(ctx, e.get(String(l.entry_id)), cache),
      unlockedAt,
      unlockSeal: unlockedAt ? await sealOf(ctx, e.get(String(l.release_entry_id)), cache) : null,
      unlockedAfterUnblinding:
        unlockedAt !== null && firstUnblinding !== null && Date.parse(unlockedAt) > firstUnblinding,
    });
  }
  // The SAP in force: the newest registered SAP version whose row matches its seal.
  const saps = documents.filter((x) => x.type === "sap" && x.matchesSeal);
  const [committedList] = await timed(commitments);
  return {
    study: { code: study.code, title: study.title },
    publishedSince: reg.since,
    documents,
    outcomes,
    sapInForce: saps.length ? saps[saps.length - 1].version : null,
    randomizationCommitted: committedList ?? null,
    databaseLocks,
    unblindings: unblinded,
    unlockedAfterUnblinding: databaseLocks.some((l) => l.unlockedAfterUnblinding),
    proofBundles: "sign-in required",
  };
}
