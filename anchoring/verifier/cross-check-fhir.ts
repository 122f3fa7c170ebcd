/**
 * Evidence package: the FHIR bundle (fhir.json) cross-checked against the sealed payloads (ADR 0019).
 * - QuestionnaireResponse (a record's current version), by the seq of its ledger-entry extension: the record id,
 *   visit, record version, form and form version, status (`amended` after version 1), `authored` (the envelope's
 *   time), the subject's Patient, the leaf hash, every answer (and no answer the payload lacks), the author (a
 *   Practitioner whose identifier is the payload's `actor`, or a Device whose identifier and deviceName are the
 *   payload's `token` id and name; none for neither), and that the seq is the record's latest sealed version;
 *   every sealed record has one. Payload version 3 (issue 17): the `instance` extension (1 before), each clear and
 *   calculated value against `values` and `calculated`, each identifier or free-text answer (written as entered) by
 *   its salted hash against `hashed`, each missing-data code (an item without an answer: the `missing-code`
 *   extension, HL7's data-absent-reason matching it, the `missing-reason` by its salted hash) against `missing`.
 * - Consent, by its signature id (`consent-<signature>`): the patient, the document code and version (policy),
 *   the status derived from the consent.signed and consent.withdrawn entries (`inactive` after a full withdrawal
 *   or a later signature on the same document, else `active` once countersigned by staff, else `proposed`),
 *   `verification` present exactly when countersigned, each optional item's permit/deny (agreed and not withdrawn);
 *   every sealed primary signature has one.
 * - Consent of a paper consent (`consent-paper-<paper>`, ADR 0021), against its consent.paper_scanned and
 *   consent.paper_attested entries: patient, policy, the scan's SHA-256 (sourceAttachment's scan-sha256
 *   extension), status (`inactive` after a full withdrawal or a later consent, signed or on paper, on the same
 *   document; else `active` once attested, else `proposed`), `verification` exactly when attested, withdrawn
 *   items as `deny`; every sealed paper consent has one. A later paper consent also makes a signed one `inactive`.
 * - Provenance: its target is the Consent of the signature at its seq, document SHA-256 and leaf hash; for a paper
 *   consent also the scan's SHA-256, the uploader (`enterer`, the scan entry's actor), and once attested the
 *   attestation's seq and leaf hash and the investigator (`verifier`).
 * - ResearchSubject: `withdrawn` after a sealed full withdrawal.
 * Not checked (not in a sealed payload): dates of consent (the signature row's time), titles, displays, ids of
 * Patients, Practitioners and the bundle's own timestamp.
 */
import { canonicalize } from "../log/canonical.ts";
import { nobleCrypto } from "../log/crypto-noble.ts";
import type { Crypto } from "../log/crypto.ts";
import { hashedFieldValue } from "../log/record-values.ts";
import { saltedTextHash } from "../log/text-hash.ts";
import { type Bad, latestRecordVersions, type Sealed, type SealedEntry, show } from "./cross-check-sealed.ts";
import { enteredBy } from "./entered-by.ts";

/** HL7's data-absent-reason extension and the code the export gives each missing-data code (app/exports/fhir). */
const DATA_ABSENT_REASON = "http://hl7.org/fhir/StructureDefinition/data-absent-reason";
const DATA_ABSENT_CODE: Record<string, string> = {
  NI: "unknown",
  UNK: "unknown",
  ASKU: "asked-unknown",
  NASK: "not-asked",
  NA: "not-applicable",
  NOT_DONE: "not-performed",
};

type Json = Record<string, unknown>;
const FILE = "fhir.json";
const EXT = "https://trialseal.dev/fhir/StructureDefinition";

const obj = (v: unknown): Json => (v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Json) : {});
const ext = (r: Json, name: string) =>
  ((r.extension as Json[] | undefined) ?? []).find((x) => x.url === `${EXT}/${name}`);
/** The seq and leaf hash in a resource's ledger-entry extension. */
function ledgerOf(r: Json): { seq: number | null; leafHash: string | null } {
  const parts = (ext(r, "ledger-entry")?.extension as Json[] | undefined) ?? [];
  const seq = parts.find((x) => x.url === "seq")?.valueInteger;
  const leaf = parts.find((x) => x.url === "leafHash")?.valueString;
  return { seq: typeof seq === "number" ? seq : null, leafHash: typeof leaf === "string" ? leaf : null };
}
/** The seq and leaf hash in a nested ledger-entry-shaped extension (e.g. the attestation's). */
function ledgerIn(x: Json | undefined): { seq: number | null; leafHash: string | null } {
  const parts = (x?.extension as Json[] | undefined) ?? [];
  const seq = parts.find((y) => y.url === "seq")?.valueInteger;
  const leaf = parts.find((y) => y.url === "leafHash")?.valueString;
  return { seq: typeof seq === "number" ? seq : null, leafHash: typeof leaf === "string" ? leaf : null };
}
const identifierOf = (r: Json | undefined) =>
  ((r?.identifier as Json[] | undefined)?.[0] as Json | undefined)?.value as string | undefined;
/** Who a resource names as the one who acted, as entered-by.ts says it: `user <id>`, `token <name> (<id>)`, or "". */
function actorOf(r: Json | undefined): string {
  if (!r) return "";
  if (r.resourceType === "Device") {
    const name = ((r.deviceName as Json[] | undefined)?.[0] as Json | undefined)?.name;
    return enteredBy({ token: { id: identifierOf(r), name } });
  }
  return r.resourceType === "Practitioner" ? enteredBy({ actor: identifierOf(r) }) : `${String(r.resourceType)}`;
}

/** An answer's value: a coding's code, else its value[x]. */
function answerValue(a: Json): unknown {
  const coding = a.valueCoding as Json | undefined;
  if (coding) return coding.code;
  const k = Object.keys(a).find((x) => x.startsWith("value"));
  return k ? a[k] : undefined;
}
/** Whether the answers of an item say the sealed value (a multichoice is a list of codes). */
function answersSay(answers: Json[], want: unknown): boolean {
  const got = answers.map(answerValue);
  // A value of a field the form version does not define is written as one valueString of its JSON text.
  const asJsonText = got.length === 1 && got[0] === JSON.stringify(want);
  if (Array.isArray(want)) return asJsonText || JSON.stringify(got) === JSON.stringify(want.map((c) => String(c)));
  if (got.length !== 1) return false;
  // A number or boolean as itself, a choice's code as its text.
  return asJsonText || got[0] === want || (typeof want !== "string" && got[0] === String(want));
}

/** Returns the number of resources checked. */
export function crossCheckFhir(text: string, sealed: Sealed, bad: Bad, crypto: Crypto = nobleCrypto): number {
  let bundle: Json;
  try {
    bundle = JSON.parse(text) as Json;
    if (bundle.resourceType !== "Bundle" || !Array.isArray(bundle.entry)) throw new Error("not a FHIR Bundle");
  } catch (err) {
    bad(FILE, "FHIR_INVALID", (err as Error).message);
    return 0;
  }
  const entries = (bundle.entry as Json[]).map((e) => ({ url: String(e.fullUrl), r: (e.resource ?? {}) as Json }));
  const byUrl = new Map(entries.map((e) => [e.url, e.r]));
  const subjectOf = (ref: unknown) => {
    const p = byUrl.get(String((ref as Json | undefined)?.reference));
    return ((p?.identifier as Json[] | undefined)?.[0]?.value as string | undefined) ?? null;
  };
  const of = (kind: string) => [...sealed.values()].filter((e) => e.kind === kind);
  const signatures = of("consent.signed");
  const withdrawals = of("consent.withdrawn");
  /** Changes of optional choices after signing (issue 22, ADR 0066): checked with the withdrawals. */
  const choiceChanges = of("consent.choices_changed");
  const signatureById = new Map(signatures.map((e) => [String(e.payload.signature), e]));
  const scans = of("consent.paper_scanned");
  const scanByPaper = new Map(scans.map((e) => [String(e.payload.paper), e]));
  const attestationByPaper = new Map(of("consent.paper_attested").map((e) => [String(e.payload.paper), e]));
  const seenPapers = new Set<string>();
  const agentOf = (r: Json, code: string) =>
    byUrl.get(
      String(
        (
          ((r.agent as Json[] | undefined) ?? []).find(
            (a) => ((((a.type as Json | undefined)?.coding as Json[] | undefined)?.[0] as Json)?.code ?? "") === code,
          )?.who as Json | undefined
        )?.reference,
      ),
    );
  const latest = latestRecordVersions(sealed);
  const seenRecords = new Set<string>();
  const seenConsents = new Set<string>();
  let checked = 0;
  const mismatch = (what: string, field: string, got: unknown, want: unknown, from = "the sealed payload") =>
    bad(FILE, "FHIR_VALUE_MISMATCH", `${what}: ${field} is ${show(got)} in the file but ${show(want)} in ${from}`);

  for (const { r } of entries) {
    const type = String(r.resourceType);
    const name = `${type} ${String(r.id)}`;
    if (type === "QuestionnaireResponse") {
      const { seq, leafHash } = ledgerOf(r);
      const e = seq === null ? undefined : sealed.get(seq);
      if (e?.kind !== "record.saved") {
        bad(FILE, "FHIR_UNPROVEN", `${name} cites seq ${seq}, which is no record.saved entry with a verified bundle`);
        continue;
      }
      checked++;
      const p = e.payload;
      const what = `${name} (seq ${seq})`;
      const record = String(p.record);
      const same = (field: string, got: unknown, want: unknown) => {
        if (got !== want) mismatch(what, field, got, want);
      };
      same("identifier", (r.identifier as Json | undefined)?.value, record);
      same("visit", ext(r, "visit")?.valueString, p.visit);
      same("record-version", ext(r, "record-version")?.valueInteger, p.version);
      same("questionnaire", String(r.questionnaire).split(":").pop(), `${String(p.form)}|${String(p.formVersion)}`);
      same("status", r.status, Number(p.version) > 1 ? "amended" : "completed");
      same("authored", r.authored, e.envelope.at);
      same("subject", subjectOf(r.subject), p.subject);
      same("leafHash", leafHash, e.leafHash);
      same("author", actorOf(byUrl.get(String((r.author as Json | undefined)?.reference))), enteredBy(p));
      same("instance", ext(r, "instance")?.valueInteger ?? 1, p.instance ?? 1);
      const values = { ...obj(p.values), ...obj(p.calculated) };
      const hashed = obj(p.hashed);
      const missing = obj(p.missing);
      const salt = String(p.salt);
      const items = new Map(((r.item as Json[] | undefined) ?? []).map((i) => [String(i.linkId), i]));
      const answersOf = (k: string) => (items.get(k)?.answer as Json[] | undefined) ?? [];
      for (const [k, v] of Object.entries(values)) {
        if (v === null || v === undefined) continue;
        const answers = answersOf(k);
        if (!answersSay(answers, v)) mismatch(what, `item ${k}`, answers.map(answerValue), v);
      }
      for (const [k, want] of Object.entries(hashed)) {
        const got = answersOf(k).map(answerValue);
        // One answer's value (text, or a number's JSON), or a multichoice's list of codes.
        const texts = [
          ...(got.length === 1 ? [typeof got[0] === "string" ? got[0] : canonicalize(got[0] ?? null)] : []),
          ...(got.length ? [canonicalize(got)] : []),
        ];
        if (!texts.some((t) => hashedFieldValue(crypto, salt, t) === want))
          bad(
            FILE,
            "FHIR_VALUE_MISMATCH",
            `${what}: item ${k} is ${show(got.length === 1 ? got[0] : got)} in the file, which is not the value ` +
              "sealed (as a salted hash) in the payload",
          );
      }
      for (const [k, m] of Object.entries(missing)) {
        const item = items.get(k);
        const { code, reasonHash } = obj(m);
        const gotCode = item ? ext(item, "missing-code")?.valueCode : undefined;
        const absent = ((item?.extension as Json[] | undefined) ?? []).find((x) => x.url === DATA_ABSENT_REASON);
        const reason = item ? ext(item, "missing-reason")?.valueString : undefined;
        if (gotCode !== code) mismatch(what, `item ${k} missing-data code`, gotCode, code);
        else if (absent?.valueCode !== DATA_ABSENT_CODE[String(code)])
          mismatch(what, `item ${k} data-absent-reason`, absent?.valueCode, DATA_ABSENT_CODE[String(code)]);
        if (answersOf(k).length) mismatch(what, `item ${k}`, answersOf(k).map(answerValue), undefined);
        if (typeof reason !== "string" || saltedTextHash(crypto, salt, reason) !== reasonHash)
          bad(
            FILE,
            "FHIR_VALUE_MISMATCH",
            `${what}: the reason for item ${k}'s missing-data code is ${show(reason)} in the file, which is not ` +
              "the reason sealed (as a salted hash) in the payload",
          );
      }
      for (const k of items.keys())
        if ((values[k] === null || values[k] === undefined) && !Object.hasOwn(hashed, k) && !Object.hasOwn(missing, k))
          mismatch(what, `item ${k}`, answersOf(k).map(answerValue), undefined);
      const last = latest.get(record);
      if (last && last.seq !== seq)
        bad(
          FILE,
          "FHIR_NOT_LATEST",
          `${what} shows version ${String(p.version)}; the record's latest sealed version is ` +
            `${String(last.payload.version)} (seq ${last.seq})`,
        );
      seenRecords.add(record);
    } else if (type === "Consent" && String(r.id).startsWith("consent-paper-")) {
      const paper = String(r.id).slice("consent-paper-".length);
      const e = scanByPaper.get(paper);
      if (!e) {
        bad(
          FILE,
          "FHIR_UNPROVEN",
          `${name} names paper consent ${paper}, which has no sealed consent.paper_scanned entry`,
        );
        continue;
      }
      checked++;
      seenPapers.add(paper);
      checkPaperConsent(
        r,
        name,
        e,
        attestationByPaper.get(paper),
        [...signatures, ...scans],
        withdrawals,
        subjectOf,
        mismatch,
      );
    } else if (type === "Provenance" && sealed.get(ledgerOf(r).seq ?? -1)?.kind === "consent.paper_scanned") {
      const { seq, leafHash } = ledgerOf(r);
      const e = sealed.get(seq!)!;
      const what = `${name} (seq ${seq})`;
      checked++;
      const paper = String(e.payload.paper);
      const target = byUrl.get(String(((r.target as Json[] | undefined)?.[0] as Json | undefined)?.reference));
      if (target?.id !== `consent-paper-${paper}`) mismatch(what, "target", target?.id, `consent-paper-${paper}`);
      const sha = ext(r, "document-sha256")?.valueString;
      if (sha !== e.payload.documentSha256) mismatch(what, "document-sha256", sha, e.payload.documentSha256);
      const scan = ext(r, "scan-sha256")?.valueString;
      if (scan !== e.payload.scanSha256) mismatch(what, "scan-sha256", scan, e.payload.scanSha256);
      if (leafHash !== e.leafHash) mismatch(what, "leafHash", leafHash, e.leafHash);
      const enterer = actorOf(agentOf(r, "enterer"));
      if (enterer !== enteredBy({ actor: e.payload.actor }))
        mismatch(what, "enterer", enterer, enteredBy({ actor: e.payload.actor }));
      const att = attestationByPaper.get(paper);
      const got = ledgerIn(ext(r, "attestation-ledger-entry"));
      const want = att ? { seq: att.seq, leafHash: att.leafHash } : { seq: null, leafHash: null };
      if (got.seq !== want.seq || got.leafHash !== want.leafHash)
        mismatch(what, "attestation-ledger-entry", got, want, "the sealed attestation");
      const verifier = actorOf(agentOf(r, "verifier"));
      const wantVerifier = att ? enteredBy({ actor: att.payload.investigator }) : "";
      if (verifier !== wantVerifier) mismatch(what, "verifier", verifier, wantVerifier, "the sealed attestation");
    } else if (type === "Consent") {
      const sig = String(r.id).replace(/^consent-/, "");
      const e = signatureById.get(sig);
      if (!e) {
        bad(FILE, "FHIR_UNPROVEN", `${name} names signature ${sig}, which has no sealed consent.signed entry`);
        continue;
      }
      checked++;
      seenConsents.add(sig);
      checkConsent(r, name, e, signatures, scans, [...withdrawals, ...choiceChanges], subjectOf, mismatch);
    } else if (type === "Provenance") {
      const { seq, leafHash } = ledgerOf(r);
      const e = seq === null ? undefined : sealed.get(seq);
      const what = `${name} (seq ${seq})`;
      if (e?.kind !== "consent.signed") {
        bad(FILE, "FHIR_UNPROVEN", `${name} cites seq ${seq}, which is no consent.signed entry with a verified bundle`);
        continue;
      }
      checked++;
      const target = byUrl.get(String(((r.target as Json[] | undefined)?.[0] as Json | undefined)?.reference));
      if (target?.id !== `consent-${String(e.payload.signature)}`)
        mismatch(what, "target", target?.id, `consent-${String(e.payload.signature)}`);
      const sha = ext(r, "document-sha256")?.valueString;
      if (sha !== e.payload.documentSha256) mismatch(what, "document-sha256", sha, e.payload.documentSha256);
      if (leafHash !== e.leafHash) mismatch(what, "leafHash", leafHash, e.leafHash);
    } else if (type === "ResearchSubject") {
      const subject = (r.identifier as Json[] | undefined)?.[0]?.value;
      // After a partial withdrawal the status also depends on the consent's state (a re-consent pending keeps
      // `on-study`), which no single entry holds: only a full withdrawal fixes it.
      const full = withdrawals.find((w) => w.payload.subject === subject && w.payload.scope === "full");
      const what = `${name} (subject ${String(subject)})`;
      if (full && r.status !== "withdrawn")
        mismatch(`${what}, withdrawal seq ${full.seq}`, "status", r.status, "withdrawn", "the sealed withdrawal");
      if (full) checked++;
    }
  }
  for (const [record, e] of latest)
    if (!seenRecords.has(record))
      bad(
        FILE,
        "FHIR_RESOURCE_MISSING",
        `record ${record} (subject ${String(e.payload.subject)}, seq ${e.seq}) is sealed but has no ` +
          "QuestionnaireResponse",
      );
  for (const e of scans)
    if (!seenPapers.has(String(e.payload.paper)))
      bad(
        FILE,
        "FHIR_RESOURCE_MISSING",
        `paper consent ${String(e.payload.paper)} (subject ${String(e.payload.subject)}, seq ${e.seq}) ` +
          "is sealed but has no Consent",
      );
  for (const e of signatures)
    if (e.payload.countersigns === null && !seenConsents.has(String(e.payload.signature)))
      bad(
        FILE,
        "FHIR_RESOURCE_MISSING",
        `consent signature ${String(e.payload.signature)} (subject ${String(e.payload.subject)}, seq ${e.seq}) ` +
          "is sealed but has no Consent",
      );
  return checked;
}

/** A later primary consent of the same subject on the same document: signed, or on paper (ADR 0021). */
function laterConsent(e: SealedEntry, consents: SealedEntry[], scans: SealedEntry[] = []): SealedEntry | undefined {
  return [...consents, ...scans].find(
    (z) =>
      z.seq > e.seq &&
      (z.kind === "consent.paper_scanned" || z.payload.countersigns === null) &&
      z.payload.subject === e.payload.subject &&
      z.payload.document === e.payload.document,
  );
}

/** Permit/deny of each item of a Consent's nested provisions, as a comparable key. */
function provisionsOf(r: Json): { type: unknown; code: unknown }[] {
  return (((r.provision as Json | undefined)?.provision as Json[] | undefined) ?? []).map((x) => ({
    type: x.type,
    code: (
      (((x.code as Json[] | undefined)?.[0] as Json | undefined)?.coding as Json[] | undefined)?.[0] as Json | undefined
    )?.code,
  }));
}
const provisionKey = (xs: { type: unknown; code: unknown }[]) =>
  JSON.stringify(xs.map((x) => `${String(x.code)}=${String(x.type)}`).sort());

function checkPaperConsent(
  r: Json,
  name: string,
  e: SealedEntry,
  attestation: SealedEntry | undefined,
  consents: SealedEntry[],
  withdrawals: SealedEntry[],
  subjectOf: (ref: unknown) => string | null,
  mismatch: (what: string, field: string, got: unknown, want: unknown, from?: string) => void,
) {
  const p = e.payload;
  const what = `${name} (seq ${e.seq})`;
  const subject = String(p.subject);
  if (subjectOf(r.patient) !== subject) mismatch(what, "patient", subjectOf(r.patient), subject);
  const policy = String(((r.policy as Json[] | undefined)?.[0] as Json | undefined)?.uri);
  const wantPolicy = `${String(p.document)}:${String(p.version)}`;
  if (!policy.endsWith(`:${wantPolicy}`)) mismatch(what, "policy", policy.split(":").slice(-2).join(":"), wantPolicy);
  const attachment = r.sourceAttachment as Json | undefined;
  const scan = ((attachment?.extension as Json[] | undefined) ?? []).find(
    (x) => x.url === `${EXT}/scan-sha256`,
  )?.valueString;
  if (scan !== p.scanSha256) mismatch(what, "scan-sha256", scan, p.scanSha256);
  const mine = withdrawals.filter((w) => w.payload.subject === subject);
  const full = mine.find((w) => w.payload.scope === "full");
  const later = laterConsent(e, consents);
  const status = full || later ? "inactive" : attestation ? "active" : "proposed";
  if (r.status !== status) {
    const because = full
      ? `the sealed full withdrawal (seq ${full.seq})`
      : later
        ? `the later sealed consent (seq ${later.seq})`
        : attestation
          ? `the sealed attestation (seq ${attestation.seq})`
          : "the sealed entries (no attestation)";
    mismatch(what, "status", r.status, status, because);
  }
  const verified = Array.isArray(r.verification) && r.verification.length > 0;
  if (verified !== !!attestation)
    mismatch(what, "verification", verified, !!attestation, "the sealed entries (attestation)");
  const withdrawn = [...new Set(mine.flatMap((w) => (w.payload.optionalWithdrawn as string[] | undefined) ?? []))];
  const want = withdrawn.map((k) => ({ type: "deny", code: k }));
  const got = provisionsOf(r);
  if (provisionKey(got) !== provisionKey(want)) mismatch(what, "provision", got, want, "the sealed withdrawals");
}

function checkConsent(
  r: Json,
  name: string,
  e: SealedEntry,
  signatures: SealedEntry[],
  scans: SealedEntry[],
  withdrawals: SealedEntry[],
  subjectOf: (ref: unknown) => string | null,
  mismatch: (what: string, field: string, got: unknown, want: unknown, from?: string) => void,
) {
  const p = e.payload;
  const what = `${name} (seq ${e.seq})`;
  const subject = String(p.subject);
  if (subjectOf(r.patient) !== subject) mismatch(what, "patient", subjectOf(r.patient), subject);
  const policy = String(((r.policy as Json[] | undefined)?.[0] as Json | undefined)?.uri);
  const wantPolicy = `${String(p.document)}:${String(p.version)}`;
  if (!policy.endsWith(`:${wantPolicy}`)) mismatch(what, "policy", policy.split(":").slice(-2).join(":"), wantPolicy);
  // Status, from the sealed entries (as app/exports/fhir.server.ts derives it from the stored rows).
  const mine = withdrawals.filter((w) => w.payload.subject === subject);
  const full = mine.find((w) => w.payload.scope === "full");
  const later = laterConsent(e, signatures, scans);
  const countersign = signatures.find(
    (z) => z.payload.countersigns === p.signature && z.payload.signerRole === "staff",
  );
  const status = full || later ? "inactive" : countersign ? "active" : "proposed";
  if (r.status !== status) {
    const because = full
      ? `the sealed full withdrawal (seq ${full.seq})`
      : later
        ? `the later sealed signature (seq ${later.seq})`
        : countersign
          ? `the sealed countersignature (seq ${countersign.seq})`
          : "the sealed entries (no countersignature)";
    mismatch(what, "status", r.status, status, because);
  }
  const verified = Array.isArray(r.verification) && r.verification.length > 0;
  if (verified !== !!countersign)
    mismatch(what, "verification", verified, !!countersign, "the sealed entries (countersignature)");
  // The choice in force of each item: the signature's answer, then the partial withdrawals and choice changes
  // sealed after it and before the participant's next signature (which is answered afresh), in order (ADR 0066).
  // The export lists one nested provision per interval of each item's choice (ADR 0072): the last one listed for
  // an item is the one in force (or was, when a later signature replaced it).
  const inForce = { ...((p.options ?? {}) as Record<string, boolean>) };
  const laterSeqs = signatures
    .filter((z) => z.seq > e.seq && z.payload.countersigns === null && z.payload.subject === subject)
    .map((z) => z.seq);
  const next = laterSeqs.length ? Math.min(...laterSeqs) : undefined;
  for (const w of [...mine]
    .filter((z) => z.seq > e.seq && (next === undefined || z.seq < next))
    .sort((a, b) => a.seq - b.seq)) {
    for (const k of (w.payload.optionalWithdrawn as string[] | undefined) ?? []) if (k in inForce) inForce[k] = false;
    for (const [k, v] of Object.entries((w.payload.choices ?? {}) as Record<string, boolean>))
      if (k in inForce) inForce[k] = v;
  }
  const last = new Map<unknown, unknown>();
  for (const x of ((r.provision as Json | undefined)?.provision as Json[] | undefined) ?? [])
    last.set(
      (
        (((x.code as Json[] | undefined)?.[0] as Json | undefined)?.coding as Json[] | undefined)?.[0] as
          | Json
          | undefined
      )?.code,
      x.type,
    );
  const provisions = [...last].map(([code, type]) => ({ type, code }));
  const want = Object.entries(inForce).map(([k, agreed]) => ({ type: agreed ? "permit" : "deny", code: k }));
  const key = (xs: { type: unknown; code: unknown }[]) =>
    JSON.stringify(xs.map((x) => `${String(x.code)}=${String(x.type)}`).sort());
  if (key(provisions) !== key(want))
    mismatch(what, "provision", provisions, want, "the sealed signature and withdrawals");
}
