/**
 * HL7 FHIR R4 export of a study as a `collection` Bundle:
 * - ResearchStudy; a pseudonymous Patient per participant (identifier = subject code, nothing else) and a
 *   ResearchSubject linking them (status from consent: on-study, follow-up after a partial withdrawal, withdrawn).
 * - A Questionnaire per form version and a QuestionnaireResponse per record (its current version; `amended`
 *   when it was corrected), each carrying the ledger entry that proves it in an extension.
 * - A Consent per participant signature on a document version (policy = the document version, sourceAttachment
 *   with the SHA-1 that Attachment.hash requires) and a Provenance for it carrying what FHIR cannot: the
 *   document's SHA-256 and the ledger entry (seq, leaf hash) of the signature, for `trialseal verify`.
 * Validated in tests with @medplum/core's validateResource against the R4 StructureDefinitions (ADR 0008).
 */
import { createHash } from "node:crypto";
import type { FieldDefinition } from "../records/form-definition.ts";
import type { StudyExport } from "./study-data.server.ts";

const EXT = "https://trialseal.dev/fhir/StructureDefinition";
const SYS = { study: "urn:trialseal:study", subject: "urn:trialseal:subject", entry: "urn:trialseal:ledger-entry" };

type Resource = Record<string, unknown> & { resourceType: string; id: string };

const ledgerExtension = (e: { seq: number | null; leafHash: string | null; entryId: string }) => ({
  url: `${EXT}/ledger-entry`,
  extension: [
    { url: "entry", valueString: e.entryId },
    ...(e.seq === null ? [] : [{ url: "seq", valueInteger: e.seq }]),
    ...(e.leafHash === null ? [] : [{ url: "leafHash", valueString: e.leafHash }]),
  ],
});

const safeId = (s: string) => s.replace(/[^A-Za-z0-9.-]/g, "-").slice(0, 64);

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
  }
}

function answers(f: FieldDefinition | undefined, v: unknown): Record<string, unknown>[] {
  if (v === null || v === undefined) return [];
  if (!f) return [{ valueString: JSON.stringify(v) }];
  switch (f.type) {
    case "number":
      return [f.integer ? { valueInteger: v } : { valueDecimal: v }];
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

export function studyFhirBundle(x: StudyExport, now = new Date()): Record<string, unknown> {
  const resources: Resource[] = [];
  const studyId = safeId(x.study.code);
  resources.push({
    resourceType: "ResearchStudy",
    id: studyId,
    identifier: [{ system: SYS.study, value: x.study.code }],
    title: x.study.title,
    status: x.study.status === "active" ? "active" : "closed-to-accrual",
    site: x.sites.map((s) => ({ display: `${s.code}: ${s.name}` })),
  });
  const qUrl = (code: string) => `urn:trialseal:questionnaire:${x.study.code}:${code}`;
  for (const f of x.forms) {
    resources.push({
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
        required: !!fd.required,
        ...(fd.type === "multichoice" ? { repeats: true } : {}),
        ...(fd.type === "choice" || fd.type === "multichoice"
          ? { answerOption: fd.options.map((o) => ({ valueCoding: { code: o.value, display: o.label } })) }
          : {}),
      })),
    });
  }
  const consentBySubject = new Map(x.consents.map((c) => [c.subject, c]));
  for (const p of x.participants) {
    const pid = safeId(`${x.study.code}-${p.subject}`);
    resources.push({
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
    resources.push({
      resourceType: "ResearchSubject",
      id: `rs-${pid}`,
      identifier: [{ system: `${SYS.subject}:${x.study.code}`, value: p.subject }],
      status: subjectStatus,
      period: { start: p.enrolledAt },
      study: { reference: `ResearchStudy/${studyId}` },
      individual: { reference: `Patient/${pid}` },
    });
    if (!c) continue;
    for (const s of c.signatures.filter((z) => z.primary)) {
      const doc = x.documents.find((d) => d.id === s.documentId);
      const cid = `consent-${s.id}`;
      const proof = x.consentEntries.get(s.entryId) ?? { seq: null, leafHash: null };
      const countersign = c.signatures.find((z) => z.countersigns === s.id && z.role === "staff");
      const fullWithdrawal = c.withdrawals.find((w) => w.scope === "full");
      const withdrawnItems = c.withdrawals.flatMap((w) => w.allows.optionalWithdrawn);
      resources.push({
        resourceType: "Consent",
        id: cid,
        status: fullWithdrawal ? "inactive" : "active",
        scope: {
          coding: [
            { system: "http://terminology.hl7.org/CodeSystem/consentscope", code: "research", display: "Research" },
          ],
        },
        category: [{ coding: [{ system: "http://loinc.org", code: "59284-0", display: "Patient Consent" }] }],
        patient: { reference: `Patient/${pid}` },
        dateTime: s.signedAt,
        policy: [{ uri: `urn:trialseal:consent-document:${x.study.code}:${s.document.code}:${s.document.version}` }],
        sourceAttachment: {
          contentType: "text/markdown",
          language: doc?.language,
          title: `${s.document.title} (${s.document.code} ${s.document.version})`,
          hash: doc ? createHash("sha1").update(Buffer.from(doc.sha256, "hex")).digest("base64") : undefined,
        },
        verification: countersign ? [{ verified: true, verificationDate: countersign.signedAt }] : undefined,
        provision: {
          type: "permit",
          period: { start: s.signedAt, ...(fullWithdrawal ? { end: fullWithdrawal.at } : {}) },
          provision: Object.entries(s.options).map(([k, agreed]) => ({
            type: agreed && !withdrawnItems.includes(k) ? "permit" : "deny",
            code: [{ coding: [{ system: `urn:trialseal:consent-item:${x.study.code}:${s.document.code}`, code: k }] }],
          })),
        },
      });
      resources.push({
        resourceType: "Provenance",
        id: `prov-${s.id}`,
        target: [{ reference: `Consent/${cid}` }],
        recorded: s.signedAt,
        agent: [
          {
            type: {
              coding: [{ system: "http://terminology.hl7.org/CodeSystem/provenance-participant-type", code: "author" }],
            },
            who: { reference: `Patient/${pid}` },
          },
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
  }
  for (const r of x.records) {
    const v = r.versions[r.versions.length - 1];
    if (!v) continue;
    const def = x.forms.find((f) => f.code === r.form && f.version === v.formVersion);
    resources.push({
      resourceType: "QuestionnaireResponse",
      id: `qr-${r.id}`,
      identifier: { system: "urn:trialseal:record", value: r.id },
      questionnaire: `${qUrl(r.form)}|${v.formVersion}`,
      status: r.versions.length > 1 ? "amended" : "completed",
      subject: { reference: `Patient/${safeId(`${x.study.code}-${r.subject}`)}` },
      authored: v.at,
      extension: [
        { url: `${EXT}/visit`, valueString: r.visit },
        { url: `${EXT}/record-version`, valueInteger: v.version },
        ledgerExtension(v),
      ],
      item: Object.entries(v.values)
        .filter(([, value]) => value !== null && value !== undefined)
        .map(([name, value]) => {
          const f = def?.fields.find((fd) => fd.name === name);
          return { linkId: name, text: f?.label, answer: answers(f, value) };
        }),
    });
  }
  return {
    resourceType: "Bundle",
    id: safeId(`${x.study.code}-${now.getTime()}`),
    type: "collection",
    timestamp: now.toISOString(),
    entry: resources.map((r) => ({
      fullUrl: `urn:trialseal:${r.resourceType}/${r.id}`,
      resource: JSON.parse(JSON.stringify(r)),
    })),
  };
}
