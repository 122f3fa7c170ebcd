/**
 * The integrity audit's check of import jobs (issue 18, ADR 0037): each finished import's import.completed entry
 * must match its import_jobs row (job, format, file name as its salted hash, SHA-256, size, records, values, who
 * made it: user, API token id and name), and
 * every import.completed entry must have its job row naming it. The imported versions themselves are compared with
 * their record.saved v4 entries (with their `source`) in the audit's record_versions check.
 */
import { eq } from "drizzle-orm";
import type { AuditFinding } from "../../anchoring/verifier/log-auditor.ts";
import { toHex } from "../../anchoring/log/bytes.ts";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import { studyEntriesOfKinds } from "../../db/queries/integrity-audit.ts";
import { importJobs } from "../../db/schema/study-operations.ts";
import type { AppContext } from "../platform/context.server.ts";

export async function importFindings(ctx: AppContext, study: { id: string; code: string }, findings: AuditFinding[]) {
  const entries = new Map<string, { id: string; seq: number | null; payload: Record<string, unknown> | null }>();
  let after: { seq: number | null; at: Date; id: string } | null = null;
  for (;;) {
    const page = await studyEntriesOfKinds(ctx.db, study.id, ["import.completed"], after, 1000);
    if (page.length === 0) break;
    for (const e of page) {
      let payload: Record<string, unknown> | null = null;
      try {
        payload = JSON.parse(e.payloadText);
      } catch {
        // reported by the log audit
      }
      entries.set(e.id, { id: e.id, seq: e.seq, payload });
    }
    const l = page[page.length - 1];
    after = { seq: l.seq, at: l.at, id: l.id };
  }
  const jobs = await ctx.db.select().from(importJobs).where(eq(importJobs.studyId, study.id));
  const flag = (x: Omit<AuditFinding, "study" | "severity">) =>
    findings.push({ severity: "tamper", study: study.code, ...x });
  const named = new Set<string>();
  for (const j of jobs) {
    const what = `import ${j.id} of ${study.code}`;
    if (j.entryId === null) {
      if (j.status === "done" && !j.dryRun)
        flag({
          code: "DATA_ROW_UNLOGGED",
          table: "import_jobs",
          id: j.id,
          message: `${what} is done but names no import.completed ledger entry`,
        });
      continue;
    }
    named.add(j.entryId);
    const e = entries.get(j.entryId);
    if (!e?.payload) {
      flag({
        code: "DATA_ROW_UNLOGGED",
        table: "import_jobs",
        id: j.id,
        message: `${what} names an entry that is no import.completed entry of the study`,
      });
      continue;
    }
    const p = e.payload;
    const salt = String(p.salt ?? "");
    const token = p.token as { id?: unknown; name?: unknown } | undefined;
    for (const [field, a, b] of [
      ["job", j.id, p.job],
      ["format", j.format, p.format],
      ["file_name", saltedTextHash(ctx.crypto, salt, j.fileName), p.fileNameHash],
      ["file_sha256", toHex(j.fileSha256), p.sha256],
      ["file_bytes", j.fileBytes, p.bytes],
      ["records", j.records, p.records],
      ["values", j.values, p.values],
      ["status", j.status, "done"],
      // Who made the import: a user, or an API token's id and name.
      ["created_by", j.createdBy ?? null, p.actor ?? null],
      ["actor_token_id", j.actorTokenId ?? null, token?.id ?? null],
      ["actor_token_name", j.actorTokenName ?? null, token?.name ?? null],
    ] as const)
      if (a !== b)
        flag({
          code: "DATA_ROW_MISMATCH",
          table: "import_jobs",
          id: j.id,
          seq: e.seq ?? undefined,
          field,
          message: `${what}: ${field} differs from its import.completed entry (changed behind the log?)`,
        });
  }
  for (const e of entries.values())
    if (!named.has(e.id))
      flag({
        code: "DATA_ROW_MISSING",
        table: "import_jobs",
        id: String(e.payload?.job ?? e.id),
        seq: e.seq ?? undefined,
        message: `the import.completed entry ${e.id} of ${study.code} has no import job row naming it (deleted?)`,
      });
  return { rows: jobs.length };
}
