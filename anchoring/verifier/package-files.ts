/**
 * Evidence package: the files a genuine package always has, and nothing else (ADR 0019). The export
 * (app/exports/study-exports.server.ts) writes exactly: `manifest.json`, `trust-policy.json`, `log/envelopes.jsonl`,
 * `log/batches.jsonl`, `checkpoints/<size>.txt` for every checkpoint, `consistency/<a>-<b>.json` between consecutive
 * ones, `bundles/<seq>.json` for each of the study's entries, `odm.xml`, `fhir.json`, `csv/<study>-<form>.csv` for
 * every approved form and `certified-copies/<subject>.pdf` for every enrolled subject.
 * Required here (FILE_MISSING; the log, checkpoints, consistency proofs and bundles have their own checks):
 * `trust-policy.json`, `odm.xml`, `fhir.json`, the CSV of each form with a sealed `form.approved` or `record.saved`
 * entry, the certified copy of each subject with a sealed `participant.enrolled` entry. Any other path is
 * FILE_UNEXPECTED (it would pass unchecked): also a bundle of a seq that is not the study's, a consistency proof
 * between checkpoints that are not consecutive, a CSV or certified copy of a form or subject the sealed entries
 * do not have.
 */
import type { Bad, PackageFiles, Sealed } from "./cross-check-sealed.ts";

const FIXED = [
  "manifest.json",
  "trust-policy.json",
  "log/envelopes.jsonl",
  "log/batches.jsonl",
  "odm.xml",
  "fhir.json",
];

/** The sealed values of `field` in the payloads of entries of `kind`. */
const sealedOf = (sealed: Sealed, kinds: string[], field: string) =>
  new Set([...sealed.values()].filter((e) => kinds.includes(e.kind)).map((e) => String(e.payload[field] ?? "")));

export function checkPackageFiles(
  files: PackageFiles,
  study: string,
  studySeqs: ReadonlySet<number>,
  sealed: Sealed,
  bad: Bad,
): void {
  const forms = sealedOf(sealed, ["form.approved", "record.saved"], "form");
  const subjects = sealedOf(sealed, ["participant.enrolled"], "subject");
  const csvOf = (form: string) => `csv/${study}-${form}.csv`;
  const copyOf = (subject: string) => `certified-copies/${subject}.pdf`;
  const required = [
    "trust-policy.json",
    "odm.xml",
    "fhir.json",
    ...[...forms].sort().map(csvOf),
    ...[...subjects].sort().map(copyOf),
  ];
  for (const path of required)
    if (!files.has(path))
      bad(path, "FILE_MISSING", "a genuine package of this study has this file (its sealed entries say so)");

  const paths = [...files.keys()];
  const sizes = paths
    .map((p) => /^checkpoints\/(\d+)\.txt$/.exec(p)?.[1])
    .filter((s): s is string => s !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
  const known = new Set([
    ...FIXED,
    ...sizes.map((s) => `checkpoints/${s}.txt`),
    ...sizes.slice(1).map((s, i) => `consistency/${sizes[i]}-${s}.json`),
    ...[...studySeqs].map((seq) => `bundles/${seq}.json`),
    ...[...forms].map(csvOf),
    ...[...subjects].map(copyOf),
  ]);
  for (const path of paths.sort())
    if (!known.has(path))
      bad(
        path,
        "FILE_UNEXPECTED",
        "not a file the export writes for this study (its log, forms and enrolled subjects)",
      );
}
