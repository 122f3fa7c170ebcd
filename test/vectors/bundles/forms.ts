/**
 * Form vectors (ADR 0028): a small log of its own (origin FORMS_ORIGIN, same fixed key) holding a form version's
 * approval and record.saved entries of payload version 3, each salted, hashed, batched and signed normally. Their
 * bundles carry the form definition, so the verifier recomputes the calculated fields and checks the branching:
 * - `valid-calculation`: BMI sealed as 24.7 from height 175 cm and weight 75.6 kg (identifier and free text as
 *   salted hashes, a missing-data code with its reason's hash): every step holds;
 * - `form-definition-removed`: the valid bundle with its definition deleted: the payload seals formSha256, the server
 *   always attaches the definition, so a bundle without it fails (FORM_DEFINITION_MISSING) — `form` sits outside the
 *   signed payload, and deleting it must not turn a failure into "not checked";
 * - `calculation-changed-form-removed`: the calculation-changed bundle with its definition deleted
 *   (FORM_DEFINITION_MISSING, not VALID);
 * - `form-definition-invalid`: a genuine entry of a log of its own whose sealed definition (its hash matches) does
 *   not parse (BMI's expression is cut short): the server, parsing it the same way, could never have saved records
 *   on it (FORM_DEFINITION_INVALID);
 * - `calculation-changed`: a genuine sealed entry whose BMI says 31.2 while its values give 24.7: everything
 *   verifies except the calculation (CALCULATION_MISMATCH);
 * - `hidden-field-holds-value`: a genuine entry where "Pregnant" holds a value for a male participant
 *   (VISIBILITY_MISMATCH);
 * - `form-definition-edited`: the valid bundle with its definition edited (BMI rounded to whole numbers): the
 *   definition no longer hashes to the sealed formSha256 (FORM_DEFINITION_MISMATCH).
 */
import { nodeCrypto as c, nodeSigner } from "../../../anchoring/adapters/crypto-node.ts";
import { toHex, utf8 } from "../../../anchoring/log/bytes.ts";
import { canonicalize } from "../../../anchoring/log/canonical.ts";
import { checkpointText, signNote, vkeyString } from "../../../anchoring/log/checkpoint.ts";
import { buildEntry } from "../../../anchoring/log/entry.ts";
import { type BatchHeader, type Envelope, envelopeLeaf, headerLeaf } from "../../../anchoring/log/envelope.ts";
import type { EntryKind } from "../../../anchoring/log/payloads.ts";
import { saltedTextHash } from "../../../anchoring/log/text-hash.ts";
import { MerkleLevels } from "../../../anchoring/log/tree.ts";
import type { Bundle } from "../../../anchoring/verifier/bundle.ts";
import type { TrustPolicy } from "../../../anchoring/verifier/trust-policy.ts";

export const FORMS_ORIGIN = "vectors.trialseal.test/forms-log";
const signer = nodeSigner(new Uint8Array(32).fill(1));
export const FORMS_POLICY: TrustPolicy = {
  format: "trialseal-trust/v1",
  origin: FORMS_ORIGIN,
  logKeys: [
    {
      vkey: vkeyString(c, FORMS_ORIGIN, signer.publicKey),
      fromSize: 0,
      untilSize: null,
      notBefore: null,
      notAfter: null,
    },
  ],
  ledgers: {},
  maxSkewMs: 300_000,
};

/** The form version the records were entered on: branching, classes, a calculation and a missing-data code. */
export const VITALS_V2 = {
  code: "VITALS",
  title: "Vital signs",
  version: 2,
  visits: ["SCREENING"],
  sections: [{ name: "body", title: "Body measurements" }],
  fields: [
    { name: "initials", label: "Initials", type: "text", class: "identifier", maxLength: 3 },
    {
      name: "sex",
      label: "Sex",
      type: "choice",
      required: true,
      options: [
        { value: "F", label: "Female" },
        { value: "M", label: "Male" },
      ],
    },
    { name: "pregnant", label: "Pregnant", type: "boolean", showIf: "[sex] = 'F'" },
    { name: "height", label: "Height", type: "number", unit: "cm", min: 50, max: 250, section: "body" },
    { name: "weight", label: "Weight", type: "number", unit: "kg", min: 2, max: 400, section: "body" },
    {
      name: "bmi",
      label: "BMI",
      type: "calc",
      expression: "[weight] / ([height] / 100) ^ 2",
      unit: "kg/m2",
      decimals: 1,
      section: "body",
    },
    { name: "sbp", label: "Systolic BP", type: "number", unit: "mm[Hg]", missingCodes: ["NOT_DONE", "UNK"] },
    { name: "notes", label: "Notes", type: "text" },
  ],
};
/** The definition as the portal stores it (`forms.definitionText`): its canonical JSON text. */
export const VITALS_V2_TEXT = canonicalize(VITALS_V2);
const FORM_SHA256 = toHex(c.sha256(utf8(VITALS_V2_TEXT)));
/** A definition that does not parse (BMI's expression is cut short), sealed as such in a log of its own. */
export const BROKEN_TEXT = canonicalize({
  ...VITALS_V2,
  fields: VITALS_V2.fields.map((f) => (f.name === "bmi" ? { ...f, expression: "[weight] / ([height] / 100" } : f)),
});
const BROKEN_SHA256 = toHex(c.sha256(utf8(BROKEN_TEXT)));

const ACTOR = "00000000-0000-4000-8000-0000000000aa";
const record = (n: number) => `00000000-0000-4000-8000-0000000001${String(n).padStart(2, "0")}`;
const salt = (i: number) => `F${String.fromCharCode(65 + i)}${"Q".repeat(20)}`;

/** A record.saved v3 entry's fields: clear values, identifier and free text hashed, the sealed calculated values. */
function recordFields(
  n: number,
  values: Record<string, unknown>,
  calculated: Record<string, number | null>,
  formSha256 = FORM_SHA256,
): (s: string) => Record<string, unknown> {
  return (s) => ({
    record: record(n),
    version: 1,
    subject: `VEC-2-00${n}`,
    form: "VITALS",
    formVersion: 2,
    formSha256,
    visit: "SCREENING",
    instance: 1,
    actor: ACTOR,
    reasonHash: null,
    values,
    hashed: { initials: saltedTextHash(c, s, "JD"), notes: saltedTextHash(c, s, "Measured after 10 min rest") },
    calculated,
    missing: { sbp: { code: "NOT_DONE", reasonHash: saltedTextHash(c, s, "Cuff not available") } },
    prev: null,
  });
}

type Spec = { kind: EntryKind; fields: Record<string, unknown> | ((s: string) => Record<string, unknown>) };
const SPECS: Spec[] = [
  { kind: "form.approved", fields: { form: "VITALS", version: 2, definitionSha256: FORM_SHA256, actor: ACTOR } },
  // 75.6 kg / (1.75 m)^2 = 24.69 -> 24.7
  { kind: "record.saved", fields: recordFields(1, { sex: "M", height: 175, weight: 75.6 }, { bmi: 24.7 }) },
  // Sealed by the log as any entry is, but its BMI is not what its values give.
  { kind: "record.saved", fields: recordFields(2, { sex: "M", height: 175, weight: 75.6 }, { bmi: 31.2 }) },
  // "Pregnant" is shown only when sex is F: a male participant's entry holds a value for it.
  {
    kind: "record.saved",
    fields: recordFields(3, { sex: "M", pregnant: false, height: 175, weight: 75.6 }, { bmi: 24.7 }),
  },
];

/** A log that sealed the broken definition: its approval and one record entered on it. */
const BROKEN_SPECS: Spec[] = [
  { kind: "form.approved", fields: { form: "VITALS", version: 2, definitionSha256: BROKEN_SHA256, actor: ACTOR } },
  {
    kind: "record.saved",
    fields: recordFields(4, { sex: "M", height: 175, weight: 75.6 }, { bmi: 24.7 }, BROKEN_SHA256),
  },
];

/** A forms log, one batch, and the bundle of each entry (record bundles carrying the form definition). */
function buildFormsLog(specs: Spec[] = SPECS, definition = VITALS_V2_TEXT): Bundle[] {
  const entries = specs.map((s, i) => {
    const built = buildEntry(c, s.kind, s.fields as never, salt(i));
    const envelope: Envelope = {
      v: 1,
      log: FORMS_ORIGIN,
      seq: i,
      studySeq: i,
      at: new Date(Date.UTC(2026, 3, 1, 9, 0, i)).toISOString(),
      study: "VEC-2",
      kind: s.kind,
      payloadHash: toHex(built.payloadHash),
    };
    return { payload: built.payload, envelope, leaf: envelopeLeaf(c, envelope).leaf };
  });
  const tree = MerkleLevels.fromLeaves(
    c,
    entries.map((e) => e.leaf),
  );
  const header: BatchHeader = {
    v: 1,
    log: FORMS_ORIGIN,
    batch: 0,
    first: 0,
    size: entries.length,
    root: toHex(tree.root()),
    sealedAt: new Date(Date.UTC(2026, 3, 1, 9, 1, 0)).toISOString(),
  };
  const log = new MerkleLevels(c);
  log.append(headerLeaf(c, header).leaf);
  const text = checkpointText({ origin: FORMS_ORIGIN, treeSize: 1, root: log.root() });
  const note = signNote(c, text, FORMS_ORIGIN, signer);
  return entries.map((e, i) => ({
    format: "trialseal-proof/v1",
    payload: e.payload as Record<string, unknown>,
    envelope: e.envelope as unknown as Record<string, unknown>,
    batch: {
      header: header as unknown as Record<string, unknown>,
      leafIndex: i,
      inclusion: tree.inclusionProof(i).map(toHex),
    },
    checkpoints: [{ note, log: { index: 0, treeSize: 1, inclusion: [] }, anchors: [] }],
    ...(e.envelope.kind === "record.saved" ? { form: { definition } } : {}),
  }));
}

type Want = { verdict: "valid" | "invalid"; code?: string };
export function formVectors(): Record<string, { desc: string; bundle: unknown; policy: TrustPolicy; want: Want }> {
  const [, valid, changed, hidden] = buildFormsLog();
  const withoutDefinition = structuredClone(valid);
  delete withoutDefinition.form;
  const changedWithout = structuredClone(changed);
  delete changedWithout.form;
  const [, broken] = buildFormsLog(BROKEN_SPECS, BROKEN_TEXT);
  const edited = structuredClone(valid);
  edited.form = { definition: VITALS_V2_TEXT.replace('"decimals":1', '"decimals":0') };
  const v = (desc: string, bundle: unknown, want: Want) => ({ desc, bundle, policy: FORMS_POLICY, want });
  return {
    "valid-calculation": v(
      "a record.saved v3 entry with its form definition: BMI 24.7 recomputed from height 175 cm and weight 75.6 kg",
      valid,
      { verdict: "valid" },
    ),
    "form-definition-removed": v(
      "the valid-calculation bundle with its form definition deleted: the payload seals formSha256, so it must fail",
      withoutDefinition,
      { verdict: "invalid", code: "FORM_DEFINITION_MISSING" },
    ),
    "calculation-changed-form-removed": v(
      "the calculation-changed bundle with its form definition deleted: still invalid, not 'not checked'",
      changedWithout,
      { verdict: "invalid", code: "FORM_DEFINITION_MISSING" },
    ),
    "form-definition-invalid": v(
      "a genuine sealed entry whose sealed form definition (hash matching) does not parse: BMI's expression cut short",
      broken,
      { verdict: "invalid", code: "FORM_DEFINITION_INVALID" },
    ),
    "calculation-changed": v(
      "a genuine sealed entry whose calculated BMI (31.2) is not what its values give (24.7)",
      changed,
      { verdict: "invalid", code: "CALCULATION_MISMATCH" },
    ),
    "hidden-field-holds-value": v(
      "a genuine sealed entry where Pregnant, shown only when sex is F, holds a value for sex M",
      hidden,
      { verdict: "invalid", code: "VISIBILITY_MISMATCH" },
    ),
    "form-definition-edited": v(
      "the valid-calculation bundle with its form definition edited (BMI rounded to whole numbers)",
      edited,
      { verdict: "invalid", code: "FORM_DEFINITION_MISMATCH" },
    ),
  };
}
