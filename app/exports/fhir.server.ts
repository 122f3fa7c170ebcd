/**
 * HL7 FHIR R4 export of a study as a `collection` Bundle:
 * - ResearchStudy; a pseudonymous Patient per participant (identifier = subject code, nothing else) and a
 *   ResearchSubject linking them (status from consent: on-study, follow-up after a partial withdrawal, withdrawn).
 * - A Questionnaire per form version and a QuestionnaireResponse per record (its current version; `amended`
 *   when it was corrected), each carrying the ledger entry that proves it in an extension.
 * - A Consent per participant signature on a document version (policy = the document version, sourceAttachment
 *   with the base64 SHA-1 of the document's bytes that Attachment.hash requires) and a Provenance for it carrying
 *   what FHIR cannot: the document's SHA-256 and the ledger entry (seq, leaf hash) of the signature, for
 *   `trialseal verify`. Its status: `active` once countersigned, `proposed` while awaiting the countersignature,
 *   `inactive` when superseded by a later signature on the same document or withdrawn in full.
 * - The member of staff who countersigned is a `verifier` agent of that Provenance, referencing a Practitioner
 *   (the user's id and full name, as the ODM export's User).
 * - A Consent per paper consent (ADR 0021), id `consent-paper-<paper id>`: `proposed` until an investigator attests
 *   it, then `active`; `inactive` when superseded (a later consent, signed or on paper, on the same document) or
 *   withdrawn in full. The scan is not kept, so no SHA-1 of it can be given in Attachment.hash: its sealed SHA-256
 *   is in a `scan-sha256` extension of sourceAttachment (and `size` its bytes). Its Provenance names the
 *   participant (author), the uploader (`enterer`) and the attesting investigator (`verifier`), and carries the
 *   ledger entries of the scan and of the attestation.
 * - QuestionnaireResponse.author: the Practitioner of the member of staff who entered the version, or a Device
 *   for the study API token it was written with (Device.deviceName = the token's name at the time; ADR 0019).
 * - QuestionnaireResponse items (issue 17): every entered value, identifiers and free text included (exports are for
 *   authorized users), each calculated value (a decimal; the Questionnaire item is readOnly), and each missing-data
 *   code as an item without an answer carrying HL7's data-absent-reason extension (NI and UNK: unknown, ASKU:
 *   asked-unknown, NASK: not-asked, NA: not-applicable, NOT_DONE: not-performed) and TrialSeal's `missing-code` and
 *   `missing-reason` extensions (the exact code and its reason). The row of a repeating form is its `instance`
 *   extension; the protocol version in force at the record's site when its version was entered (ADR 0048) its
 *   `protocol-version` extension (absent when none was).
 * Every entry's fullUrl is a `urn:uuid:` (a name-based UUID, version 5, of the resource's identity, so the same
 * resource has the same fullUrl in every export) and every reference is that same string, so references resolve
 * inside the bundle by R4's rules.
 * Validated in tests with @medplum/core's validateResource against the R4 StructureDefinitions (ADR 0008).
 */
import { primaryUseFhirMeta } from "../data-sharing/choices-statement.ts";
import { createHash } from "node:crypto";
import { isRequired, type FieldDefinition, type FormDefinition } from "../../anchoring/forms/definition.ts";
import type { ExportVersion, StudyExport } from "./study-data.server.ts";
import { PURPOSES, PURPOSE_SYSTEM, type PurposeCode } from "../data-sharing/purposes.ts";

const EXT = "https://trialseal.dev/fhir/StructureDefinition";
const SYS = { study: "urn:trialseal:study", subject: "urn:trialseal:subject", entry: "urn:trialseal:ledger-entry" };

type Resource = Record<string, unknown> & { resourceType: string; id: string };

const PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type";
/** The namespace of this export's name-based UUIDs (fixed: the same resource gets the same UUID every time). */
const UUID_NAMESPACE = Buffer.from("4c8868561d0d4c6bbfa00b4b6550a7ea", "hex");

/**
 * A name-based UUID, version 5 (RFC 9562: SHA-1 of namespace and name, version and variant bits set); the supply's
 * FHIR export (app/drug-supply/fhir-supply.server.ts) uses it too, so a Patient's fullUrl is the same in both.
 */
export function uuidV5(name: string): string {
  const h = createHash("sha1").update(UUID_NAMESPACE).update(name, "utf8").digest().subarray(0, 16);
  h[6] = (h[6] & 0x0f) | 0x50;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.toString("hex");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/**
 * Attachment.hash: the base64 SHA-1 of the document's bytes (the UTF-8 text whose SHA-256 was recorded at
 * approval and signed). Left out when the stored text no longer matches that SHA-256: the hash would not be of
 * the document as signed (the Provenance still carries the signed SHA-256).
 */
function attachmentHash(doc: { bodyMarkdown: string; sha256: string } | undefined): string | undefined {
  if (!doc) return undefined;
  const bytes = new TextEncoder().encode(doc.bodyMarkdown);
  if (createHash("sha256").update(bytes).digest("hex") !== doc.sha256) return undefined;
  return createHash("sha1").update(bytes).digest("base64");
}

const ledgerExtension = (e: { seq: number | null; leafHash: string | null; entryId: string }) => ({
  url: `${EXT}/ledger-entry`,
  extension: [
    { url: "entry", valueString: e.entryId },
    ...(e.seq === null ? [] : [{ url: "seq", valueInteger: e.seq }]),
    ...(e.leafHash === null ? [] : [{ url: "leafHash", valueString: e.leafHash }]),
  ],
});

const safeId = (s: string) => s.replace(/[^A-Za-z0-9.-]/g, "-").slice(0, 64);

/** HL7's data-absent-reason extension, and the DataAbsentReason code of each missing-data code. */
export const DATA_ABSENT_REASON = "http://hl7.org/fhir/StructureDefinition/data-absent-reason";
export const DATA_ABSENT_CODE: Record<string, string> = {
  NI: "unknown",
  UNK: "unknown",
  ASKU: "asked-unknown",
  NASK: "not-asked",
  NA: "not-applicable",
  NOT_DONE: "not-performed",
};

/** The items of a version: entered values, calculated values and missing-data codes, in the form's field order. */
function responseItems(def: FormDefinition | undefined, v: ExportVersion): Record<string, unknown>[] {
  const values: Record<string, unknown> = { ...v.values };
  for (const [k, c] of Object.entries(v.calculated ?? {})) values[k] = c;
  const names = [...new Set([...Object.keys(values), ...Object.keys(v.missing ?? {})])];
  const order = new Map((def?.fields ?? []).map((f, i) => [f.name, i]));
  names.sort((a, b) => (order.get(a) ?? order.size) - (order.get(b) ?? order.size));
  const out: Record<string, unknown>[] = [];
  for (const name of names) {
    const f = def?.fields.find((fd) => fd.name === name);
    const m = v.missing?.[name];
    if (m)
      out.push({
        linkId: name,
        text: f?.label,
        extension: [
          { url: DATA_ABSENT_REASON, valueCode: DATA_ABSENT_CODE[m.code] ?? "unknown" },
          { url: `${EXT}/missing-code`, valueCode: m.code },
          { url: `${EXT}/missing-reason`, valueString: m.reason },
        ],
      });
    else if (values[name] !== null && values[name] !== undefined)
      out.push({ linkId: name, text: f?.label, answer: answers(f, values[name]) });
  }
  return out;
}

function itemType(f: FieldDefinition): string {
  switch (f.type) {
    case "number":
      return f.integer ? "integer" : "decimal";
    case "date":
      return "date";
    case "datetime":
      return "dateTime";
    case "boolean":
      return "boolean";
    case "choice":
    case "multichoice":
      return "choice";
    case "text":
      return f.maxLength && f.maxLength <= 255 ? "string" : "text";
    case "calc":
      return "decimal";
  }
}

function answers(f: FieldDefinition | undefined, v: unknown): Record<string, unknown>[] {
  if (v === null || v === undefined) return [];
  if (!f) return [{ valueString: JSON.stringify(v) }];
  switch (f.type) {
    case "number":
      return [f.integer ? { valueInteger: v } : { valueDecimal: v }];
    case "calc":
      return [{ valueDecimal: v }];
    case "date":
      return [{ valueDate: v }];
    case "datetime":
      return [{ valueDateTime: v }];
    case "boolean":
      return [{ valueBoolean: v }];
    case "choice":
      return [{ valueCoding: { code: String(v), display: f.options.find((o) => o.value === v)?.label } }];
    case "multichoice":
      return (v as unknown[]).map((c) => ({
        valueCoding: { code: String(c), display: f.options.find((o) => o.value === c)?.label },
      }));
    default:
      return [{ valueString: String(v) }];
  }
}

const PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";

/**
 * The nested provisions of a signed consent (ADR 0072): one per interval of each optional item's choice (`permit`
 * while yes, `deny` while no, each with its period), oldest first; an item governing purposes carries them
 * (HL7 v3 PurposeOfUse) and the recipient they allow (IRCP: researchers the data access committee approves). The
 * last interval of each item is the choice in force; a full withdrawal ends it, and so does the participant's next
 * signature (a superseded signature's items stop there: the next one is answered afresh). `data` is the Patient
 * with meaning `related`: an item covers all the participant's data, every resource related to them.
 */
function itemProvisions(
  x: StudyExport,
  s: { id: string; options: Record<string, boolean>; signedAt: string; document: { code: string } },
  fullWithdrawalAt: string | null,
  patient: string,
): Record<string, unknown>[] {
  const system = `urn:trialseal:consent-item:${x.study.code}:${s.document.code}`;
  const items: { key: string; purposes: PurposeCode[]; history: { at: string; agreed: boolean }[]; until?: string }[] =
    x.choicesBySignature?.get(s.id) ??
    Object.entries(s.options).map(([key, agreed]) => ({
      key,
      purposes: [] as PurposeCode[],
      history: [{ at: s.signedAt, agreed }],
    }));
  const out: Record<string, unknown>[] = [];
  for (const item of items) {
    // Consecutive answers that are the same make one interval; the earlier of a full withdrawal and the next
    // signature ends the last.
    const stop = [fullWithdrawalAt, item.until].filter((v): v is string => !!v).sort()[0];
    const changes = item.history.filter((h, i) => i === 0 || h.agreed !== item.history[i - 1].agreed);
    const intervals = changes.filter((h, i) => i === 0 || !stop || h.at <= stop);
    for (const [i, h] of intervals.entries()) {
      const end = intervals[i + 1]?.at ?? stop ?? undefined;
      out.push({
        type: h.agreed ? "permit" : "deny",
        period: { start: h.at, ...(end ? { end } : {}) },
        ...(item.purposes.length
          ? {
              actor: [
                {
                  role: { coding: [{ system: PARTICIPATION_TYPE, code: "IRCP", display: "information recipient" }] },
                  reference: { display: "researchers whose request the study's data access committee approves" },
                },
              ],
              purpose: item.purposes.map((code) => ({
                system: PURPOSE_SYSTEM,
                code,
                display: PURPOSES[code].display,
              })),
            }
          : {}),
        code: [{ coding: [{ system, code: item.key }] }],
        data: [{ meaning: "related", reference: { reference: patient } }],
      });
    }
  }
  return out;
}

export function studyFhirBundle(x: StudyExport, now = new Date()): Record<string, unknown> {
  const entries: { fullUrl: string; resource: Resource }[] = [];
  /** A resource's fullUrl, from its type and identity (a row id, or what names it within the study). */
  const urn = (type: string, key: string) => `urn:uuid:${uuidV5(`${x.study.id}/${type}/${key}`)}`;
  const add = (key: string, resource: Resource) => {
    const fullUrl = urn(resource.resourceType, key);
    entries.push({ fullUrl, resource });
    return fullUrl;
  };
  const studyId = safeId(x.study.code);
  const studyUrl = add(x.study.id, {
    resourceType: "ResearchStudy",
    id: studyId,
    identifier: [{ system: SYS.study, value: x.study.code }],
    title: x.study.title,
    status: x.study.status === "active" ? "active" : "closed-to-accrual",
    site: x.sites.map((s) => ({ display: `${s.code}: ${s.name}` })),
  });
  const qUrl = (code: string) => `urn:trialseal:questionnaire:${x.study.code}:${code}`;
  for (const f of x.forms) {
    add(`${f.code}/${f.version}`, {
      resourceType: "Questionnaire",
      id: safeId(`${x.study.code}-${f.code}-${f.version}`),
      url: qUrl(f.code),
      version: String(f.version),
      title: f.title,
      status: "active",
      subjectType: ["Patient"],
      item: f.fields.map((fd) => ({
        linkId: fd.name,
        text: fd.label,
        type: itemType(fd),
        required: isRequired(fd),
        ...(fd.type === "calc" ? { readOnly: true } : {}),
        ...(fd.type === "multichoice" ? { repeats: true } : {}),
        ...(fd.type === "choice" || fd.type === "multichoice"
          ? { answerOption: fd.options.map((o) => ({ valueCoding: { code: o.value, display: o.label } })) }
          : {}),
      })),
    });
  }
  const consentBySubject = new Map(x.consents.map((c) => [c.subject, c]));
  const patientUrl = new Map(x.participants.map((p) => [p.subject, urn("Patient", p.id)]));
  const practitionerUrl = new Map<string, string>();
  /** The Practitioner of a member of staff, added once. */
  const practitioner = (u: { userId: string; fullName: string }) => {
    let url = practitionerUrl.get(u.userId);
    if (!url) {
      url = add(u.userId, {
        resourceType: "Practitioner",
        id: safeId(`staff-${u.userId}`),
        identifier: [{ system: "urn:trialseal:user", value: u.userId }],
        name: [{ text: u.fullName }],
      });
      practitionerUrl.set(u.userId, url);
    }
    return url;
  };
  const deviceUrl = new Map<string, string>();
  /** The Device of a study API token under its name at the time of a write, added once per (id, name). */
  const device = (tok: { id: string; name: string }) => {
    const key = `${tok.id}/${tok.name}`;
    let url = deviceUrl.get(key);
    if (!url) {
      const same = [...deviceUrl.keys()].filter((k) => k.startsWith(`${tok.id}/`)).length;
      url = add(key, {
        resourceType: "Device",
        id: safeId(`token-${tok.id}${same ? `-${same + 1}` : ""}`),
        identifier: [{ system: "urn:trialseal:api-token", value: tok.id }],
        deviceName: [{ name: tok.name, type: "user-friendly-name" }],
      });
      deviceUrl.set(key, url);
    }
    return url;
  };
  for (const p of x.participants) {
    const pid = safeId(`${x.study.code}-${p.subject}`);
    const patient = add(p.id, {
      resourceType: "Patient",
      id: pid,
      identifier: [{ system: `${SYS.subject}:${x.study.code}`, value: p.subject }],
    });
    const c = consentBySubject.get(p.subject);
    const subjectStatus =
      p.status === "withdrawn" || c?.state === "withdrawn"
        ? "withdrawn"
        : c?.state === "partially_withdrawn"
          ? "follow-up"
          : "on-study";
    add(p.id, {
      resourceType: "ResearchSubject",
      id: `rs-${pid}`,
      identifier: [{ system: `${SYS.subject}:${x.study.code}`, value: p.subject }],
      status: subjectStatus,
      period: { start: p.enrolledAt },
      study: { reference: studyUrl },
      individual: { reference: patient },
    });
    if (!c) continue;
    const primaries = c.signatures.filter((z) => z.primary); // oldest first
    for (const [i, s] of primaries.entries()) {
      const doc = x.documents.find((d) => d.id === s.documentId);
      const cid = `consent-${s.id}`;
      const proof = x.consentEntries.get(s.entryId) ?? { seq: null, leafHash: null };
      const countersign = c.signatures.find((z) => z.countersigns === s.id && z.role === "staff");
      const staff = countersign ? x.consentSigners.get(countersign.id) : undefined;
      const fullWithdrawal = c.withdrawals.find((w) => w.scope === "full");
      // Superseded: signed again later on the same document (a re-consent, or a new signature taken before this
      // one was countersigned); R4 `inactive` is "terminated or replaced", `proposed` not yet in force.
      const superseded =
        primaries.slice(i + 1).some((z) => z.document.code === s.document.code) ||
        c.paper.some((z) => z.document.code === s.document.code && z.uploadedAt > s.signedAt);
      const status = fullWithdrawal || superseded ? "inactive" : countersign ? "active" : "proposed";
      const consentUrl = add(s.id, {
        resourceType: "Consent",
        id: cid,
        status,
        scope: {
          coding: [
            { system: "http://terminology.hl7.org/CodeSystem/consentscope", code: "research", display: "Research" },
          ],
        },
        category: [{ coding: [{ system: "http://loinc.org", code: "59284-0", display: "Patient Consent" }] }],
        patient: { reference: patient },
        dateTime: s.signedAt,
        policy: [{ uri: `urn:trialseal:consent-document:${x.study.code}:${s.document.code}:${s.document.version}` }],
        sourceAttachment: {
          contentType: "text/markdown",
          language: doc?.language,
          title: `${s.document.title} (${s.document.code} ${s.document.version})`,
          hash: attachmentHash(doc),
        },
        verification: countersign ? [{ verified: true, verificationDate: countersign.signedAt }] : undefined,
        provision: {
          type: "permit",
          period: { start: s.signedAt, ...(fullWithdrawal ? { end: fullWithdrawal.at } : {}) },
          provision: itemProvisions(x, s, fullWithdrawal?.at ?? null, patient),
        },
      });
      add(s.id, {
        resourceType: "Provenance",
        id: `prov-${s.id}`,
        target: [{ reference: consentUrl }],
        recorded: s.signedAt,
        agent: [
          { type: { coding: [{ system: PARTICIPANT_TYPE, code: "author" }] }, who: { reference: patient } },
          // The person who obtained the consent countersigns that the consent process was carried out properly:
          // R4's `verifier` ("verifies the correctness and appropriateness of activity"). Not `attester` (attests
          // the accuracy of the resource's content) nor `legal` (takes legal responsibility for the content):
          // the content is the participant's decision.
          ...(staff
            ? [
                {
                  type: { coding: [{ system: PARTICIPANT_TYPE, code: "verifier", display: "Verifier" }] },
                  who: { reference: practitioner(staff) },
                },
              ]
            : []),
        ],
        entity: [
          {
            role: "source",
            what: {
              identifier: { system: SYS.entry, value: s.entryId },
              display: proof.seq === null ? "ledger entry (pending seal)" : `ledger entry seq ${proof.seq}`,
            },
          },
        ],
        extension: [
          { url: `${EXT}/document-sha256`, valueString: s.document.sha256 },
          ledgerExtension({ ...proof, entryId: s.entryId }),
        ],
      });
    }
    const fullWithdrawal = c.withdrawals.find((w) => w.scope === "full");
    const withdrawnItems = [...new Set(c.withdrawals.flatMap((w) => w.allows.optionalWithdrawn))].sort();
    for (const [i, pc] of c.paper.entries()) {
      const superseded =
        c.paper.slice(i + 1).some((z) => z.document.code === pc.document.code) ||
        primaries.some((z) => z.document.code === pc.document.code && z.signedAt > pc.uploadedAt);
      const status = fullWithdrawal || superseded ? "inactive" : pc.attestedAt ? "active" : "proposed";
      const proof = x.paperEntries.get(pc.entryId) ?? { seq: null, leafHash: null };
      const attestProof = pc.attestEntryId
        ? (x.paperEntries.get(pc.attestEntryId) ?? { seq: null, leafHash: null })
        : null;
      const consentUrl = add(`paper/${pc.id}`, {
        resourceType: "Consent",
        id: `consent-paper-${pc.id}`,
        status,
        scope: {
          coding: [
            { system: "http://terminology.hl7.org/CodeSystem/consentscope", code: "research", display: "Research" },
          ],
        },
        category: [{ coding: [{ system: "http://loinc.org", code: "59284-0", display: "Patient Consent" }] }],
        patient: { reference: patient },
        dateTime: pc.uploadedAt,
        policy: [{ uri: `urn:trialseal:consent-document:${x.study.code}:${pc.document.code}:${pc.document.version}` }],
        // The scan is not kept (ADR 0021): its sealed SHA-256, not a SHA-1 nobody can compute any more.
        sourceAttachment: {
          extension: [{ url: `${EXT}/scan-sha256`, valueString: pc.scanSha256 }],
          title: `Scan of the signed paper consent form ${pc.document.code} ${pc.document.version}`,
          size: pc.scanBytes,
        },
        verification: pc.attestedAt ? [{ verified: true, verificationDate: pc.attestedAt }] : undefined,
        provision: {
          type: "permit",
          period: { start: pc.uploadedAt, ...(fullWithdrawal ? { end: fullWithdrawal.at } : {}) },
          provision: withdrawnItems.map((k) => ({
            type: "deny",
            code: [{ coding: [{ system: `urn:trialseal:consent-item:${x.study.code}:${pc.document.code}`, code: k }] }],
          })),
        },
      });
      const staff = (userId: string | null) =>
        userId ? practitioner({ userId, fullName: x.paperStaff.get(userId) ?? userId }) : null;
      const uploader = staff(pc.uploadedBy);
      const attester = pc.attestedAt ? staff(pc.attestedBy) : null;
      add(`paper/${pc.id}`, {
        resourceType: "Provenance",
        id: `prov-paper-${pc.id}`,
        target: [{ reference: consentUrl }],
        recorded: pc.uploadedAt,
        agent: [
          { type: { coding: [{ system: PARTICIPANT_TYPE, code: "author" }] }, who: { reference: patient } },
          ...(uploader
            ? [
                {
                  type: { coding: [{ system: PARTICIPANT_TYPE, code: "enterer", display: "Enterer" }] },
                  who: { reference: uploader },
                },
              ]
            : []),
          ...(attester
            ? [
                {
                  type: { coding: [{ system: PARTICIPANT_TYPE, code: "verifier", display: "Verifier" }] },
                  who: { reference: attester },
                },
              ]
            : []),
        ],
        entity: [
          {
            role: "source",
            what: {
              identifier: { system: SYS.entry, value: pc.entryId },
              display: proof.seq === null ? "ledger entry (pending seal)" : `ledger entry seq ${proof.seq}`,
            },
          },
          ...(pc.attestEntryId && attestProof
            ? [
                {
                  role: "source",
                  what: {
                    identifier: { system: SYS.entry, value: pc.attestEntryId },
                    display:
                      attestProof.seq === null
                        ? "attestation ledger entry (pending seal)"
                        : `attestation ledger entry seq ${attestProof.seq}`,
                  },
                },
              ]
            : []),
        ],
        extension: [
          { url: `${EXT}/document-sha256`, valueString: pc.document.sha256 },
          { url: `${EXT}/scan-sha256`, valueString: pc.scanSha256 },
          ledgerExtension({ ...proof, entryId: pc.entryId }),
          ...(pc.attestEntryId && attestProof
            ? [
                {
                  ...ledgerExtension({ ...attestProof, entryId: pc.attestEntryId }),
                  url: `${EXT}/attestation-ledger-entry`,
                },
              ]
            : []),
        ],
      });
    }
  }
  for (const r of x.records) {
    const v = r.versions[r.versions.length - 1];
    if (!v) continue;
    const def = x.forms.find((f) => f.code === r.form && f.version === v.formVersion);
    add(r.id, {
      resourceType: "QuestionnaireResponse",
      id: `qr-${r.id}`,
      identifier: { system: "urn:trialseal:record", value: r.id },
      questionnaire: `${qUrl(r.form)}|${v.formVersion}`,
      status: r.versions.length > 1 ? "amended" : "completed",
      subject: { reference: patientUrl.get(r.subject) },
      authored: v.at,
      ...(v.actorToken
        ? { author: { reference: device(v.actorToken) } }
        : v.actorId
          ? {
              author: {
                reference: practitioner({ userId: v.actorId, fullName: x.users.get(v.actorId) ?? v.actorId }),
              },
            }
          : {}),
      extension: [
        { url: `${EXT}/visit`, valueString: r.visit },
        { url: `${EXT}/instance`, valueInteger: r.instance ?? 1 },
        { url: `${EXT}/record-version`, valueInteger: v.version },
        // The protocol version in force at the record's site when this version was entered (ADR 0048).
        ...(v.protocolVersion === null ? [] : [{ url: `${EXT}/protocol-version`, valueString: v.protocolVersion }]),
        ledgerExtension(v),
      ],
      item: responseItems(def, v),
    });
  }
  return {
    resourceType: "Bundle",
    id: safeId(`${x.study.code}-${now.getTime()}`),
    meta: primaryUseFhirMeta(), // the choices it honours (ADR 0071)
    type: "collection",
    timestamp: now.toISOString(),
    entry: entries.map((e) => ({ fullUrl: e.fullUrl, resource: JSON.parse(JSON.stringify(e.resource)) })),
  };
}
