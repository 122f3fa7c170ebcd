/**
 * The integrity audit of the SAP's outcome list and the public registration (ADR 0049, ADR 0050): sap_outcome_sets
 * and study_registrations rows against their entries, and an outcome list sealed after the study's first
 * `participant.enrolled` entry (in log order) that says it was not, or that has no reason.
 */
import { sql } from "drizzle-orm";
import { hashedTextMatches, saltedTextHash } from "../../anchoring/log/text-hash.ts";
import type { AuditFinding } from "../../anchoring/verifier/log-auditor.ts";
import { studyEntriesOfKinds } from "../../db/queries/integrity-audit.ts";
import { rowsOf } from "../../db/queries/rows.ts";
import type { AppContext } from "../platform/context.server.ts";
import { type LinkedTable, tokenPairs } from "./linked-table.ts";
import { parseOutcomesText } from "../study-documents/outcome-list.ts";

export function registrationLinks(ctx: AppContext): LinkedTable[] {
  return [
    {
      table: "sap_outcome_sets",
      column: "entry_id",
      kind: "sap.outcomes_set",
      compare: (r, p) => {
        const list = parseOutcomesText(String(r.outcomes_text)) ?? [];
        const text = String(r.outcomes_text);
        return [
          ["outcomes", r.id, p.outcomes],
          ["version", Number(r.version), p.version],
          ["sap", r.sap_document_id, p.sap],
          [
            "outcomesText",
            typeof p.salt === "string" ? saltedTextHash(ctx.crypto, p.salt, text) : null,
            p.outcomesHash,
          ],
          ["count", list.length, p.count],
          ["primary", list.filter((o) => o.type === "primary").length, p.primary],
          ["afterFirstEnrolment", r.after_first_enrolment, p.afterFirstEnrolment],
          ["reason", hashedTextMatches(ctx.crypto, p, "reason", r.reason === null ? null : String(r.reason)), true],
          ["actor", r.actor_user_id ?? null, p.actor],
          ...tokenPairs(r, p),
        ];
      },
      label: (r) => `outcome list version ${r.version}`,
      namesOnly: true,
    },
    {
      table: "study_registrations",
      column: "entry_id",
      kind: "registration.published",
      compare: (r, p) => [
        ["published", r.published, p.published],
        ["actor", r.actor_user_id ?? null, p.actor],
        ...tokenPairs(r, p),
      ],
      label: (r) => (r.published ? "published" : "withdrawn"),
    },
  ];
}

/**
 * Each `sap.outcomes_set` entry sealed after the study's first `participant.enrolled` entry, in log order, must say
 * `afterFirstEnrolment` and carry a reason: otherwise an outcome changed after first enrolment without a reason.
 */
export async function registrationFindings(
  ctx: AppContext,
  study: { id: string; code: string },
  findings: AuditFinding[],
): Promise<{ rows: number }> {
  let enrolled = false;
  let seen = 0;
  const late: { id: string; seq: number | null; version: unknown; flag: unknown; reason: unknown }[] = [];
  let after: { seq: number | null; at: Date; id: string } | null = null;
  for (;;) {
    const page = await studyEntriesOfKinds(
      ctx.db,
      study.id,
      enrolled ? ["sap.outcomes_set"] : ["participant.enrolled", "sap.outcomes_set"],
      after,
      1000,
    );
    if (page.length === 0) break;
    for (const e of page) {
      if (e.kind === "participant.enrolled") {
        enrolled = true;
        continue;
      }
      seen++;
      if (!enrolled) continue;
      let p: Record<string, unknown>;
      try {
        p = JSON.parse(e.payloadText);
      } catch {
        continue; // reported by the log audit
      }
      if (p.afterFirstEnrolment !== true || typeof p.reasonHash !== "string")
        late.push({ id: e.id, seq: e.seq, version: p.version, flag: p.afterFirstEnrolment, reason: p.reasonHash });
    }
    const l = page[page.length - 1];
    after = { seq: l.seq, at: l.at, id: l.id };
  }
  if (late.length === 0) return { rows: seen };
  const rows = new Map(
    rowsOf<{ id: string; entry_id: string }>(
      await ctx.db.execute(sql`SELECT id, entry_id FROM sap_outcome_sets WHERE study_id = ${study.id}`),
    ).map((r) => [String(r.entry_id), String(r.id)]),
  );
  for (const x of late) {
    const what = x.flag !== true ? "says it was set before the first participant was enrolled" : "carries no reason";
    findings.push({
      code: "OUTCOME_CHANGED_WITHOUT_REASON",
      severity: "tamper",
      study: study.code,
      table: "sap_outcome_sets",
      id: rows.get(x.id),
      seq: x.seq ?? undefined,
      field: x.flag !== true ? "afterFirstEnrolment" : "reason",
      message:
        `a SAP outcome changed after first enrolment without a reason: outcome list version ${String(x.version)} ` +
        `of ${study.code} was sealed after the first participant.enrolled entry but ${what}`,
    });
  }
  return { rows: seen };
}
