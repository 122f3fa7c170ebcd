/**
 * CSV for statisticians: one file per form, one row per subject-visit (the record's current version), with the
 * record id, version, form version, the ledger seq and leaf hash proving that version, who entered it
 * (`entered_by`: `user <id>` or `token <name at the time> (<id>)`, as the sealed payload names them), and one column
 * per field (multiple choices as a JSON array). Every form version's fields appear, in definition order.
 */
import { enteredBy } from "../../anchoring/verifier/entered-by.ts";
import { CSV_FIXED_COLUMNS } from "../../anchoring/verifier/cross-check-csv.ts";
import { csvCell, csvValue } from "../platform/csv.ts";
import type { StudyExport } from "./study-data.server.ts";

export function studyCsvFiles(x: StudyExport): { name: string; text: string }[] {
  const codes = [...new Set(x.forms.map((f) => f.code))];
  return codes.map((code) => {
    const fields: string[] = [];
    for (const f of x.forms.filter((d) => d.code === code).sort((a, b) => a.version - b.version))
      for (const fd of f.fields) if (!fields.includes(fd.name)) fields.push(fd.name);
    const head = [...CSV_FIXED_COLUMNS, ...fields];
    const rows = x.records
      .filter((r) => r.form === code && r.versions.length)
      .map((r) => {
        const v = r.versions[r.versions.length - 1];
        return [
          csvCell(r.subject),
          csvCell(r.site),
          csvCell(r.visit),
          csvCell(r.id),
          csvValue(v.version),
          csvValue(v.formVersion),
          csvValue(v.seq),
          csvCell(v.leafHash),
          csvCell(v.entryId),
          csvCell(v.at),
          csvCell(enteredBy({ actor: v.actorId, token: v.actorToken })),
          ...fields.map((f) =>
            Array.isArray(v.values[f]) ? csvCell(JSON.stringify(v.values[f])) : csvValue(v.values[f] ?? null),
          ),
        ].join(",");
      });
    return { name: `${x.study.code}-${code}.csv`, text: `${[head.map(csvCell).join(","), ...rows].join("\r\n")}\r\n` };
  });
}
