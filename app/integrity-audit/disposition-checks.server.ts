/**
 * The integrity audit's check of each participant's disposition (issue 18, ADR 0033): participants.disposition
 * must be the status of the subject's latest `participant.disposition_set` entry in log order, or `enrolled` when
 * the log holds none. The participant_dispositions rows themselves are compared with their entries in the
 * audit's `linked` tables; this catches the column changed behind the log, and a row moved or copied onto another
 * participant (its participant's subject code must be its entry's `subject`).
 */
import { sql } from "drizzle-orm";
import type { AuditFinding } from "../../anchoring/verifier/log-auditor.ts";
import { studyEntriesOfKinds } from "../../db/queries/integrity-audit.ts";
import { rowsOf } from "../../db/queries/rows.ts";
import type { AppContext } from "../platform/context.server.ts";

/** A participant's disposition when the log holds none for them (the column's default, migration 0022). */
const DEFAULT_DISPOSITION = "enrolled";

/** Each subject's latest sealed disposition, in log order. */
async function sealedDispositions(ctx: AppContext, studyId: string) {
  const latest = new Map<string, string>();
  let after: { seq: number | null; at: Date; id: string } | null = null;
  for (;;) {
    const page = await studyEntriesOfKinds(ctx.db, studyId, ["participant.disposition_set"], after, 1000);
    if (page.length === 0) break;
    for (const e of page) {
      let p: { subject?: unknown; status?: unknown };
      try {
        p = JSON.parse(e.payloadText);
      } catch {
        continue; // reported by the log audit
      }
      if (typeof p.subject === "string" && typeof p.status === "string") latest.set(p.subject, p.status);
    }
    const l = page[page.length - 1];
    after = { seq: l.seq, at: l.at, id: l.id };
  }
  return latest;
}

export async function dispositionFindings(
  ctx: AppContext,
  study: { id: string; code: string },
  findings: AuditFinding[],
) {
  const sealed = await sealedDispositions(ctx, study.id);
  const rows = rowsOf<{ id: string; subject_code: string; disposition: string }>(
    await ctx.db.execute(
      sql`SELECT id, subject_code, disposition FROM participants WHERE study_id = ${study.id} ORDER BY subject_code`,
    ),
  );
  for (const r of rows) {
    const want = sealed.get(r.subject_code) ?? DEFAULT_DISPOSITION;
    if (r.disposition !== want)
      findings.push({
        code: "DATA_ROW_MISMATCH",
        severity: "tamper",
        study: study.code,
        table: "participants",
        id: String(r.id),
        field: "disposition",
        message:
          `participant ${r.subject_code} of ${study.code}: the disposition is ${JSON.stringify(r.disposition)} ` +
          `in the database but ${JSON.stringify(want)} in the sealed log`,
      });
  }
  // Each disposition row belongs to the subject its entry names (a row moved or copied to another participant).
  const owned = rowsOf<{ id: string; subject_code: string; payload_text: string }>(
    await ctx.db.execute(
      sql`SELECT d.id, p.subject_code, e.payload_text FROM participant_dispositions d
          JOIN participants p ON p.id = d.participant_id
          JOIN ledger_entries e ON e.id = d.entry_id AND e.kind = 'participant.disposition_set'
          WHERE d.study_id = ${study.id} ORDER BY d.id`,
    ),
  );
  for (const r of owned) {
    let subject: unknown;
    try {
      subject = (JSON.parse(r.payload_text) as { subject?: unknown }).subject;
    } catch {
      continue; // reported by the log audit
    }
    if (subject !== r.subject_code)
      findings.push({
        code: "DATA_ROW_MISMATCH",
        severity: "tamper",
        study: study.code,
        table: "participant_dispositions",
        id: String(r.id),
        field: "participant",
        message:
          `participant_dispositions row ${r.id} of ${study.code} belongs to participant ${r.subject_code} ` +
          `in the database but to ${JSON.stringify(subject)} in its ledger entry (moved or copied behind the log?)`,
      });
  }
  return { rows: rows.length };
}
