/**
 * The study exports, one definition for the CLI (`trialseal export`) and the portal's downloads:
 * ODM 1.3.2 XML, FHIR R4 JSON, CSV per form, and the evidence package: one ZIP with the ODM file, the FHIR
 * bundle, the CSV files, every entry's proof bundle for the study, the envelopes and batch headers of the whole
 * log (no personal data; they show that no entry of the study was left out), all checkpoints, consistency proofs
 * between consecutive ones, a certified copy (PDF) per subject, the trust policy and a manifest with the SHA-256
 * of every file. `trialseal verify-package` checks it all offline (anchoring/verifier/verify-package.ts). Pending
 * entries are sealed first, so everything exported is provable; a package's ODM, FHIR and CSV are made from the data
 * as of the log it carries, and each certified copy's SHA-256 is sealed (ADR 0019), because `verify-package`
 * cross-checks them against the sealed entries; an export is refused (409, naming the record) when
 * a stored value no longer matches its sealed entry. Every export is an audit event.
 */
import { zipSync, unzipSync } from "fflate";
import { XMLParser } from "fast-xml-parser";
import { asc, gt, and, eq, inArray, isNotNull, lte } from "drizzle-orm";
import { toHex } from "../../anchoring/log/bytes.ts";
import type { Manifest, OdmItem } from "../../anchoring/verifier/verify-package.ts";
import { batches, checkpoints, ledgerEntries } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { deploymentTrustPolicy } from "../anchor-worker/anchor-worker.server.ts";
import { casebookPdf } from "./certified-copy.server.ts";
import { consistencyBetween, proofBundlesOfBatch } from "../log/proofs.server.ts";
import { sealAll } from "../log/sealer.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { sealedReadContext } from "../platform/sealed-reads.server.ts";
import { requirePermission, type Principal } from "../platform/permissions.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { loadStudyExport, type StudyExport } from "./study-data.server.ts";
import { odmValue, studyOdm } from "./odm.server.ts";
import { studyFhirBundle } from "./fhir.server.ts";
import { studyCsvFiles } from "./csv.server.ts";
import { assertStudyMatchesSeals } from "../records/seal-match.server.ts";
import { PRIMARY_USE_CHOICES } from "../data-sharing/choices-statement.ts";
import { choicesText } from "../data-sharing/choices-statement.ts";
import { exportParticipantsDetail } from "../data-sharing/export-access.server.ts";

export const EXPORT_FORMATS = ["evidence", "odm", "fhir", "csv", "allocations"] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface ExportFile {
  name: string;
  contentType: string;
  data: Uint8Array;
}

const enc = (s: string) => new TextEncoder().encode(s);

/** The principal a command-line export acts as (the operator running it on the server). */
export const OPERATOR: Principal = {
  kind: "user",
  userId: null,
  label: "trialseal export (operator)",
  platformAdmin: true,
  memberships: [],
};

export async function exportStudy(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  format: ExportFormat,
  opts: { onProgress?: (p: { phase: string; done: number; total: number }) => void } = {},
): Promise<ExportFile> {
  if (!EXPORT_FORMATS.includes(format))
    throw new ServiceError("invalid", `format: one of ${EXPORT_FORMATS.join(", ")}`, "format");
  // The revealed randomization list with its proofs, after unblinding (ADR 0054): its own checks and audit event.
  if (format === "allocations")
    return (await import("../randomization/allocations-export.server.ts")).allocationsExport(ctx, principal, studyCode);
  const study = await getStudyOrThrow(ctx, studyCode);
  requirePermission(principal, "study.review", { studyId: study.id });
  await sealAll(ctx);
  // Nothing is exported as proven when a stored value no longer matches its sealed entry (altered behind the log).
  await assertStudyMatchesSeals(ctx, study);
  const x = (await loadStudyExport(ctx, study.code))!;
  const now = new Date();
  let file: ExportFile;
  // The participants whose data the file holds (ADR 0071): the whole study for ODM, FHIR and the evidence package
  // (every participant's SubjectData, Patient, certified copy), the subjects the CSV files name.
  let held: string[] = x.participants.map((p) => p.id);
  if (format === "odm")
    file = { name: `${study.code}-odm.xml`, contentType: "application/xml", data: enc(studyOdm(x, now)) };
  else if (format === "fhir")
    file = {
      name: `${study.code}-fhir.json`,
      contentType: "application/fhir+json",
      data: enc(`${JSON.stringify(studyFhirBundle(x, now), null, 2)}\n`),
    };
  else if (format === "csv") {
    const csv = studyCsvFiles(x);
    // The participants of the records the files were built from.
    const withRecords = new Set(x.records.filter((r) => r.versions.length).map((r) => r.subject));
    held = x.participants.filter((p) => withRecords.has(p.subject)).map((p) => p.id);
    const files = Object.fromEntries(csv.map((f) => [f.name, enc(f.text)]));
    files["CHOICES.txt"] = enc(choicesText());
    file = {
      name: `${study.code}-csv.zip`,
      contentType: "application/zip",
      data: zipSync(files, { level: 6, mtime: now }),
    };
  } else
    file = {
      name: `${study.code}-evidence.zip`,
      contentType: "application/zip",
      data: await evidencePackageRetried(ctx, principal, study.code, now, opts.onProgress),
    };
  await audit(ctx.db, {
    action: `export.${format}`,
    actorUserId: principal.userId,
    actorLabel: principal.label,
    studyId: study.id,
    detail: { bytes: file.data.length, ...exportParticipantsDetail(held) },
  });
  return file;
}

/** The package, made again (up to three times) when the study was written to while it was made. */
async function evidencePackageRetried(...args: Parameters<typeof evidencePackage>): Promise<Uint8Array> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await evidencePackage(...args);
    } catch (err) {
      if (!(err instanceof ChangedWhileExporting) || attempt === 3) throw err;
      await sealAll(args[0]);
    }
  }
}

class ChangedWhileExporting extends ServiceError {}

async function evidencePackage(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  now: Date,
  progress: (p: { phase: string; done: number; total: number }) => void = () => {},
): Promise<Uint8Array> {
  const x = (await loadStudyExport(ctx, studyCode))!;
  const files: Record<string, Uint8Array> = {};
  files["trust-policy.json"] = enc(`${JSON.stringify(deploymentTrustPolicy(ctx), null, 2)}\n`);
  // A certified copy per subject. Each PDF's SHA-256 is sealed as a document.generated entry when it is made
  // (ADR 0019); sealing again here puts those entries, with their proofs, in the log the package carries.
  for (const p of x.participants)
    files[`certified-copies/${p.subject}.pdf`] = new Uint8Array(
      await casebookPdf(ctx, principal, studyCode, p.subject),
    );
  if (x.participants.length) await sealAll(ctx);
  const copies = new Map(
    x.participants.map((p) => [p.subject, toHex(ctx.crypto.sha256(files[`certified-copies/${p.subject}.pdf`]))]),
  );

  // The whole log: checkpoints, batch headers and every envelope are sealed rows: read on the replica once it has
  // replayed the checkpoint just sealed (ADR 0044), all from one database; then consistency between checkpoints.
  const log = await sealedReadContext(ctx, (readCtx) => sealedLogOf(readCtx, studyCode, copies), {
    fresh: true,
    waitMs: 2000,
  });
  const { cps, derivedSeqs, studySeqs, studyBatches } = log;
  for (const cp of cps) files[`checkpoints/${cp.treeSize}.txt`] = enc(cp.noteText);
  for (let i = 1; i < cps.length; i++) {
    const proof = await consistencyBetween(ctx, cps[i - 1].treeSize, cps[i].treeSize);
    files[`consistency/${cps[i - 1].treeSize}-${cps[i].treeSize}.json`] = enc(`${JSON.stringify(proof)}\n`);
    progress({ phase: "log", done: i, total: cps.length - 1 });
  }
  files["log/batches.jsonl"] = enc(log.headers.map((h) => `${h}\n`).join(""));
  files["log/envelopes.jsonl"] = enc(log.envelopes.map((t) => `${t}\n`).join(""));
  if (!log.copiesLatest)
    throw new ChangedWhileExporting("conflict", "the study's data changed while the package was made: export it again");

  // The derived files, from the data as of that log: `verify-package` cross-checks them against it both ways
  // (ADR 0019), so a version or withdrawal sealed while the package was made is refused rather than half-included.
  const d = (await loadStudyExport(ctx, studyCode))!;
  if (derivedEntries(d).join() !== derivedSeqs.sort().join())
    throw new ChangedWhileExporting("conflict", "the study's data changed while the package was made: export it again");
  files["odm.xml"] = enc(studyOdm(d, now));
  files["fhir.json"] = enc(`${JSON.stringify(studyFhirBundle(d, now), null, 2)}\n`);
  for (const f of studyCsvFiles(d)) files[`csv/${f.name}`] = enc(f.text);

  // The study's proof bundles (the certified copies' document.generated entries among them).
  let done = 0;
  for (const b of [...studyBatches].sort((x, y) => x - y)) {
    for (const bundle of await proofBundlesOfBatch(ctx, b, (e) => e.studyCode === studyCode)) {
      files[`bundles/${bundle.envelope.seq}.json`] = enc(`${JSON.stringify(bundle)}\n`);
      done++;
    }
    progress({ phase: "bundles", done, total: studySeqs.length });
  }
  progress({ phase: "bundles", done: studySeqs.length, total: studySeqs.length });

  const manifest: Manifest = {
    format: "trialseal-evidence/v1",
    study: studyCode,
    origin: ctx.env.logOrigin,
    createdAt: now.toISOString(),
    logSize: cps.length ? cps[cps.length - 1].treeSize : 0,
    choices: PRIMARY_USE_CHOICES, // the choices it honours (ADR 0071)
    files: Object.entries(files)
      .map(([path, data]) => ({ path, sha256: toHex(ctx.crypto.sha256(data)), bytes: data.length }))
      .sort((a, b) => a.path.localeCompare(b.path)),
  };
  files["manifest.json"] = enc(`${JSON.stringify(manifest, null, 2)}\n`);
  return zipSync(files, { level: 6, mtime: now });
}

/** The sealed log as one database holds it: checkpoints, batch headers, every envelope, the study's seqs. */
async function sealedLogOf(ctx: AppContext, studyCode: string, copies: Map<string, string>) {
  const cps = await ctx.db
    .select({ treeSize: checkpoints.treeSize, noteText: checkpoints.noteText })
    .from(checkpoints)
    .orderBy(asc(checkpoints.treeSize));
  const headers: string[] = [];
  let lastBatch = -1;
  for (;;) {
    const page = await ctx.db
      .select({ no: batches.batchNo, text: batches.headerText })
      .from(batches)
      .where(gt(batches.batchNo, lastBatch))
      .orderBy(asc(batches.batchNo))
      .limit(5000);
    if (!page.length) break;
    for (const b of page) headers.push(b.text);
    lastBatch = page[page.length - 1].no;
  }
  const envelopes: string[] = [];
  const derivedSeqs: string[] = [];
  const studySeqs: number[] = [];
  const studyBatches = new Set<number>();
  let lastSeq = -1;
  for (;;) {
    const page = await ctx.db
      .select({
        seq: ledgerEntries.seq,
        text: ledgerEntries.envelopeText,
        study: ledgerEntries.studyCode,
        batch: ledgerEntries.batchNo,
        kind: ledgerEntries.kind,
      })
      .from(ledgerEntries)
      .where(and(isNotNull(ledgerEntries.seq), gt(ledgerEntries.seq, lastSeq)))
      .orderBy(asc(ledgerEntries.seq))
      .limit(10_000);
    if (!page.length) break;
    for (const e of page) {
      envelopes.push(e.text ?? "");
      if (e.study === studyCode) {
        studySeqs.push(e.seq!);
        studyBatches.add(e.batch!);
        if (DERIVED_KINDS.has(e.kind)) derivedSeqs.push(derivedKey(e.kind, e.seq));
      }
    }
    lastSeq = page[page.length - 1].seq!;
  }
  const copiesLatest = await copiesAreLatest(ctx, studyCode, lastSeq, copies);
  return { cps, headers, envelopes, derivedSeqs, studySeqs, studyBatches, lastSeq, copiesLatest };
}

/**
 * Whether the certified copies are those the log (up to `lastSeq`) asks for: `verify-package` wants one per subject
 * with a sealed participant.enrolled entry, each the subject's latest sealed copy (ADR 0019), so a subject enrolled
 * or a copy made elsewhere while the package was made means making it again.
 */
async function copiesAreLatest(ctx: AppContext, studyCode: string, lastSeq: number, copies: Map<string, string>) {
  const rows = await ctx.db
    .select({ kind: ledgerEntries.kind, payload: ledgerEntries.payloadText })
    .from(ledgerEntries)
    .where(
      and(
        eq(ledgerEntries.studyCode, studyCode),
        inArray(ledgerEntries.kind, ["participant.enrolled", "document.generated"]),
        isNotNull(ledgerEntries.seq),
        lte(ledgerEntries.seq, lastSeq),
      ),
    )
    .orderBy(asc(ledgerEntries.seq));
  const latest = new Map<string, string | null>();
  for (const r of rows) {
    const p = JSON.parse(r.payload) as { subject: string; document?: string; sha256?: string };
    if (r.kind === "participant.enrolled") latest.set(p.subject, latest.get(p.subject) ?? null);
    else if (p.document === "certified_copy") latest.set(p.subject, p.sha256 ?? null);
  }
  return latest.size === copies.size && [...copies].every(([subject, sha]) => latest.get(subject) === sha);
}

/** The entry kinds the ODM, FHIR and CSV files derive from (withdrawals by count: the export holds no seq). */
const DERIVED_KINDS = new Set([
  "record.saved",
  "consent.signed",
  "consent.withdrawn",
  "consent.paper_scanned",
  "consent.paper_attested",
]);
const derivedKey = (kind: string, seq: number | null) => (kind === "consent.withdrawn" ? kind : `${kind}:${seq}`);

/** The entries an export's data reflect, as `kind:seq` (compared with the log the package carries). */
function derivedEntries(x: StudyExport): string[] {
  return [
    ...x.records.flatMap((r) => r.versions.map((v) => derivedKey("record.saved", v.seq))),
    ...[...x.consentEntries.values()].map((e) => derivedKey("consent.signed", e.seq)),
    ...x.consents.flatMap((c) => c.withdrawals.map(() => derivedKey("consent.withdrawn", null))),
    ...x.consents.flatMap((c) =>
      c.paper.flatMap((pc) => [
        derivedKey("consent.paper_scanned", x.paperEntries.get(pc.entryId)?.seq ?? null),
        ...(pc.attestEntryId
          ? [derivedKey("consent.paper_attested", x.paperEntries.get(pc.attestEntryId)?.seq ?? null)]
          : []),
      ]),
    ),
  ].sort();
}

/**
 * Read a trusted package (ZIP) into its files, all in memory; a file that is no ZIP is refused. For tests of
 * packages this code made: `verify-package` reads untrusted ones with package-reader.server.ts (bounded).
 */
export function readPackage(zip: Uint8Array): Map<string, Uint8Array> {
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(zip);
  } catch (err) {
    throw new ServiceError("invalid", `not a ZIP archive: ${(err as Error).message}`, "file");
  }
  return new Map(Object.entries(entries).filter(([p]) => !p.endsWith("/")));
}

/** The part of fast-xml-parser's reading of an ODM file that odmItems looks at (attributes are prefixed "@"). */
type ParsedOdm = {
  ODM?: {
    ClinicalData?: {
      SubjectData?: {
        StudyEventData?: { FormData?: { ItemGroupData?: { ItemData?: ParsedOdmItemData[] }[] }[] }[];
      }[];
    };
  };
};
type ParsedOdmItemData = {
  "@ItemOID"?: string;
  "@IsNull"?: string;
  "@Value"?: string;
  "@ts:MissingCode"?: string;
  AuditRecord?: { SourceID?: string };
  Annotation?: { Comment?: unknown };
};

/** Every ItemData of an ODM file with the ledger seq its AuditRecord cites (for the package check and tests). */
export function odmItems(xml: string): OdmItem[] {
  const parser = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: "@",
    isArray: (name) => ["SubjectData", "StudyEventData", "FormData", "ItemGroupData", "ItemData"].includes(name),
    parseAttributeValue: false,
    parseTagValue: false,
    // Values exactly as written: untrimmed, with character references (&#10; &#9; &#13;) decoded.
    trimValues: false,
    htmlEntities: true,
  });
  const doc = parser.parse(xml) as ParsedOdm;
  const out: OdmItem[] = [];
  for (const s of doc.ODM?.ClinicalData?.SubjectData ?? [])
    for (const e of s.StudyEventData ?? [])
      for (const f of e.FormData ?? [])
        for (const g of f.ItemGroupData ?? [])
          for (const it of g.ItemData ?? []) {
            const src = String(it.AuditRecord?.SourceID ?? "");
            const seq = /seq=(\d+)/.exec(src)?.[1];
            if (seq === undefined) continue;
            const code = it["@ts:MissingCode"];
            const comment = it.Annotation?.Comment;
            out.push({
              seq: Number(seq),
              item: String(it["@ItemOID"]).split(".").slice(2).join("."),
              value: it["@IsNull"] === "Yes" ? null : String(it["@Value"]),
              ...(code === undefined
                ? {}
                : { missingCode: String(code), missingReason: typeof comment === "string" ? comment : null }),
            });
          }
  return out;
}

/**
 * The ODM text of an item in a sealed record.saved payload (what the ODM file must say at that seq): its clear or
 * calculated value (payload version 3 keeps calculated values apart); null when it holds none (identifier and
 * free-text values are checked by their salted hash, missing-data codes by code and reason: verify-package.ts).
 */
export function payloadOdmValue(kind: string, payload: Record<string, unknown>, item: string): string | null {
  if (kind !== "record.saved") return null;
  const of = (m: unknown) => (m && typeof m === "object" ? (m as Record<string, unknown>) : {});
  const values = of(payload.values);
  return odmValue(undefined, Object.hasOwn(values, item) ? values[item] : of(payload.calculated)[item]);
}
