/**
 * The whole-study audit (`trialseal audit`, and the regulator's study page): re-reads everything from the
 * database and recomputes it. The log itself (anchoring/verifier/log-auditor.ts): every payload hash, envelope, leaf,
 * batch root and header, the batch log and every checkpoint signature and root, consecutive batches, gapless
 * seq and studySeq. The anchors: each receipt against its checkpoint, and against the ledger itself (the local
 * ledger file, the chain), not the copy in the database. The data: each record's `prev` chain, and every row
 * the portal shows (record versions and current values, e-signatures, SDV marks, consent signatures and
 * withdrawals, participants, delegations, locks, queries, form versions and their definitions' SHA-256, which
 * signature another repeats) against the ledger entry it claims to be. Record values are named, never printed.
 * Reads are paged; memory is bounded by the batch log's levels and one small state per record.
 */
import { eq } from "drizzle-orm";
import { canonicalize } from "../../anchoring/log/canonical.ts";
import { toHex, utf8 } from "../../anchoring/log/bytes.ts";
import { LogAuditor, type AuditFinding, type StoredEntry } from "../../anchoring/verifier/log-auditor.ts";
import { checkpointHash } from "../../anchoring/log/checkpoint.ts";
import { verifyAnchor } from "../../anchoring/verifier/verify-anchor.ts";
import { AnchorReceiptSchema, type AnchorReceipt } from "../../anchoring/ledgers/receipt.ts";
import { listStudies } from "../../db/queries/studies.ts";
import {
  anchoredReceipts,
  batchLogSizeNow,
  batchesFrom,
  checkpointsAll,
  countBatches,
  streamLogEntries,
  entriesWithoutRow,
  nextStudySeqsBefore,
  rowsWithEntries,
  sdvMarksWithEntries,
  strayEntries,
  studyEntriesOfKinds,
  studyTableRows,
} from "../../db/queries/integrity-audit.ts";
import type { AppContext } from "../platform/context.server.ts";
import type { Db } from "../../db/client.ts";
import { sealedReadContext } from "../platform/sealed-reads.server.ts";
import { forms } from "../../db/schema/index.ts";
import { rowFieldsAsSealed, sealFormColumns, type SealedVersion } from "../records/seal-match.server.ts";
import { deploymentTrustPolicy } from "../anchor-worker/anchor-worker.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { auditTrailFindings } from "./audit-trail-checks.server.ts";
import { contactFindings } from "./contact-checks.server.ts";
import { freeTextFindings } from "./free-text-checks.server.ts";
import { paperAttestationFindings } from "./paper-attestation-checks.server.ts";
import { siteFindings } from "./site-checks.server.ts";
import { queryEventFindings } from "./query-event-checks.server.ts";
import { dispositionFindings } from "./disposition-checks.server.ts";
import { importFindings } from "./import-checks.server.ts";
import { hexOf, jsonOf, type LinkedTable, payloadOf, type Row, seqOf } from "./linked-table.ts";
import { preCommitmentFindings, preCommitmentLinks } from "./pre-commitment-checks.server.ts";
import { drugSupplyFindings, drugSupplyLinks } from "./drug-supply-checks.server.ts";
import { dataSharingFindings, dataSharingLinks } from "./data-sharing-checks.server.ts";
import { hashedTextMatches, hashedTextPair, textMatchesPayload } from "../../anchoring/log/text-hash.ts";

export interface AuditProgress {
  phase: "log" | "anchors" | "data";
  done: number;
  total: number;
}

export interface AuditOptions {
  study?: string;
  /** Take batches before this checkpoint's tree size as already audited (their headers still form the log). */
  fromCheckpoint?: number;
  /** Told after each step; a returned promise is awaited before the audit goes on. */
  onProgress?: (p: AuditProgress) => unknown;
}

export interface AuditReport {
  clean: boolean;
  study: string | null;
  origin: string;
  /**
   * The log size checked: the batches the log held as the audit started. Batches sealed while it ran, with their
   * entries, checkpoints and anchors, are left to the next audit. Absent in reports stored before it was added.
   */
  logSize?: number;
  startedAt: string;
  finishedAt: string;
  checked: { entries: number; batches: number; checkpoints: number; anchors: number; records: number; rows: number };
  findings: AuditFinding[];
}

const PAGE = 200;

/**
 * The log's entries read once, in seq order, a page at a time (db/queries/integrity-audit.ts streamLogEntries): each
 * batch is handed the entries of its seq range [from, to), one by one, exactly what a query of that range returns.
 * Consecutive batches continue the same scan; a batch that does not start where the previous one ended (a gap or an
 * overlap, itself a finding) starts a new scan at its first seq. Only the page in hand and the one read ahead are
 * held, never a whole batch's entries.
 */
const DONE = null as unknown as StoredEntry;
class LogEntryReader {
  private scan: AsyncGenerator<StoredEntry[]> | null = null;
  private page: StoredEntry[] = [];
  private i = 0;
  private pos = Number.NaN;
  /** `end`: the seq after the last batch the audit checks; a scan reads no further (unless a range asks for more). */
  constructor(
    private readonly db: Db,
    private readonly end = Number.MAX_SAFE_INTEGER,
  ) {}

  async range(from: number, to: number, each: (e: StoredEntry) => void): Promise<void> {
    if (from !== this.pos || !this.scan) {
      await this.scan?.return(undefined);
      this.scan = streamLogEntries(this.db, from, Math.max(to, this.end), 2000);
      this.page = [];
      this.i = 0;
    }
    for (;;) {
      if (this.i >= this.page.length) {
        const next = await this.scan.next();
        if (next.done) break;
        [this.page, this.i] = [next.value, 0];
        continue;
      }
      const e = this.page[this.i];
      if (e.seq >= to) break;
      this.page[this.i++] = DONE; // let the entry go as soon as it is checked
      each(e);
    }
    this.pos = to;
  }
}

/**
 * The audit runs whole on one database (ADR 0044): on the read replica when it has replayed at least the primary's
 * latest checkpoint as the audit starts, else (or when the replica fails) on the primary. It reads current rows too,
 * so mixing a lagging replica's log with the primary's rows could report rows changed behind the log that were not.
 */
export async function runIntegrityAudit(ctx: AppContext, opts: AuditOptions = {}): Promise<AuditReport> {
  return sealedReadContext(ctx, (readCtx) => auditOn(readCtx, opts), { fresh: true });
}

async function auditOn(ctx: AppContext, opts: AuditOptions): Promise<AuditReport> {
  const startedAt = new Date().toISOString();
  const study = opts.study ? await getStudyOrThrow(ctx, opts.study) : null;
  const policy = deploymentTrustPolicy(ctx);
  const auditor = new LogAuditor(ctx.crypto, policy, { study: study?.code });
  const findings = auditor.findings;
  const progress = opts.onProgress ?? (() => {});
  const from = opts.fromCheckpoint ?? 0;
  if (!Number.isInteger(from) || from < 0)
    throw new ServiceError("invalid", "--from-checkpoint must be a whole number (a log size)", "fromCheckpoint");

  // 1. The log: batches in order with their entries, each checkpoint right after the batches it covers. The log as of
  // the start: the sealer keeps sealing (a batch, its entries and its checkpoint in one transaction), so the batches
  // are read below `size`, the larger of the log's size read first and the largest checkpoint read after it (every
  // batch counted had its checkpoint committed with it, so a checkpoint missing there was deleted, not late). What is
  // sealed meanwhile (batches, their entries and checkpoints, anchors of them) is left to the next audit.
  const sizeFirst = await batchLogSizeNow(ctx.db);
  const cps = await checkpointsAll(ctx.db);
  const size = Math.max(sizeFirst, cps.length ? cps[cps.length - 1].treeSize : 0); // cps: by tree size
  if (from > 0 && !cps.some((c) => c.treeSize === from))
    throw new ServiceError("invalid", `there is no checkpoint of size ${from}`, "fromCheckpoint");
  const cpBySize = new Map(cps.map((c) => [c.treeSize, c]));
  const total = await countBatches(ctx.db, size);
  const [lastBatch] = size > 0 ? await batchesFrom(ctx.db, size - 2, 1, size) : [];
  let last = -1;
  let done = 0;
  const reader = new LogEntryReader(ctx.db, lastBatch ? lastBatch.firstSeq + lastBatch.size : undefined);
  for (;;) {
    const page = await batchesFrom(ctx.db, last, PAGE, size);
    if (page.length === 0) break;
    for (const b of page) {
      const trusted = b.batchNo < from;
      if (b.batchNo === from && from > 0) auditor.seedStudySeqs(await nextStudySeqsBefore(ctx.db, b.firstSeq));
      auditor.beginBatch(b, trusted);
      if (!trusted) await reader.range(b.firstSeq, b.firstSeq + b.size, (e) => auditor.batchEntry(e));
      auditor.endBatch();
      const cp = cpBySize.get(b.batchNo + 1);
      if (cp && b.batchNo + 1 >= from) auditor.checkpoint(cp);
      else if (cp) auditor.skipCheckpoint(cp.treeSize);
      last = b.batchNo;
      const told = progress({ phase: "log", done: ++done, total });
      if (told instanceof Promise) await told;
    }
  }
  auditor.finishCheckpoints();
  for (const cp of cps)
    if (cp.treeSize > auditor.batchLogSize)
      findings.push({
        code: "CHECKPOINT_INVALID",
        severity: "tamper",
        treeSize: cp.treeSize,
        message: `checkpoint ${cp.treeSize} signs more batches than the log holds (${auditor.batchLogSize})`,
      });
  for (const e of await strayEntries(ctx.db, auditor.logEnd, size)) auditor.strayEntry(e);

  // 2. Anchors: each receipt against its checkpoint and against the ledger itself. An anchor of a checkpoint sealed
  // since the start is the next audit's; one of a log size the log has not reached even now (read after the anchors,
  // so it holds the checkpoint of every anchor read) names a checkpoint that is not stored.
  const allReceipts = await anchoredReceipts(ctx.db);
  const sizeNow = await batchLogSizeNow(ctx.db);
  const receipts = allReceipts.filter((a) => a.treeSize <= size || a.treeSize > sizeNow);
  let anchorsChecked = 0;
  for (const a of receipts) {
    progress({ phase: "anchors", done: anchorsChecked, total: receipts.length });
    anchorsChecked++;
    const where = { ledger: a.ledger, treeSize: a.treeSize };
    const cp = cpBySize.get(a.treeSize);
    if (!cp) {
      findings.push({
        ...where,
        code: "ANCHOR_CHECKPOINT_MISMATCH",
        severity: "tamper",
        message: `${a.ledger} anchor of log size ${a.treeSize}: no such checkpoint is stored`,
      });
      continue;
    }
    let cpHash: string | null = null;
    try {
      cpHash = toHex(checkpointHash(ctx.crypto, cp.noteText));
    } catch {
      /* an unparseable note is already a CHECKPOINT_INVALID finding */
    }
    if (cpHash !== toHex(a.checkpointHash))
      findings.push({
        ...where,
        code: "ANCHOR_CHECKPOINT_MISMATCH",
        severity: "tamper",
        message: `${a.ledger} anchor of log size ${a.treeSize}: it anchored a different checkpoint than the one stored`,
      });
    let receipt: AnchorReceipt;
    try {
      receipt = AnchorReceiptSchema.parse(JSON.parse(a.receiptText!));
    } catch (err) {
      findings.push({
        ...where,
        code: "ANCHOR_INVALID",
        severity: "tamper",
        message:
          `${a.ledger} anchor of log size ${a.treeSize}: ` +
          `the stored receipt is malformed (${(err as Error).message})`,
      });
      continue;
    }
    const check = await verifyAnchor(
      ctx.crypto,
      { ledger: a.ledger, receipt },
      { note: cp.noteText, treeSize: cp.treeSize, origin: policy.origin },
      policy.ledgers,
    );
    if (check.status === "failed")
      findings.push({
        ...where,
        code: "ANCHOR_INVALID",
        severity: "tamper",
        message: `${a.ledger} anchor of log size ${a.treeSize}: ${check.code}: ${check.message}`,
      });
    const ledger = ctx.ledgers.find((l) => l.ledger.name === a.ledger)?.ledger;
    if (!ledger) {
      findings.push({
        ...where,
        code: "ANCHOR_NOT_CHECKED",
        severity: "info",
        message:
          `${a.ledger} anchor of log size ${a.treeSize}: ` +
          "that ledger is not configured here, so the ledger itself was not consulted",
      });
      continue;
    }
    try {
      const now = await ledger.refresh(receipt);
      if (now.status === "pending")
        findings.push({
          ...where,
          code: "ANCHOR_NOT_IN_LEDGER",
          severity: "tamper",
          message: `${a.ledger} anchor of log size ${a.treeSize}: the ledger no longer holds it`,
        });
    } catch (err) {
      const msg = (err as Error).message;
      const unreachable = (err as { retryable?: boolean }).retryable === true;
      findings.push({
        ...where,
        code: unreachable ? "ANCHOR_NOT_CHECKED" : "ANCHOR_NOT_IN_LEDGER",
        severity: unreachable ? "info" : "tamper",
        message: `${a.ledger} anchor of log size ${a.treeSize}: ${msg}`,
      });
    }
  }

  // 3. The data rows of each study against the log.
  const studies = study ? [study] : await listStudies(ctx.db);
  let records = 0;
  let rows = 0;
  for (const [i, s] of studies.entries()) {
    progress({ phase: "data", done: i, total: studies.length });
    const r = await auditStudyData(ctx, { id: s.id, code: s.code }, findings);
    records += r.records;
    rows += r.rows;
    rows += (await contactFindings(ctx, { id: s.id, code: s.code }, findings)).rows; // ADR 0018
    rows += (await freeTextFindings(ctx, { id: s.id, code: s.code }, findings)).rows; // ADR 0020
    rows += (await siteFindings(ctx, { id: s.id, code: s.code }, findings)).rows; // ADR 0030: sites' time zones
    rows += (await dispositionFindings(ctx, { id: s.id, code: s.code }, findings)).rows; // ADR 0033
    rows += (await queryEventFindings(ctx, { id: s.id, code: s.code }, findings)).rows; // ADR 0034: query histories
    rows += (await importFindings(ctx, { id: s.id, code: s.code }, findings)).rows; // ADR 0037: imports
    rows += (await preCommitmentFindings(ctx, { id: s.id, code: s.code }, findings)).rows; // issue 20
    rows += (await drugSupplyFindings(ctx, { id: s.id, code: s.code }, findings)).rows; // issue 21
    rows += (await dataSharingFindings(ctx, { id: s.id, code: s.code }, findings)).rows; // issue 22
  }
  rows += (await auditTrailFindings(ctx, study ? { id: study.id, code: study.code } : null, findings)).rows; // ADR 0016
  progress({ phase: "data", done: studies.length, total: studies.length });

  findings.sort((a, b) => (a.severity === b.severity ? 0 : a.severity === "tamper" ? -1 : 1));
  return {
    clean: !findings.some((f) => f.severity === "tamper"),
    study: study?.code ?? null,
    origin: policy.origin,
    logSize: size,
    startedAt,
    finishedAt: new Date().toISOString(),
    checked: {
      entries: auditor.entriesChecked,
      batches: auditor.batchesChecked,
      checkpoints: auditor.checkpointsChecked,
      anchors: anchorsChecked,
      records,
      rows,
    },
    findings,
  };
}

/**
 * A record_versions row against its record.saved entry, field by field, in the payload's own version: from v3 the
 * identifier and free-text values' salted hashes, the calculated values, the missing-data codes with their reasons'
 * salted hashes and the form version's SHA-256 too (ADR 0025); the record id is in every message.
 */
function recordVersionComparison(
  ctx: AppContext,
  r: Row,
  p: Record<string, unknown>,
  formRows: Map<string, NonNullable<SealedVersion["formRow"]>>,
): [string, unknown, unknown][] {
  const row: SealedVersion = {
    recordId: String(r.record_id),
    version: Number(r.version),
    formVersion: Number(r.form_version),
    dataText: String(r.data_text),
    missingText: (r.missing_text ?? null) as string | null,
    calculatedText: (r.calculated_text ?? null) as string | null,
    reason: (r.reason ?? null) as string | null,
    sourceText: (r.source_text ?? null) as string | null, // issue 18: an imported version's source (ADR 0037)
    formRow: formRows.get(String(r.form_id)),
    payloadText: "",
    payloadHash: "",
  };
  let fromRows: Record<string, unknown>;
  try {
    fromRows = rowFieldsAsSealed(ctx.crypto, p, row);
  } catch {
    // Named, never printed: the text may hold identifiers and free text.
    return [["values", "(values that cannot be read with their form version)", "(values readable with it)"]];
  }
  return Object.entries(fromRows).map(([field, value]) => [
    field === "reasonHash" ? "reason" : field,
    typeof value === "object" && value !== null ? canonicalize(value) : value,
    typeof p[field] === "object" && p[field] !== null ? canonicalize(p[field]) : p[field],
  ]);
}

type Flag = (x: Omit<AuditFinding, "study" | "severity"> & { severity?: AuditFinding["severity"] }) => void;

/**
 * Each form version: its stored definition text must still hash to its definition SHA-256 (drafts included), and
 * an approved (or retired) version must match its form.approved entry: code, version, hash. A deleted version's
 * approval entry is named too. Findings name the form and version, never the definition's text.
 */
async function formVersionFindings(ctx: AppContext, study: { id: string }, f: Flag) {
  let rows = 0;
  for (const r of await rowsWithEntries(ctx.db, "forms", "approval_entry_id", study.id)) {
    rows++;
    const id = String(r.id);
    const what = `form ${r.code} version ${r.version}`;
    const sha = hexOf(r.definition_sha256).toLowerCase();
    if (toHex(ctx.crypto.sha256(utf8(String(r.definition_text)))) !== sha)
      f({
        code: "DATA_ROW_MISMATCH",
        table: "forms",
        id,
        seq: seqOf(r),
        field: "definition_text",
        message: `${what}: its stored definition no longer matches its definition SHA-256 (edited behind the log?)`,
      });
    if (r.approval_entry_id === null && r.status === "draft") continue;
    const p = payloadOf(r);
    if (!r.e_id || !p || r.e_kind !== "form.approved") {
      f({
        code: "DATA_ROW_UNLOGGED",
        table: "forms",
        id,
        message: `${what} is ${r.status} but has no form.approved ledger entry behind it`,
      });
      continue;
    }
    for (const [field, a, b] of [
      ["code", r.code, p.form],
      ["version", Number(r.version), p.version],
      ["definitionSha256", sha, p.definitionSha256],
      ["status", r.status === "draft" ? "draft" : "approved", "approved"],
    ] as const)
      if (a !== b)
        f({
          code: "DATA_ROW_MISMATCH",
          table: "forms",
          id,
          seq: seqOf(r),
          field,
          message: `${what}: its ${field} differs from its form.approved entry (form ${p.form} version ${p.version})`,
        });
  }
  for (const e of await entriesWithoutRow(ctx.db, study.id, "form.approved", "forms", "approval_entry_id"))
    f({
      code: "DATA_ROW_MISSING",
      table: "forms",
      seq: e.seq ?? undefined,
      message: `the form.approved entry${e.seq === null ? ` ${e.id}` : ` seq ${e.seq}`} has no forms row (deleted?)`,
    });
  return rows;
}

/**
 * `signatures.repeats` (migration 0021) hides a signature from "already signed": it may only point to the earliest
 * signature of the same record, version, signer and meaning, signed before it.
 */
async function signatureRepeatFindings(ctx: AppContext, study: { id: string }, f: Flag) {
  const sigs = await rowsWithEntries(ctx.db, "signatures", "entry_id", study.id);
  const key = (r: Row) => `${r.record_id}|${r.version}|${r.signer_id}|${r.meaning}`;
  const at = (r: Row) => new Date(String(r.signed_at)).getTime();
  const order = (a: Row, b: Row) =>
    at(a) - at(b) || (seqOf(a) ?? Number.MAX_SAFE_INTEGER) - (seqOf(b) ?? Number.MAX_SAFE_INTEGER);
  const earliest = new Map<string, Row>();
  for (const r of sigs) {
    const e = earliest.get(key(r));
    if (!e || order(r, e) < 0) earliest.set(key(r), r);
  }
  for (const r of sigs) {
    if (r.repeats === null || r.repeats === undefined) continue;
    const first = earliest.get(key(r))!;
    if (String(r.repeats) !== String(first.id) || first.id === r.id || order(first, r) >= 0)
      f({
        code: "DATA_ROW_MISMATCH",
        table: "signatures",
        id: String(r.id),
        seq: seqOf(r),
        field: "repeats",
        message:
          `signature ${r.id} (record ${r.record_id}, version ${r.version}, ${r.meaning}) is marked as repeating ` +
          `signature ${r.repeats}, which is not the earliest signature of that signer, version and meaning`,
      });
  }
  return 0; // the rows are counted with the signatures table's linked check
}

async function auditStudyData(ctx: AppContext, study: { id: string; code: string }, findings: AuditFinding[]) {
  const f = (x: Omit<AuditFinding, "study" | "severity"> & { severity?: AuditFinding["severity"] }) =>
    findings.push({ severity: "tamper", study: study.code, ...x });
  let rows = 0;

  // Each record's chain of versions, from the log alone.
  const chain = new Map<string, { version: number; hash: string; form: string; visit: string; instance: number }>();
  let after: { seq: number | null; at: Date; id: string } | null = null;
  for (;;) {
    const page = await studyEntriesOfKinds(ctx.db, study.id, ["record.saved"], after, 1000);
    if (page.length === 0) break;
    for (const e of page) {
      let p: { record: string; version: number; prev: string | null; form: string; visit: string; instance?: number };
      try {
        p = JSON.parse(e.payloadText);
      } catch {
        continue; // reported by the log audit
      }
      const hash = toHex(e.payloadHash);
      const prev = chain.get(p.record);
      const wantVersion = prev ? prev.version + 1 : 1;
      const wantPrev = prev ? prev.hash : null;
      if (p.version !== wantVersion || p.prev !== wantPrev) {
        f({
          code: "RECORD_CHAIN_BROKEN",
          seq: e.seq ?? undefined,
          id: p.record,
          message: `record ${p.record}: version ${p.version} ${
            p.prev === wantPrev
              ? ""
              : `chains to ${String(p.prev).slice(0, 12)}… instead of version ${wantVersion - 1}'s payload hash `
          }(expected version ${wantVersion})`,
        });
      }
      // The row of a repeating form (record.saved v3; 1 before) is the record's for good (ADR 0026).
      const instance = p.instance ?? 1;
      if (prev && prev.instance !== instance)
        f({
          code: "RECORD_CHAIN_BROKEN",
          seq: e.seq ?? undefined,
          id: p.record,
          message:
            `record ${p.record}: version ${p.version} is row ${instance}, ` +
            `version ${prev.version} row ${prev.instance}`,
        });
      chain.set(p.record, { version: p.version, hash, form: p.form, visit: p.visit, instance });
    }
    const l = page[page.length - 1];
    after = { seq: l.seq, at: l.at, id: l.id };
  }

  // Tables whose rows each name their ledger entry: every row must match its entry, every entry must have its row.
  const formRows = new Map(
    (await ctx.db.select(sealFormColumns).from(forms).where(eq(forms.studyId, study.id))).map((x) => [x.id, x]),
  );
  const linked: LinkedTable[] = [
    {
      table: "record_versions",
      column: "entry_id",
      kind: "record.saved",
      compare: (r, p) => recordVersionComparison(ctx, r, p, formRows),
      label: (r) => `record ${r.record_id}, version ${r.version}`,
      namesOnly: true,
    },
    {
      table: "signatures",
      column: "entry_id",
      kind: "signature.applied",
      compare: (r, p) => [
        ["signature", r.id, p.signature],
        ["record", r.record_id, p.record],
        ["version", Number(r.version), p.version],
        ["signedPayloadHash", hexOf(r.signed_payload_hash), p.signedPayloadHash],
        ["meaning", r.meaning, p.meaning],
        ["signer", r.signer_id, p.signer],
      ],
    },
    {
      table: "consent_signatures",
      column: "entry_id",
      kind: "consent.signed",
      compare: (r, p) => [
        ["signature", r.id, p.signature],
        ["signerRole", r.signer_role, p.signerRole],
        ["meaning", r.meaning, p.meaning],
        [
          "options",
          canonicalize(typeof r.options === "string" ? JSON.parse(r.options) : r.options),
          canonicalize(p.options),
        ],
        ["countersigns", r.countersigns ?? null, p.countersigns],
        ["fromStaffDevice", r.from_staff_device, p.fromStaffDevice],
      ],
    },
    {
      table: "consent_withdrawals",
      column: "entry_id",
      kind: "consent.withdrawn",
      compare: (r, p) => {
        const allows = (typeof r.allows === "string" ? JSON.parse(r.allows) : r.allows) as {
          followUp?: boolean;
          optionalWithdrawn?: string[];
        };
        return [
          ["withdrawal", r.id, p.withdrawal],
          ["scope", r.scope, p.scope],
          ["followUp", allows.followUp ?? false, p.followUp],
          ["optionalWithdrawn", canonicalize(allows.optionalWithdrawn ?? []), canonicalize(p.optionalWithdrawn)],
          // v1: the reason's plain SHA-256; v2: its salted hash (ADR 0020).
          ["reason", ...hashedTextPair(ctx.crypto, p, "reason", r.reason ? String(r.reason) : null)],
        ];
      },
    },
    {
      table: "participants",
      column: "entry_id",
      kind: "participant.enrolled",
      compare: (r, p) => [["subject", r.subject_code, p.subject]],
    },
    {
      // A consent on paper: its scan's sealed SHA-256 (ADR 0021).
      table: "paper_consents",
      column: "entry_id",
      kind: "consent.paper_scanned",
      compare: (r, p) => [
        ["paper", r.id, p.paper],
        ["scanSha256", hexOf(r.scan_sha256), p.scanSha256],
        ["scanBytes", Number(r.scan_bytes), p.scanBytes],
      ],
    },
    {
      // A study's settings in force (ADR 0021).
      table: "study_settings",
      column: "entry_id",
      kind: "study.settings_changed",
      compare: (r, p) => [
        ["version", Number(r.version), p.version],
        [
          "formsBeforeConsent",
          canonicalize(
            typeof r.forms_before_consent === "string" ? JSON.parse(r.forms_before_consent) : r.forms_before_consent,
          ),
          canonicalize(p.formsBeforeConsent),
        ],
        // Version 1 payloads hold no targets: the row must hold none either.
        ["enrolmentTargets", jsonOf(r.enrolment_targets), p.enrolmentTargets ?? null],
        // Version 3 (issue 22) holds whether participants see staff names; earlier versions mean they do not.
        ["staffNamesToParticipants", r.staff_names_to_participants === true, p.staffNamesToParticipants ?? false],
      ],
    },
    {
      // A participant's disposition (issue 18): the reason only as its salted hash, so it is compared, never shown.
      table: "participant_dispositions",
      column: "entry_id",
      kind: "participant.disposition_set",
      compare: (r, p) => [
        ["status", r.status, p.status],
        ["previous", r.previous ?? null, p.previous],
        ["date", r.effective_date, p.date],
        ["reason", hashedTextMatches(ctx.crypto, p, "reason", r.reason === null ? null : String(r.reason)), true],
        ["actor", r.actor_user_id ?? null, p.actor],
        ["token", r.actor_token_id ?? null, (p.token as { id?: string } | undefined)?.id ?? null],
        ["tokenName", r.actor_token_name ?? null, (p.token as { name?: string } | undefined)?.name ?? null],
      ],
      label: (r) => `disposition ${r.status}`,
    },
    {
      // A version of the visit schedule (issue 18): its definition text must hash to the sealed SHA-256.
      table: "visit_schedules",
      column: "entry_id",
      kind: "schedule.set",
      compare: (r, p) => [
        ["version", Number(r.version), p.version],
        ["definitionSha256", hexOf(r.definition_sha256), p.sha256],
        ["definitionText", toHex(ctx.crypto.sha256(utf8(String(r.definition_text)))), p.sha256],
        ["actor", r.created_by ?? null, p.actor],
        ["token", r.actor_token_id ?? null, (p.token as { id?: string } | undefined)?.id ?? null],
        ["tokenName", r.actor_token_name ?? null, (p.token as { name?: string } | undefined)?.name ?? null],
      ],
      label: (r) => `schedule version ${r.version}`,
      namesOnly: true,
    },
    {
      table: "delegations",
      column: "entry_id",
      kind: "delegation.granted",
      compare: (r, p) => [
        ["delegation", r.id, p.delegation],
        ["task", r.task, p.task],
        ["startsOn", r.starts_on, p.startsOn],
        ["endsOn", r.ends_on ?? null, p.endsOn],
      ],
    },
    ...preCommitmentLinks(ctx), // issue 20: documents, outcomes, registration, randomization, database lock
    ...drugSupplyLinks(ctx), // issue 21: lots, kits, shipments, dispensing, returns, destructions, reconciliations
    ...dataSharingLinks(ctx), // issue 22: choice changes, data-use requests, decisions, deliveries
  ];
  for (const t of linked) {
    for (const r of await rowsWithEntries(ctx.db, t.table, t.column, study.id)) {
      rows++;
      const p = payloadOf(r);
      if (!r.e_id || !p || r.e_kind !== t.kind) {
        f({
          code: "DATA_ROW_UNLOGGED",
          table: t.table,
          id: String(r.id),
          message:
            `${t.table} row ${r.id} has no ` + `${t.kind} ledger entry behind it (inserted behind the portal's back?)`,
        });
        continue;
      }
      if (r.e_study !== null && r.e_study !== undefined && String(r.e_study) !== study.id)
        f({
          code: "DATA_ROW_MISMATCH",
          table: t.table,
          id: String(r.id),
          seq: seqOf(r),
          field: "study",
          message: `${t.table} row ${r.id}: its ledger entry is of another study (moved behind the portal's back?)`,
        });
      for (const [field, rowValue, logValue] of t.compare(r, p)) {
        if (canonicalize(rowValue ?? null) !== canonicalize(logValue ?? null))
          f({
            code: "DATA_ROW_MISMATCH",
            table: t.table,
            id: String(r.id),
            seq: seqOf(r),
            field,
            message: t.namesOnly
              ? `${t.table} row ${r.id}${t.label ? ` (${t.label(r)})` : ""}: ${field} differs between ` +
                "the database and its ledger entry"
              : `${t.table} row ${r.id}${t.label ? ` (${t.label(r)})` : ""}: ${field} is ${JSON.stringify(rowValue)} ` +
                `in the database ` +
                `but ${JSON.stringify(logValue)} in its ledger entry`,
          });
      }
    }
    for (const e of await entriesWithoutRow(ctx.db, study.id, t.kind, t.table, t.column)) {
      f({
        code: "DATA_ROW_MISSING",
        table: t.table,
        seq: e.seq ?? undefined,
        message: `the ${t.kind} entry${e.seq === null ? ` ${e.id}` : ` seq ${e.seq}`} has no ${t.table} row (deleted?)`,
      });
    }
  }
  rows += await formVersionFindings(ctx, study, f);
  rows += await signatureRepeatFindings(ctx, study, f);
  rows += await paperAttestationFindings(ctx, study, findings); // attestations against their entries (ADR 0021)
  for (const r of await sdvMarksWithEntries(ctx.db, study.id)) {
    rows++;
    const p = payloadOf(r);
    if (!p || r.e_kind !== "sdv.marked")
      f({
        code: "DATA_ROW_UNLOGGED",
        table: "sdv_marks",
        id: String(r.id),
        message: `sdv_marks row ${r.id} has no sdv.marked entry`,
      });
    else if (p.record !== r.record_id || p.version !== Number(r.version))
      f({
        code: "DATA_ROW_MISMATCH",
        table: "sdv_marks",
        id: String(r.id),
        seq: seqOf(r),
        field: "version",
        message: `sdv_marks row ${r.id} differs from its entry`,
      });
  }

  // Current record values and versions against the chain.
  const recs = await studyTableRows(ctx.db, "records", study.id);
  for (const r of recs) {
    rows++;
    const c = chain.get(String(r.id));
    if (!c) {
      f({
        code: "DATA_ROW_UNLOGGED",
        table: "records",
        id: String(r.id),
        message: `record ${r.id} (${r.form_code} ${r.visit}) has no record.saved entry`,
      });
      continue;
    }
    for (const [field, a, b] of [
      ["currentVersion", Number(r.current_version), c.version],
      ["form", r.form_code, c.form],
      ["visit", r.visit, c.visit],
      ["instance", Number(r.instance ?? 1), c.instance],
    ] as const) {
      if (a !== b)
        f({
          code: "DATA_ROW_MISMATCH",
          table: "records",
          id: String(r.id),
          field,
          message:
            `record ${r.id}: ${field} is ${JSON.stringify(a)} in the database ` + `but ${JSON.stringify(b)} in the log`,
        });
    }
  }
  for (const id of chain.keys())
    if (!recs.some((r) => r.id === id))
      f({
        code: "DATA_ROW_MISSING",
        table: "records",
        id,
        message: `record ${id} is in the log but not in the records table (deleted?)`,
      });

  // Locks and queries, from the events that name them.
  const events = new Map<string, { kind: string; p: Record<string, unknown>; seq: number | null }[]>();
  after = null;
  for (;;) {
    const page = await studyEntriesOfKinds(
      ctx.db,
      study.id,
      [
        "lock.set",
        "lock.released",
        "query.opened",
        "query.answered",
        "query.closed",
        "query.reopened",
        "consent.withdrawn",
      ],
      after,
      1000,
    );
    if (page.length === 0) break;
    for (const e of page) {
      try {
        const p = JSON.parse(e.payloadText) as Record<string, unknown>;
        const key = String(p.lock ?? p.query ?? `subject:${p.subject}`);
        events.set(key, [...(events.get(key) ?? []), { kind: e.kind, p, seq: e.seq }]);
      } catch {
        /* reported by the log audit */
      }
    }
    const l = page[page.length - 1];
    after = { seq: l.seq, at: l.at, id: l.id };
  }
  for (const r of await studyTableRows(ctx.db, "locks", study.id)) {
    rows++;
    const ev = events.get(String(r.id)) ?? [];
    const set = ev.find((x) => x.kind === "lock.set");
    if (!set) {
      f({ code: "DATA_ROW_UNLOGGED", table: "locks", id: String(r.id), message: `lock ${r.id} has no lock.set entry` });
      continue;
    }
    if (set.p.scope !== r.scope || !textMatchesPayload(ctx.crypto, set.p, "reason", r.reason as string | null))
      f({
        code: "DATA_ROW_MISMATCH",
        table: "locks",
        id: String(r.id),
        seq: set.seq ?? undefined,
        field: set.p.scope !== r.scope ? "scope" : "reason",
        message: `lock ${r.id} differs from its lock.set entry`,
      });
    const released = ev.some((x) => x.kind === "lock.released");
    if (released !== (r.released_at !== null))
      f({
        code: "DATA_ROW_MISMATCH",
        table: "locks",
        id: String(r.id),
        field: "released",
        message:
          `lock ${r.id} is ${r.released_at === null ? "active" : "released"} in the database ` +
          `but ${released ? "released" : "active"} in the log`,
      });
  }
  for (const r of await studyTableRows(ctx.db, "queries", study.id)) {
    rows++;
    const ev = events.get(String(r.id)) ?? [];
    const opened = ev.find((x) => x.kind === "query.opened");
    if (!opened) {
      f({
        code: "DATA_ROW_UNLOGGED",
        table: "queries",
        id: String(r.id),
        message: `query ${r.id} has no query.opened entry`,
      });
      continue;
    }
    const sha = (p: Record<string, unknown>, t: unknown) => hashedTextMatches(ctx.crypto, p, "text", String(t));
    if (!sha(opened.p, r.text) || opened.p.field !== r.field)
      f({
        code: "DATA_ROW_MISMATCH",
        table: "queries",
        id: String(r.id),
        seq: opened.seq ?? undefined,
        field: opened.p.field !== r.field ? "field" : "text",
        message:
          `query ${r.id}: its ${opened.p.field !== r.field ? "field" : "text"} ` +
          "differs from the query.opened entry",
      });
    // The status follows the latest step in log order (a re-open makes a query open again, ADR 0034); the answer
    // is the latest one given since the last re-open.
    let status = "open";
    let answered: (typeof ev)[number] | undefined;
    for (const x of ev) {
      if (x.kind === "query.answered") [status, answered] = ["answered", x];
      else if (x.kind === "query.closed") status = "closed";
      else if (x.kind === "query.reopened") [status, answered] = ["open", undefined];
    }
    if (answered && r.answer !== null && !sha(answered.p, r.answer))
      f({
        code: "DATA_ROW_MISMATCH",
        table: "queries",
        id: String(r.id),
        field: "answer",
        message: `query ${r.id}: the answer differs from the query.answered entry`,
      });
    if (status !== r.status)
      f({
        code: "DATA_ROW_MISMATCH",
        table: "queries",
        id: String(r.id),
        field: "status",
        message: `query ${r.id} is ${r.status} in the database but ${status} in the log`,
      });
  }
  // Participants: status follows a full withdrawal; erasure by the documented procedure is reported, not flagged.
  for (const r of await studyTableRows(ctx.db, "participants", study.id)) {
    const withdrawn = (events.get(`subject:${r.subject_code}`) ?? []).some(
      (x) => x.kind === "consent.withdrawn" && x.p.scope === "full",
    );
    if (withdrawn !== (r.status === "withdrawn"))
      f({
        code: "DATA_ROW_MISMATCH",
        table: "participants",
        id: String(r.id),
        field: "status",
        message:
          `subject ${r.subject_code} is ${r.status} in the database ` +
          `but ${withdrawn ? "withdrawn" : "not withdrawn"} in the log`,
      });
    if (r.erased_at !== null && r.erased_at !== undefined)
      f({
        code: "ERASED_BY_PROCEDURE",
        severity: "info",
        table: "participants",
        id: String(r.id),
        message:
          `subject ${r.subject_code}: personal data erased by procedure on ` +
          `${new Date(String(r.erased_at)).toISOString().slice(0, 10)} ` +
          "(subject key destroyed; the log and every proof are unaffected)",
      });
  }
  return { records: chain.size, rows };
}

/** The report for people: what was checked, then each finding on one line (tamper findings first). */
export function formatAuditReport(r: AuditReport): string {
  const lines = [
    `audit of ${r.study ? `study ${r.study} in ` : ""}${r.origin}: ${r.clean ? "CLEAN" : "FINDINGS"}`,
    `checked ${r.checked.entries} entries in ${r.checked.batches} batches, ${r.checked.checkpoints} checkpoints, ` +
      `${r.checked.anchors} anchors, ${r.checked.records} records, ${r.checked.rows} data rows`,
  ];
  if (r.logSize !== undefined)
    lines.push(`log size ${r.logSize} as the audit started (batches sealed since are left to the next audit)`);
  for (const f of r.findings) {
    const where = [
      f.seq !== undefined ? `seq ${f.seq}` : null,
      f.batch !== undefined ? `batch ${f.batch}` : null,
      f.treeSize !== undefined ? `checkpoint ${f.treeSize}` : null,
      f.table ? `${f.table}${f.field ? `.${f.field}` : ""}` : f.field ? `field ${f.field}` : null,
    ]
      .filter(Boolean)
      .join(", ");
    lines.push(
      `${f.severity === "tamper" ? "FINDING" : "note   "} ${f.code}${where ? ` (${where})` : ""}: ${f.message}`,
    );
  }
  return `${lines.join("\n")}\n`;
}
