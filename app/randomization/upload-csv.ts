/**
 * An uploaded randomization list (ADR 0052): a CSV with the columns `site`, one per stratification factor (by its
 * name), `sequence` (1-based within its stratum), `arm` and `kit_type` (no `salt`: the server draws each slot's
 * salt). Every stratum of the design must be present with exactly the design's `slotsPerStratum` rows, sequences
 * 1..n without gaps, and every arm and kit type known and matching the design's map.
 * Each problem is named with its line. No database: the service stores the text and commits what this returns.
 */
import { parse } from "csv-parse/sync";
import type { Problem } from "../platform/errors.server.ts";
import { type Design, strataOf, stratumKey } from "../../anchoring/randomization/slots.ts";

export interface UploadedSlot {
  stratum: string;
  seq: number;
  arm: string;
  kitType: string;
  /** null: the CSV gave none; one is generated at commitment. */
  salt: string | null;
}

export interface UploadedStratum {
  key: string;
  slots: UploadedSlot[];
}

const MAX_PROBLEMS = 50;

/** The CSV's strata in the design's order, or every problem found (at most 50), each naming its line. */
export function readUploadedList(
  design: Design,
  csvText: string,
): { ok: true; strata: UploadedStratum[] } | { ok: false; problems: Problem[] } {
  const problems: Problem[] = [];
  const add = (message: string) => {
    if (problems.length < MAX_PROBLEMS) problems.push({ field: "csv", message });
  };
  let records: { record: string[]; info: { lines: number } }[];
  try {
    records = parse(csvText.replace(/^\uFEFF/, ""), {
      info: true,
      skip_empty_lines: true,
      trim: true,
      relax_column_count: true,
    }) as unknown as { record: string[]; info: { lines: number } }[];
  } catch (err) {
    const line = (err as { lines?: number }).lines;
    return {
      ok: false,
      problems: [{ field: "csv", message: `the file is not readable CSV${line ? ` (line ${line})` : ""}` }],
    };
  }
  if (records.length === 0) return { ok: false, problems: [{ field: "csv", message: "the file is empty" }] };
  const header = records[0].record.map((h) => h.toLowerCase());
  const required = ["site", ...design.factors.map((f) => f.name), "sequence", "arm", "kit_type"];
  const missing = required.filter((c) => !header.includes(c));
  if (header.includes("salt"))
    return {
      ok: false,
      problems: [
        { field: "csv", message: "line 1: leave out the salt column; TrialSeal draws every slot's salt itself" },
      ],
    };
  const unknown = header.filter((c) => !required.includes(c));
  if (missing.length) add(`line 1: the header lacks the column${missing.length > 1 ? "s" : ""} ${missing.join(", ")}`);
  if (unknown.length) add(`line 1: unknown column${unknown.length > 1 ? "s" : ""} ${unknown.join(", ")}`);
  if (new Set(header).size !== header.length) add("line 1: a column is named twice");
  if (problems.length) return { ok: false, problems };
  const col = (name: string) => header.indexOf(name);
  const kitArm = new Map(Object.entries(design.kitTypes));
  const arms = new Set(design.arms.map((a) => a.code));
  const strata = new Map<string, Map<number, { slot: UploadedSlot; line: number }>>(
    strataOf(design).map((k) => [k, new Map()]),
  );
  for (const { record, info } of records.slice(1)) {
    const line = info.lines;
    if (record.length !== header.length) {
      add(`line ${line}: ${record.length} values where the header has ${header.length}`);
      continue;
    }
    const v = (name: string) => record[col(name)] ?? "";
    const before = problems.length;
    const site = v("site");
    if (!design.sites.includes(site)) add(`line ${line}: site ${JSON.stringify(site)} is not a site of the design`);
    const levels = design.factors.map((f) => {
      const level = v(f.name);
      if (!f.levels.includes(level))
        add(`line ${line}: ${f.name} ${JSON.stringify(level)} is not one of ${f.levels.join(", ")}`);
      return { name: f.name, level };
    });
    const seqText = v("sequence");
    const sequence = /^[1-9][0-9]{0,5}$/.test(seqText) ? Number(seqText) : Number.NaN;
    if (Number.isNaN(sequence)) add(`line ${line}: sequence ${JSON.stringify(seqText)} is not a whole number from 1`);
    const arm = v("arm");
    const kitType = v("kit_type");
    if (!arms.has(arm)) add(`line ${line}: arm ${JSON.stringify(arm)} is not an arm of the design`);
    else if (!kitArm.has(kitType)) add(`line ${line}: kit type ${JSON.stringify(kitType)} is not in the kit type map`);
    else if (kitArm.get(kitType) !== arm)
      add(`line ${line}: kit type ${kitType} belongs to arm ${kitArm.get(kitType)}, not ${arm}`);
    // Salts are always drawn by the server (ADR 0052): a salt chosen by the uploader (a constant, a repeat) would
    // let anyone holding a bundle guess each allocation's arm from its sealed leaf.
    const saltText = "";
    if (problems.length > before) continue;
    const key = stratumKey(site, levels);
    const slots = strata.get(key);
    if (!slots) continue; // cannot happen: site and levels were checked
    const seen = slots.get(sequence - 1);
    if (seen) {
      add(`line ${line}: stratum ${key} sequence ${sequence} is also on line ${seen.line}`);
      continue;
    }
    slots.set(sequence - 1, { slot: { stratum: key, seq: sequence - 1, arm, kitType, salt: saltText || null }, line });
  }
  const out: UploadedStratum[] = [];
  for (const [key, slots] of strata) {
    if (slots.size === 0) {
      add(`stratum ${key} has no rows (every stratum of the design needs its slots)`);
      continue;
    }
    if (slots.size > 100_000) {
      add(`stratum ${key} has ${slots.size} rows; at most 100000`);
      continue;
    }
    let last = 0;
    for (const k of slots.keys()) last = Math.max(last, k + 1); // no spread: a stratum may hold 100,000 rows
    const gaps: number[] = [];
    for (let i = 0; i < last; i++) if (!slots.has(i)) gaps.push(i + 1);
    if (gaps.length)
      add(
        `stratum ${key}: sequence ${gaps.slice(0, 5).join(", ")}${gaps.length > 5 ? " and more" : ""} missing ` +
          `(sequences run 1 to ${last} without gaps)`,
      );
    // Exactly the design's size, as a generated list (its last block cut): the verifier checks it too (ADR 0055).
    if (slots.size !== design.slotsPerStratum)
      add(
        `stratum ${key} has ${slots.size} row${slots.size === 1 ? "" : "s"}, ` +
          `the design sets ${design.slotsPerStratum} slots per stratum`,
      );
    out.push({
      key,
      slots: [...slots.values()].map((s) => s.slot).sort((a, b) => a.seq - b.seq),
    });
  }
  return problems.length ? { ok: false, problems } : { ok: true, strata: out };
}
