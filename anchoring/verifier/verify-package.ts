/**
 * The evidence package's offline check (`trialseal verify-package`), pure: it receives the package's files and
 * a trust policy, and recomputes everything:
 * 1. the manifest: every listed file present with its SHA-256 and size, nothing unlisted;
 * 2. the checkpoints: each signed by a log key of the policy; consecutive ones consistent (RFC 9162 proofs);
 * 3. the whole log from its envelopes and batch headers: each batch root from the envelopes' leaves, the batch
 *    log's root at every checkpoint size equal to the signed root (so no envelope was dropped or altered);
 * 4. the study: its entries' studySeqs run without a gap, and each has a proof bundle whose envelope is the
 *    log's and which the verifier accepts;
 * 5. the ODM file: every item value, at every version, equals the value in the sealed payload of the ledger
 *    entry its AuditRecord names; and every value the export writes from a sealed record.saved payload is there;
 * 6. the other derived files (ADR 0019, anchoring/verifier/cross-check-*.ts): each CSV row and FHIR resource value
 *    by value against the sealed payloads it derives from, and each PDF against its sealed document.generated entry;
 * 7. the files (anchoring/verifier/package-files.ts): each one a genuine package of the study has is there, and no
 *    other.
 * Each failure names the file and what is wrong.
 */
import type { Crypto } from "../log/crypto.ts";
import { fromHex, toHex, utf8 } from "../log/bytes.ts";
import { EnvelopeSchema, BatchHeaderSchema, envelopeLeaf, headerLeaf } from "../log/envelope.ts";
import { rootOf, verifyConsistency } from "../log/merkle.ts";
import { noteSignedBy, parseCheckpoint, parseNote, parseVkey } from "../log/checkpoint.ts";
import { MerkleLevels } from "../log/tree.ts";
import type { TrustPolicy } from "./trust-policy.ts";
import { verifyBundle } from "./verify-bundle.ts";
import { canonicalize } from "../log/canonical.ts";
import { hashedFieldValue } from "../log/record-values.ts";
import { saltedTextHash } from "../log/text-hash.ts";
import type { PackageFiles, Sealed, SealedEntry } from "./cross-check-sealed.ts";

export type { PackageFiles } from "./cross-check-sealed.ts";
import { crossCheckCsv } from "./cross-check-csv.ts";
import { crossCheckFhir } from "./cross-check-fhir.ts";
import { crossCheckDocuments } from "./cross-check-documents.ts";
import { checkPackageFiles } from "./package-files.ts";

export interface PackageProblem {
  file: string;
  code: string;
  message: string;
}

export interface PackageReport {
  valid: boolean;
  study: string | null;
  checked: {
    files: number;
    checkpoints: number;
    envelopes: number;
    batches: number;
    bundles: number;
    odmValues: number;
    csvRows: number;
    fhirResources: number;
    documents: number;
  };
  problems: PackageProblem[];
}

export interface ManifestFile {
  path: string;
  sha256: string;
  bytes: number;
}

export interface Manifest {
  format: "trialseal-evidence/v1";
  study: string;
  origin: string;
  createdAt: string;
  logSize: number;
  /** The participants' choices the package honours, in words (ADR 0071); informative, not checked. */
  choices?: string;
  files: ManifestFile[];
}

/**
 * Values of the ODM file by ledger seq: [seq, item name, value text or null], and for an item with a missing-data
 * code (IsNull with ts:MissingCode, ADR 0027) the code and the reason (its Annotation's Comment). Parsed by the
 * caller's XML reader.
 */
export type OdmItem = {
  seq: number;
  item: string;
  value: string | null;
  missingCode?: string | null;
  missingReason?: string | null;
};
const obj = (v: unknown): Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};

export async function verifyEvidence(
  c: Crypto,
  files: PackageFiles,
  policy: TrustPolicy,
  opts: {
    odmItems?: (xml: string) => OdmItem[];
    odmValue?: (kind: string, payload: Record<string, unknown>, item: string) => string | null;
  } = {},
): Promise<PackageReport> {
  const problems: PackageProblem[] = [];
  const checked = {
    files: 0,
    checkpoints: 0,
    envelopes: 0,
    batches: 0,
    bundles: 0,
    odmValues: 0,
    csvRows: 0,
    fhirResources: 0,
    documents: 0,
  };
  const bad = (file: string, code: string, message: string) => problems.push({ file, code, message });
  const text = (p: string) => new TextDecoder().decode(files.get(p)!);
  const done = (study: string | null): PackageReport => ({ valid: problems.length === 0, study, checked, problems });

  // 1. Manifest.
  const mf = files.get("manifest.json");
  if (!mf) {
    bad("manifest.json", "MANIFEST_MISSING", "the package has no manifest.json");
    return done(null);
  }
  let manifest: Manifest;
  try {
    manifest = JSON.parse(new TextDecoder().decode(mf)) as Manifest;
    if (manifest.format !== "trialseal-evidence/v1" || !Array.isArray(manifest.files))
      throw new Error("not a trialseal-evidence/v1 manifest");
  } catch (err) {
    bad("manifest.json", "MANIFEST_INVALID", (err as Error).message);
    return done(null);
  }
  const listed = new Set<string>();
  for (const f of manifest.files) {
    listed.add(f.path);
    const data = files.get(f.path);
    if (!data) {
      bad(f.path, "FILE_MISSING", "listed in the manifest but not in the package");
      continue;
    }
    checked.files++;
    if (data.length !== f.bytes || toHex(c.sha256(data)) !== f.sha256)
      bad(
        f.path,
        "FILE_ALTERED",
        `its SHA-256 is ${toHex(c.sha256(data)).slice(0, 16)}…, the manifest says ${String(f.sha256).slice(0, 16)}…`,
      );
  }
  for (const p of files.keys())
    if (p !== "manifest.json" && !listed.has(p)) bad(p, "FILE_UNLISTED", "in the package but not in the manifest");
  if (manifest.origin !== policy.origin)
    bad(
      "manifest.json",
      "ORIGIN_MISMATCH",
      `the package is of log ${manifest.origin}, the trust policy of ${policy.origin}`,
    );
  if (problems.length) return done(manifest.study);

  // 2. Checkpoints and consistency.
  const cps = [...files.keys()]
    .filter((p) => /^checkpoints\/\d+\.txt$/.test(p))
    .map((p) => ({ path: p, size: Number(p.slice(12, -4)) }))
    .sort((a, b) => a.size - b.size);
  const roots = new Map<number, Uint8Array>();
  for (const cp of cps) {
    try {
      const note = parseNote(text(cp.path));
      const body = parseCheckpoint(note.text);
      const keys = policy.logKeys.filter(
        (k) => k.fromSize <= body.treeSize && (k.untilSize === null || body.treeSize < k.untilSize),
      );
      if (!keys.some((k) => noteSignedBy(c, note, parseVkey(c, k.vkey))))
        bad(cp.path, "CHECKPOINT_SIGNATURE_INVALID", "not signed by a log key of the trust policy valid for its size");
      else if (body.treeSize !== cp.size || body.origin !== policy.origin)
        bad(cp.path, "CHECKPOINT_INVALID", `it signs size ${body.treeSize} of ${body.origin}`);
      else roots.set(cp.size, body.root);
      checked.checkpoints++;
    } catch (err) {
      bad(cp.path, "CHECKPOINT_INVALID", (err as Error).message);
    }
  }
  const sizes = [...roots.keys()].sort((a, b) => a - b);
  for (let i = 1; i < sizes.length; i++) {
    const path = `consistency/${sizes[i - 1]}-${sizes[i]}.json`;
    if (!files.has(path)) {
      bad(path, "CONSISTENCY_MISSING", `no consistency proof between checkpoints ${sizes[i - 1]} and ${sizes[i]}`);
      continue;
    }
    try {
      const proof = (JSON.parse(text(path)) as { proof: string[] }).proof.map(fromHex);
      verifyConsistency(c, sizes[i - 1], sizes[i], proof, roots.get(sizes[i - 1])!, roots.get(sizes[i])!);
    } catch (err) {
      bad(path, "CONSISTENCY_INVALID", (err as Error).message);
    }
  }
  if (!roots.has(manifest.logSize))
    bad("manifest.json", "CHECKPOINT_MISSING", `no valid checkpoint of the package's log size ${manifest.logSize}`);

  // 3. The whole log from envelopes and headers.
  const envLines = files.has("log/envelopes.jsonl") ? text("log/envelopes.jsonl").split("\n").filter(Boolean) : [];
  const headerLines = files.has("log/batches.jsonl") ? text("log/batches.jsonl").split("\n").filter(Boolean) : [];
  if (!files.has("log/envelopes.jsonl")) bad("log/envelopes.jsonl", "FILE_MISSING", "the log's envelopes are missing");
  if (!files.has("log/batches.jsonl")) bad("log/batches.jsonl", "FILE_MISSING", "the log's batch headers are missing");
  const envelopes: ReturnType<typeof EnvelopeSchema.parse>[] = [];
  const leaves: Uint8Array[] = [];
  envLines.forEach((line, i) => {
    try {
      const env = EnvelopeSchema.parse(JSON.parse(line));
      const l = envelopeLeaf(c, env);
      if (l.text !== line || env.seq !== i)
        throw new Error(env.seq !== i ? `line ${i + 1} holds seq ${env.seq}` : `line ${i + 1} is not canonical`);
      envelopes.push(env);
      leaves.push(l.leaf);
      checked.envelopes++;
    } catch (err) {
      bad("log/envelopes.jsonl", "ENVELOPE_INVALID", `line ${i + 1}: ${(err as Error).message}`);
    }
  });
  const log = new MerkleLevels(c);
  headerLines.forEach((line, b) => {
    try {
      const h = BatchHeaderSchema.parse(JSON.parse(line));
      const hl = headerLeaf(c, h);
      if (hl.text !== line || h.batch !== b) throw new Error(`line ${b + 1} is not batch ${b} in canonical form`);
      if (h.first + h.size > leaves.length)
        throw new Error(`batch ${b} ends at seq ${h.first + h.size}, beyond the ${leaves.length} envelopes`);
      if (toHex(rootOf(c, leaves, h.first, h.first + h.size)) !== h.root)
        bad(
          "log/envelopes.jsonl",
          "BATCH_ROOT_MISMATCH",
          `the envelopes of batch ${b} (seq ${h.first}..${h.first + h.size - 1}) do not hash to its root: ` +
            "an envelope was altered, dropped or inserted",
        );
      log.append(hl.leaf);
      checked.batches++;
      const signed = roots.get(b + 1);
      if (signed && toHex(signed) !== toHex(log.root()))
        bad(
          "log/batches.jsonl",
          "LOG_ROOT_MISMATCH",
          `the first ${b + 1} batch headers do not hash to checkpoint ${b + 1}'s signed root`,
        );
    } catch (err) {
      bad("log/batches.jsonl", "HEADER_INVALID", (err as Error).message);
    }
  });
  if (checked.batches !== manifest.logSize)
    bad(
      "log/batches.jsonl",
      "LOG_INCOMPLETE",
      `${checked.batches} batch headers for a log of ${manifest.logSize} batches`,
    );

  // 4. The study's entries: no gap, each with a bundle that verifies and matches the log.
  const mine = envelopes.filter((e) => e.study === manifest.study);
  mine.forEach((e, i) => {
    if (e.studySeq !== i)
      bad(
        "log/envelopes.jsonl",
        "STUDY_SEQ_GAP",
        `study ${manifest.study}: seq ${e.seq} has study seq ${e.studySeq}, expected ${i}`,
      );
  });
  const payloadBySeq: Sealed = new Map();
  for (const e of mine) {
    const path = `bundles/${e.seq}.json`;
    if (!files.has(path)) {
      bad(path, "BUNDLE_MISSING", `entry seq ${e.seq} of the study has no proof bundle in the package`);
      continue;
    }
    let bundle: { envelope?: unknown; payload?: Record<string, unknown> };
    try {
      bundle = JSON.parse(text(path));
    } catch {
      bad(path, "BUNDLE_INVALID", "not JSON");
      continue;
    }
    const report = await verifyBundle(c, bundle, policy);
    checked.bundles++;
    if (report.verdict !== "valid") {
      const s = report.steps.find((x) => x.status === "failed");
      bad(path, s?.code ?? "BUNDLE_INVALID", s ? `${s.step}: ${s.message}` : "the bundle does not verify");
      continue;
    }
    if (canonicalize(bundle.envelope ?? null) !== canonicalize(e))
      bad(path, "BUNDLE_NOT_IN_LOG", `its envelope is not the log's envelope of seq ${e.seq}`);
    payloadBySeq.set(e.seq, {
      seq: e.seq,
      kind: e.kind,
      payload: bundle.payload ?? {},
      envelope: e,
      leafHash: toHex(envelopeLeaf(c, e).leaf),
    });
  }

  // 5. ODM values against the sealed payloads they cite.
  if (files.has("odm.xml") && opts.odmItems && opts.odmValue) {
    const items = opts.odmItems(text("odm.xml"));
    for (const it of items) {
      const p = payloadBySeq.get(it.seq);
      if (!p) {
        bad(
          "odm.xml",
          "ODM_UNPROVEN",
          `item ${it.item} cites seq ${it.seq}, which has no verified bundle in the package`,
        );
        continue;
      }
      checked.odmValues++;
      // Payload version 3 (issue 17): an identifier or free-text value by its salted hash, a missing-data code with
      // its reason's salted hash.
      const salt = String(p.payload.salt);
      const hashed = obj(p.payload.hashed)[it.item];
      const missing = obj(obj(p.payload.missing)[it.item]);
      if (typeof hashed === "string") {
        if (it.value === null || hashedFieldValue(c, salt, it.value) !== hashed)
          bad(
            "odm.xml",
            "ODM_VALUE_MISMATCH",
            `item ${it.item} at seq ${it.seq} is ${JSON.stringify(it.value)} in the file, which is not the value ` +
              "sealed (as a salted hash) in the payload",
          );
        continue;
      }
      if ((it.missingCode ?? undefined) !== missing.code)
        bad(
          "odm.xml",
          "ODM_VALUE_MISMATCH",
          `item ${it.item} at seq ${it.seq} has missing-data code ${JSON.stringify(it.missingCode ?? null)} in the ` +
            `file but ${JSON.stringify(missing.code ?? null)} in the sealed payload`,
        );
      else if (
        missing.code !== undefined &&
        (typeof it.missingReason !== "string" || saltedTextHash(c, salt, it.missingReason) !== missing.reasonHash)
      )
        bad(
          "odm.xml",
          "ODM_VALUE_MISMATCH",
          `item ${it.item} at seq ${it.seq}: the reason for its missing-data code is ` +
            `${JSON.stringify(it.missingReason ?? null)} in the file, which is not the reason sealed ` +
            "(as a salted hash)",
        );
      const want = opts.odmValue(p.kind, p.payload, it.item);
      if (want !== it.value)
        bad(
          "odm.xml",
          "ODM_VALUE_MISMATCH",
          `item ${it.item} at seq ${it.seq} is ${JSON.stringify(it.value)} in the file ` +
            `but ${JSON.stringify(want)} in the sealed payload`,
        );
    }
    // And completeness: every value the export writes from a sealed record.saved payload is in the file.
    const inFile = new Set(items.map((it) => `${it.seq} ${it.item}`));
    for (const w of odmExpected(payloadBySeq, opts.odmValue))
      if (!inFile.has(`${w.seq} ${w.item}`))
        bad(
          "odm.xml",
          "ODM_VALUE_MISSING",
          `subject ${w.subject}, form ${w.form}, visit ${w.visit}, item ${w.item} of version ${w.version} ` +
            `(seq ${w.seq}): its sealed value ${JSON.stringify(w.value)} is not in the file`,
        );
  }

  // 6. CSV, FHIR and PDFs against the sealed entries.
  Object.assign(checked, crossCheckDerived(c, files, manifest.study, payloadBySeq, bad));

  // 7. The files: every one a genuine package of this study has, and nothing else.
  checkPackageFiles(files, manifest.study, new Set(mine.map((e) => e.seq)), payloadBySeq, bad);
  return done(manifest.study);
}

/**
 * The ItemData the ODM export writes (app/exports/odm.server.ts), from the sealed record.saved payloads: per record,
 * version 1 with each of its items, each later version with the items it changed from the one before (null when
 * removed); each names the seq of its version.
 */
export function odmExpected(
  sealed: Sealed,
  odmValue: (kind: string, payload: Record<string, unknown>, item: string) => string | null,
) {
  const byRecord = new Map<string, SealedEntry[]>();
  for (const e of sealed.values())
    if (e.kind === "record.saved") {
      const r = String(e.payload.record);
      byRecord.set(r, [...(byRecord.get(r) ?? []), e]);
    }
  const out: (OdmItem & { subject: string; form: string; visit: string; version: number })[] = [];
  for (const versions of byRecord.values()) {
    let prev: Record<string, unknown> = {};
    let prevHashed: string[] = [];
    for (const e of versions.sort((a, b) => Number(a.payload.version) - Number(b.payload.version))) {
      // What each item says: a clear or calculated value, or a missing-data code (payload version 3). Identifier
      // and free-text values are salted hashes under each version's own salt, so whether a later version changed
      // one that both hold cannot be told: it is expected when it appears or goes, not when it stays.
      const values: Record<string, unknown> = { ...obj(e.payload.values) };
      for (const [k, v] of Object.entries(obj(e.payload.calculated))) if (v !== null) values[k] = v;
      for (const [k, m] of Object.entries(obj(e.payload.missing))) values[k] = { missing: obj(m).code };
      const hashed = Object.keys(obj(e.payload.hashed));
      const version = Number(e.payload.version);
      const names =
        version === 1
          ? [...Object.keys(values), ...hashed]
          : [...new Set([...Object.keys(prev), ...prevHashed, ...Object.keys(values), ...hashed])].filter((n) =>
              hashed.includes(n) || prevHashed.includes(n)
                ? hashed.includes(n) !== prevHashed.includes(n)
                : JSON.stringify(prev[n] ?? null) !== JSON.stringify(values[n] ?? null),
            );
      const [subject, form, visit] = [e.payload.subject, e.payload.form, e.payload.visit].map(String);
      for (const item of names) {
        const value = hashed.includes(item)
          ? "(its value, sealed as a salted hash)"
          : odmValue(e.kind, e.payload, item);
        out.push({ seq: e.seq, item, value, subject, form, visit, version });
      }
      prev = values;
      prevHashed = hashed;
    }
  }
  return out;
}

/** Step 6: the derived files other than ODM (each in its own module, ADR 0019). */
function crossCheckDerived(
  c: Crypto,
  files: PackageFiles,
  study: string,
  sealed: Sealed,
  bad: (file: string, code: string, message: string) => void,
) {
  const text = (p: string) => new TextDecoder().decode(files.get(p)!);
  let csvRows = 0;
  for (const p of [...files.keys()].filter((x) => /^csv\/[^/]+\.csv$/.test(x)).sort())
    csvRows += crossCheckCsv(p, text(p), study, sealed, bad, c);
  const fhirResources = files.has("fhir.json") ? crossCheckFhir(text("fhir.json"), sealed, bad, c) : 0;
  const documents = crossCheckDocuments(c, files, sealed, bad);
  return { csvRows, fhirResources, documents };
}

export const sha256Hex = (c: Crypto, data: Uint8Array | string) =>
  toHex(c.sha256(typeof data === "string" ? utf8(data) : data));
