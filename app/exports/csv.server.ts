/**
 * CSV for statisticians: one file per form, one row per record (subject, visit and, for a repeating form, its row:
 * `instance`, a column only repeating forms have), the record's current version, with the record id, version, form
 * version, the ledger seq and leaf hash proving that version, who entered it (`entered_by`: `user <id>` or `token <name
 * at the time> (<id>)`, as the sealed payload names them), `protocol_version` (the protocol version in force at the
 * record's site when the version was entered, ADR 0048; empty before any is approved there), and one column per
 * field, calculated ones included (multiple choices as a JSON array). Identifier and free-text values are written as
 * entered (exports are for authorized users;
 * the payload holds them only as salted hashes, which the package check recomputes). A field that accepts missing-data
 * codes has two more columns after its own: `<field>.missing_code` and `<field>.missing_reason`. Every form version's
 * fields appear, in definition order.
 */
import { enteredBy } from "../../anchoring/verifier/entered-by.ts";
import {
  CSV_FIXED_COLUMNS,
  CSV_FIXED_COLUMNS_REPEATING,
  CSV_PROTOCOL_COLUMN,
  missingColumns,
} from "../../anchoring/verifier/cross-check-csv.ts";
import { csvCell, csvValue } from "../platform/csv.ts";
import type { StudyExport } from "./study-data.server.ts";

export function studyCsvFiles(x: StudyExport): { name: string; text: string }[] {
  const codes = [...new Set(x.forms.map((f) => f.code))];
  return codes.map((code) => {
    const fields: string[] = [];
    const withMissing = new Set<string>();
    for (const f of x.forms.filter((d) => d.code === code).sort((a, b) => a.version - b.version))
      for (const fd of f.fields) {
        if (!fields.includes(fd.name)) fields.push(fd.name);
        if (fd.type !== "calc" && fd.missingCodes?.length) withMissing.add(fd.name);
      }
    const columns = fields.flatMap((f) => (withMissing.has(f) ? [f, ...missingColumns(f)] : [f]));
    const repeating = x.forms.some((d) => d.code === code && d.repeating);
    const head = [...(repeating ? CSV_FIXED_COLUMNS_REPEATING : CSV_FIXED_COLUMNS), CSV_PROTOCOL_COLUMN, ...columns];
    const rows = x.records
      .filter((r) => r.form === code && r.versions.length)
      .map((r) => {
        const v = r.versions[r.versions.length - 1];
        const value = (f: string) => {
          const x = Object.hasOwn(v.calculated ?? {}, f) ? v.calculated![f] : v.values[f];
          return Array.isArray(x) ? csvCell(JSON.stringify(x)) : csvValue(x ?? null);
        };
        return [
          csvCell(r.subject),
          csvCell(r.site),
          csvCell(r.visit),
          ...(repeating ? [csvValue(r.instance ?? 1)] : []),
          csvCell(r.id),
          csvValue(v.version),
          csvValue(v.formVersion),
          csvValue(v.seq),
          csvCell(v.leafHash),
          csvCell(v.entryId),
          csvCell(v.at),
          csvCell(enteredBy({ actor: v.actorId, token: v.actorToken })),
          csvCell(v.protocolVersion ?? null),
          ...fields.flatMap((f) => {
            const m = v.missing?.[f];
            return withMissing.has(f) ? [value(f), csvCell(m?.code ?? null), csvCell(m?.reason ?? null)] : [value(f)];
          }),
        ].join(",");
      });
    return { name: `${x.study.code}-${code}.csv`, text: `${[head.map(csvCell).join(","), ...rows].join("\r\n")}\r\n` };
  });
}
