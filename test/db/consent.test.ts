/**
 * eConsent on PGlite and PostgreSQL: invitation -> one-time code -> signing -> countersignature -> withdrawal,
 * and every refusal (expired, reused, superseded or locked invitation, wrong code, name mismatch, unanswered
 * section) gets a clear message and stores nothing wrong. No personal data reaches a ledger payload.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { grantDelegation } from "../../app/studies/delegations.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { addConsentDocument, importForm } from "../../app/records/forms.server.ts";
import { saveRecord } from "../../app/records/records.server.ts";
import { consentReceipt, publicConsent } from "../../app/consent/receipt.server.ts";
import { consentStatus } from "../../app/consent/status.server.ts";
import { countersignConsent } from "../../app/consent/countersigning.server.ts";
import { createInvitation } from "../../app/consent/invitations.server.ts";
import { openInvitation } from "../../app/consent/invitation-state.server.ts";
import { recordWithdrawal, withdrawByParticipant } from "../../app/consent/withdrawal.server.ts";
import { sendIdentityCode, verifyIdentityCode } from "../../app/consent/identity-code.server.ts";
import { signConsent, type SignInput } from "../../app/consent/signing.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { confirmSignerContact } from "../helpers/signer-contact.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";

const PW = "amber otter winter forty-two";
const meta = { ip: "127.0.0.1", userAgent: "test" };
const BASE = "http://portal.test";
const DOC =
  `# Consent\n\n## Purpose\nWhy.\n\n## Your choices\nYou may leave.\n\n` +
  `[question:yes] Can you leave at any time?\n\n## Optional\n` +
  `[optional:future_research] Samples for future research.\n`;
let t: TestDb;
const p: Record<string, Principal> = {};

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(
    t.ctx,
    {
      code: "ICF-1",
      title: "Consent study",
      sites: [
        { code: "S1", name: "1" },
        { code: "S2", name: "2" },
      ],
    },
    null,
  );
  for (const [k, role, site] of [
    ["admin", "admin", undefined],
    ["inv", "investigator", "S1"],
    ["coord", "coordinator", "S1"],
    ["coord2", "coordinator", "S2"],
    ["mon", "monitor", undefined],
  ] as const) {
    const u = await createUser(
      t.ctx,
      {
        email: `${k}@icf.test`,
        fullName: `${k} person`,
        password: PW,
        role,
        study: role === "admin" ? undefined : "ICF-1",
        site,
      },
      null,
    );
    p[k] = (await principalForUser(t.ctx, u.id))!;
  }
  await addConsentDocument(t.ctx, p.admin, "ICF-1", {
    code: "ICF",
    version: "1.0",
    title: "Consent",
    bodyMarkdown: DOC,
    irbName: "Test IRB",
    irbApprovedOn: "2026-01-01",
  });
  await importForm(
    t.ctx,
    "ICF-1",
    {
      code: "VITALS",
      title: "Vitals",
      version: 1,
      visits: ["SCREENING", "WEEK4"],
      fields: [{ name: "sbp", label: "SBP", type: "number", integer: true, min: 50, max: 250 }],
    },
    { actorId: null },
  );
});
afterAll(async () => {
  await t?.close();
});

const outboxTo = async (to: string, kind: string) =>
  (
    await t.database.execute(
      `SELECT body FROM outbox WHERE to_address = '${to}' AND kind = '${kind}' ORDER BY created_at DESC LIMIT 1`,
    )
  ).map((r) => String(r.body))[0];
const codeFor = async (to: string) => /is (\d{6})\./.exec((await outboxTo(to, "consent_code")) ?? "")![1];
const count = async (table: string) =>
  Number((await t.database.execute(`SELECT count(*)::int AS n FROM ${table}`))[0].n);
const goodInput = (name: string): SignInput => ({
  acknowledged: ["s1", "s2", "s3"],
  answers: { q1: "yes" },
  options: { future_research: "no" },
  typedName: name,
  confirm: true,
});

/** Enrol, then a colleague confirms the contact (ADR 0018: a second member of staff, before any invitation). */
async function enrol(name: string, email: string, site = "S1") {
  const e = await enrollParticipant(t.ctx, p.inv, { study: "ICF-1", site, personal: { fullName: name, email } });
  await confirmSignerContact(t.ctx, "ICF-1", e.subjectCode);
  return e;
}

describe(`eConsent on ${engineUnderTest()}`, () => {
  it(
    "invites, checks identity with a one-time code, signs, countersigns, seals, and withdraws partially; " +
      "no personal data in the log",
    async () => {
      const subj = await enrol("Wilhelmina Oyelaran-Bright", "wob@example.org");
      // Only delegated site staff (or the site's investigator) may invite.
      await expect(
        createInvitation(t.ctx, p.coord, "ICF-1", { subject: subj.subjectCode }, BASE),
      ).rejects.toMatchObject({
        code: "forbidden",
        message: expect.stringMatching(/consent at this site has not been delegated/),
      });
      await expect(createInvitation(t.ctx, p.mon, "ICF-1", { subject: subj.subjectCode }, BASE)).rejects.toMatchObject({
        code: "forbidden",
      });
      await grantDelegation(t.ctx, p.inv, {
        study: "ICF-1",
        site: "S1",
        delegate: "coord@icf.test",
        task: "consent",
        startsOn: "2026-01-01",
        training: [{ course: "eConsent", completedOn: "2025-01-01", evidenceSha256: "ab".repeat(32) }],
      });
      const inv = await createInvitation(t.ctx, p.coord, "ICF-1", { subject: subj.subjectCode }, BASE);
      expect(inv.url).toMatch(/^http:\/\/portal\.test\/consent\/ci_[A-Za-z0-9_-]{43}$/);
      expect(inv.sentTo).toBe("w***@e***.org");
      expect(await outboxTo("wob@example.org", "consent_invitation")).toContain(inv.url);
      const token = inv.token;

      // No signing before the identity check; a wrong code counts down; the right one verifies.
      await expect(
        signConsent(t.ctx, token, null, goodInput("Wilhelmina Oyelaran-Bright"), { fromStaffDevice: false, meta }),
      ).rejects.toMatchObject({ code: "unauthenticated" });
      await expect(verifyIdentityCode(t.ctx, token, "123456", meta)).rejects.toMatchObject({
        message: "Ask for a code first.",
      });
      await sendIdentityCode(t.ctx, token);
      const code = await codeFor("wob@example.org");
      const wrong = code === "000000" ? "111111" : "000000";
      await expect(verifyIdentityCode(t.ctx, token, wrong, meta)).rejects.toMatchObject({
        field: "code",
        message: "That code is not correct. 4 attempts left.",
      });
      const verified = await verifyIdentityCode(t.ctx, token, code, meta);

      // Every refusal stores nothing: unread section, wrong comprehension answer, unanswered optional item,
      // name mismatch, unconfirmed meaning.
      const before = await count("consent_signatures");
      const cases: [Partial<SignInput>, string][] = [
        [{ acknowledged: ["s1", "s2"] }, "ack-s3"],
        [{ answers: { q1: "no" } }, "answer-q1"],
        [{ options: {} }, "option-future_research"],
        [{ typedName: "Wilhelmina Bright" }, "typedName"],
        [{ confirm: false }, "confirm"],
      ];
      for (const [change, field] of cases) {
        await expect(
          signConsent(
            t.ctx,
            token,
            verified,
            { ...goodInput("Wilhelmina Oyelaran-Bright"), ...change },
            { fromStaffDevice: false, meta },
          ),
        ).rejects.toMatchObject({ code: "invalid", field });
      }
      expect(await count("consent_signatures")).toBe(before);
      expect((await openInvitation(t.ctx, token))!.state).toBe("open");

      // Case and spacing of the typed name do not matter.
      const signed = await signConsent(
        t.ctx,
        token,
        verified,
        { ...goodInput("  wilhelmina   oyelaran-bright "), options: { future_research: "yes" } },
        { fromStaffDevice: false, meta },
      );
      // Single use: the invitation cannot sign twice.
      await expect(
        signConsent(t.ctx, token, verified, goodInput("Wilhelmina Oyelaran-Bright"), { fromStaffDevice: false, meta }),
      ).rejects.toMatchObject({ code: "conflict", message: "This invitation has already been used to sign." });
      expect((await openInvitation(t.ctx, token))!.state).toBe("used");
      let status = await consentStatus(t.ctx, subj.id);
      expect(status.state).toBe("awaiting_countersign");
      expect(status.signatures[0]).toMatchObject({
        role: "participant",
        options: { future_research: true },
        fromStaffDevice: false,
      });

      // Countersignature by the person obtaining consent, re-authenticated, with an impartial witness.
      await expect(
        countersignConsent(t.ctx, p.coord, "ICF-1", subj.subjectCode, { password: "wrong password here" }, meta),
      ).rejects.toMatchObject({ field: "password" });
      await expect(
        countersignConsent(t.ctx, p.coord2, "ICF-1", subj.subjectCode, { password: PW }, meta),
      ).rejects.toMatchObject({ code: "forbidden" });
      await countersignConsent(
        t.ctx,
        p.coord,
        "ICF-1",
        subj.subjectCode,
        { password: PW, witnessName: "Imogen Witness" },
        meta,
      );
      await expect(
        countersignConsent(t.ctx, p.coord, "ICF-1", subj.subjectCode, { password: PW }, meta),
      ).rejects.toMatchObject({ code: "conflict" });
      status = await consentStatus(t.ctx, subj.id, { withNames: true });
      expect(status.state).toBe("consented");
      expect(status.signatures.map((s) => [s.role, s.printedName])).toEqual([
        ["participant", "wilhelmina   oyelaran-bright"],
        ["staff", "coord person"],
        ["witness", "Imogen Witness"],
      ]);

      // Sealed: the receipt and the public page follow the entry's status; the public page shows no personal data.
      await sealAll(t.ctx);
      const receipt = await consentReceipt(t.ctx, (await openInvitation(t.ctx, token))!, BASE);
      expect(receipt.signatures.map((s) => [s.role, s.seal.status])).toEqual([
        ["participant", "sealed"],
        ["staff", "sealed"],
        ["witness", "sealed"],
      ]);
      expect(receipt.verifyUrl).toBe(`${BASE}/c/${signed.publicToken}`);
      const pub = await publicConsent(t.ctx, signed.publicToken);
      expect(pub!.document).toMatchObject({ code: "ICF", version: "1.0", irbName: "Test IRB" });
      expect(pub!.signatures.map((s) => s.role)).toEqual(["participant", "staff", "witness"]);
      expect(JSON.stringify(pub)).not.toMatch(/Wilhelmina|Oyelaran|wob@|Imogen|coord person/i);
      expect(await publicConsent(t.ctx, `cv_${"A".repeat(43)}`)).toBeNull();

      // Partial withdrawal through the link: follow-up continues, the optional item is withdrawn; data entry goes on.
      await expect(
        withdrawByParticipant(t.ctx, token, null, { scope: "partial", followUp: true }),
      ).rejects.toMatchObject({ code: "unauthenticated" });
      await expect(
        withdrawByParticipant(t.ctx, token, verified, { scope: "partial", followUp: false }),
      ).rejects.toMatchObject({ field: "scope" });
      await expect(
        withdrawByParticipant(t.ctx, token, verified, {
          scope: "partial",
          followUp: true,
          optionalWithdrawn: ["nope"],
        }),
      ).rejects.toMatchObject({ field: "optionalWithdrawn" });
      await withdrawByParticipant(t.ctx, token, verified, {
        scope: "partial",
        followUp: true,
        optionalWithdrawn: ["future_research"],
        reason: "I moved away",
      });
      status = await consentStatus(t.ctx, subj.id);
      expect(status.state).toBe("partially_withdrawn");
      await saveRecord(t.ctx, p.inv, "ICF-1", {
        subject: subj.subjectCode,
        form: "VITALS",
        visit: "SCREENING",
        data: { sbp: 120 },
      });

      const payloads = (
        await t.database.execute(`SELECT kind, payload_text FROM ledger_entries WHERE kind LIKE 'consent.%'`)
      ).map((r) => ({ kind: String(r.kind), p: JSON.parse(String(r.payload_text)) }));
      expect(payloads.map((x) => x.kind).sort()).toEqual([
        "consent.contact_confirmed",
        "consent.signed",
        "consent.signed",
        "consent.signed",
        "consent.withdrawn",
      ]);
      const signedPayload = payloads.find((x) => x.p.signerRole === "participant")!.p;
      expect(signedPayload).toMatchObject({
        subject: subj.subjectCode,
        document: "ICF",
        version: "1.0",
        options: { future_research: true },
        fromStaffDevice: false,
        countersigns: null,
      });
      expect(signedPayload.nameHmac).toMatch(/^[0-9a-f]{64}$/);
      const all = (await t.database.execute(`SELECT payload_text FROM ledger_entries`))
        .map((r) => String(r.payload_text))
        .join("\n");
      for (const s of ["Wilhelmina", "Oyelaran", "wob@example", "Imogen", "moved away"])
        expect(all.toLowerCase()).not.toContain(s.toLowerCase());
    },
  );

  it(
    "refuses expired, superseded, locked and foreign invitations with clear messages; " +
      "a full withdrawal stops new data",
    async () => {
      const subj = await enrol("Bartholomew Nkemelu", "bn@example.org");
      // Expired.
      const a = await createInvitation(t.ctx, p.coord, "ICF-1", { subject: subj.subjectCode, expiresInHours: 1 }, BASE);
      await t.database.execute(
        `UPDATE consent_invitations SET expires_at = now() - interval '1 minute' WHERE id = '${a.id}'`,
      );
      expect((await openInvitation(t.ctx, a.token))!).toMatchObject({
        state: "expired",
        message: expect.stringMatching(/^This invitation expired on .* Please ask the study team for a new one\.$/),
      });
      await expect(sendIdentityCode(t.ctx, a.token)).rejects.toMatchObject({
        code: "conflict",
        message: expect.stringMatching(/expired/),
      });
      // A newer invitation supersedes the older open one.
      const b = await createInvitation(t.ctx, p.coord, "ICF-1", { subject: subj.subjectCode }, BASE);
      const c = await createInvitation(t.ctx, p.coord, "ICF-1", { subject: subj.subjectCode }, BASE);
      expect((await openInvitation(t.ctx, b.token))!.state).toBe("revoked");
      // Five wrong codes lock the invitation.
      await sendIdentityCode(t.ctx, c.token);
      const right = await codeFor("bn@example.org");
      const wrong = right === "000000" ? "111111" : "000000";
      for (let i = 0; i < 4; i++)
        await expect(verifyIdentityCode(t.ctx, c.token, wrong, meta)).rejects.toMatchObject({ code: "invalid" });
      await expect(verifyIdentityCode(t.ctx, c.token, wrong, meta)).rejects.toMatchObject({ code: "locked" });
      await expect(verifyIdentityCode(t.ctx, c.token, right, meta)).rejects.toMatchObject({
        message: expect.stringMatching(/Too many wrong codes/),
      });
      expect((await openInvitation(t.ctx, c.token))!.state).toBe("locked");
      expect(await openInvitation(t.ctx, `ci_${"x".repeat(43)}`)).toBeNull();
      expect(await openInvitation(t.ctx, "garbage")).toBeNull();
      // Invitation input errors name the field; a participant without contact details cannot be invited.
      await expect(
        createInvitation(t.ctx, p.coord, "ICF-1", { subject: subj.subjectCode, signerRole: "lar" }, BASE),
      ).rejects.toMatchObject({ field: "representativeName" });
      await expect(
        createInvitation(t.ctx, p.coord, "ICF-1", { subject: subj.subjectCode, assent: true }, BASE),
      ).rejects.toMatchObject({ field: "assent" });
      const anon = await enrollParticipant(t.ctx, p.inv, { study: "ICF-1", site: "S1" });
      await expect(
        createInvitation(t.ctx, p.coord, "ICF-1", { subject: anon.subjectCode }, BASE),
      ).rejects.toMatchObject({
        field: "subject",
        message: expect.stringMatching(/without a full name/),
      });

      // Staff record a full withdrawal: no new records; earlier ones are kept.
      const d = await createInvitation(t.ctx, p.coord, "ICF-1", { subject: subj.subjectCode }, BASE);
      await sendIdentityCode(t.ctx, d.token);
      const v = await verifyIdentityCode(t.ctx, d.token, await codeFor("bn@example.org"), meta);
      await signConsent(t.ctx, d.token, v, goodInput("Bartholomew Nkemelu"), { fromStaffDevice: true, meta });
      expect((await consentStatus(t.ctx, subj.id)).signatures[0].fromStaffDevice).toBe(true);
      // No CRF data before the consent is complete (ADR 0021): countersigned first.
      await expect(
        saveRecord(t.ctx, p.inv, "ICF-1", {
          subject: subj.subjectCode,
          form: "VITALS",
          visit: "SCREENING",
          data: { sbp: 130 },
        }),
      ).rejects.toMatchObject({
        code: "conflict",
        message: expect.stringMatching(
          new RegExp(`^subject ${subj.subjectCode}'s consent is awaiting countersignature`),
        ),
      });
      await countersignConsent(t.ctx, p.coord, "ICF-1", subj.subjectCode, { password: PW }, meta);
      await saveRecord(t.ctx, p.inv, "ICF-1", {
        subject: subj.subjectCode,
        form: "VITALS",
        visit: "SCREENING",
        data: { sbp: 130 },
      });
      await expect(
        recordWithdrawal(t.ctx, p.coord2, "ICF-1", subj.subjectCode, { scope: "full" }),
      ).rejects.toMatchObject({ code: "forbidden" });
      await recordWithdrawal(t.ctx, p.coord, "ICF-1", subj.subjectCode, {
        scope: "full",
        reason: "told the coordinator by phone",
      });
      await expect(
        saveRecord(t.ctx, p.inv, "ICF-1", {
          subject: subj.subjectCode,
          form: "VITALS",
          visit: "WEEK4",
          data: { sbp: 125 },
        }),
      ).rejects.toMatchObject({
        code: "conflict",
        message: expect.stringMatching(/withdrew consent .* no new data may be collected/),
      });
      expect(
        Number(
          (
            await t.database.execute(
              `SELECT count(*)::int AS n FROM records r JOIN participants p ON p.id = r.participant_id ` +
                `WHERE p.subject_code = '${subj.subjectCode}'`,
            )
          )[0].n,
        ),
      ).toBe(1);
      await expect(
        recordWithdrawal(t.ctx, p.coord, "ICF-1", subj.subjectCode, { scope: "full" }),
      ).rejects.toMatchObject({
        code: "conflict",
      });
      await expect(
        createInvitation(t.ctx, p.coord, "ICF-1", { subject: subj.subjectCode }, BASE),
      ).rejects.toMatchObject({
        message: expect.stringMatching(/withdrawn consent fully/),
      });
    },
  );

  it(
    "a new approved version flags consented participants for re-consent " +
      "and supersedes open invitations for the old one",
    async () => {
      const subj = await enrol("Ottoline Varga", "ov@example.org");
      const a = await createInvitation(t.ctx, p.coord, "ICF-1", { subject: subj.subjectCode }, BASE);
      await sendIdentityCode(t.ctx, a.token);
      const v = await verifyIdentityCode(t.ctx, a.token, await codeFor("ov@example.org"), meta);
      await signConsent(t.ctx, a.token, v, goodInput("Ottoline Varga"), { fromStaffDevice: false, meta });
      const other = await enrol("Ferdinand Ashgrove", "fa@example.org");
      const open = await createInvitation(t.ctx, p.coord, "ICF-1", { subject: other.subjectCode }, BASE);

      await addConsentDocument(t.ctx, p.admin, "ICF-1", {
        code: "ICF",
        version: "2.0",
        title: "Consent",
        bodyMarkdown: DOC.replace("Why.", "Why, revised."),
        irbName: "Test IRB",
        irbApprovedOn: "2026-02-01",
      });
      expect((await consentStatus(t.ctx, subj.id)).state).toBe("reconsent_needed");
      expect((await consentStatus(t.ctx, subj.id)).summary).toBe("re-consent needed: signed 1.0, current 2.0");
      expect((await openInvitation(t.ctx, open.token))!).toMatchObject({
        state: "superseded",
        message: expect.stringMatching(/version 1\.0 .* replaced by version 2\.0/),
      });
      await expect(
        signConsent(t.ctx, open.token, null, goodInput("Ferdinand Ashgrove"), { fromStaffDevice: false, meta }),
      ).rejects.toMatchObject({ code: "conflict" });

      // Re-consent on the new version clears the flag once countersigned.
      const r = await createInvitation(t.ctx, p.coord, "ICF-1", { subject: subj.subjectCode }, BASE);
      expect(r.document).toEqual({ code: "ICF", version: "2.0" });
      await sendIdentityCode(t.ctx, r.token);
      const v2 = await verifyIdentityCode(t.ctx, r.token, await codeFor("ov@example.org"), meta);
      await signConsent(t.ctx, r.token, v2, goodInput("Ottoline Varga"), { fromStaffDevice: false, meta });
      await countersignConsent(t.ctx, p.coord, "ICF-1", subj.subjectCode, { password: PW }, meta);
      expect((await consentStatus(t.ctx, subj.id)).summary).toBe("consented ICF 2.0");
    },
  );

  it(
    "the public page of a consent shows a partial, then a full withdrawal (dates and what was withdrawn), " +
      "the signatures as they were, and no names, contact data or reasons",
    async () => {
      const subj = await enrol("Casimir Thorvaldsen", "ct@example.org");
      const inv = await createInvitation(t.ctx, p.coord, "ICF-1", { subject: subj.subjectCode }, BASE);
      await sendIdentityCode(t.ctx, inv.token);
      const v = await verifyIdentityCode(t.ctx, inv.token, await codeFor("ct@example.org"), meta);
      const signed = await signConsent(
        t.ctx,
        inv.token,
        v,
        { ...goodInput("Casimir Thorvaldsen"), options: { future_research: "yes" } },
        { fromStaffDevice: false, meta },
      );
      await countersignConsent(t.ctx, p.coord, "ICF-1", subj.subjectCode, { password: PW }, meta);
      await sealAll(t.ctx);
      const given = (await publicConsent(t.ctx, signed.publicToken))!;
      expect(given.status).toBe("given");
      expect(given.withdrawals).toEqual([]);

      // Partial: the study treatment stops, follow-up continues, the optional item is withdrawn.
      await withdrawByParticipant(t.ctx, inv.token, v, {
        scope: "partial",
        followUp: true,
        optionalWithdrawn: ["future_research"],
        reason: "a private family matter",
      });
      const partly = (await publicConsent(t.ctx, signed.publicToken))!;
      expect(partly.status).toBe("partially_withdrawn");
      expect(partly.withdrawals).toEqual([
        {
          scope: "partial",
          at: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/),
          followUp: true,
          optionalWithdrawn: ["future_research"],
          entryId: expect.any(String),
          seal: expect.objectContaining({ status: "pending" }),
        },
      ]);
      // The signatures stay what they were: signed, sealed.
      expect(partly.signatures.map((s) => [s.role, s.seal.status])).toEqual([
        ["participant", "sealed"],
        ["staff", "sealed"],
      ]);

      // Full, recorded by the site: the headline status is withdrawn; both withdrawals are listed, oldest first.
      await recordWithdrawal(t.ctx, p.coord, "ICF-1", subj.subjectCode, {
        scope: "full",
        reason: "told the nurse on +44 20 7946 0000",
      });
      await sealAll(t.ctx);
      const full = (await publicConsent(t.ctx, signed.publicToken))!;
      expect(full.status).toBe("withdrawn");
      expect(full.withdrawals.map((w) => [w.scope, w.followUp, w.optionalWithdrawn, w.seal.status])).toEqual([
        ["partial", true, ["future_research"], "sealed"],
        ["full", false, [], "sealed"],
      ]);
      expect(full.withdrawals[1].at >= full.withdrawals[0].at).toBe(true);
      expect(full.signatures.map((s) => [s.role, s.meaning, s.seal.status])).toEqual([
        ["participant", "I agree to take part in this study", "sealed"],
        ["staff", "I obtained this consent and answered the participant's questions", "sealed"],
      ]);
      const text = JSON.stringify(full).toLowerCase();
      for (const s of ["Casimir", "Thorvaldsen", "ct@example", "family matter", "7946", "coord person", "reason"])
        expect(text).not.toContain(s.toLowerCase());
      expect(text).not.toContain(subj.subjectCode.toLowerCase());
    },
  );

  it(
    "a parent signs with the minor's assent; the representative's name must match; " + "documents must have sections",
    async () => {
      const subj = await enrol("Pip Halvorsen", "pip@example.org");
      await confirmSignerContact(t.ctx, "ICF-1", subj.subjectCode, {
        role: "parent",
        name: "Ragna Halvorsen",
        contact: "+47 22 00 00 00",
        enteredBy: p.coord,
      });
      const inv = await createInvitation(
        t.ctx,
        p.coord,
        "ICF-1",
        {
          subject: subj.subjectCode,
          signerRole: "parent",
          representativeName: "Ragna Halvorsen",
          representativeContact: "+47 22 00 00 00",
          assent: true,
        },
        BASE,
      );
      expect(inv.channel).toBe("sms");
      await sendIdentityCode(t.ctx, inv.token);
      const v = await verifyIdentityCode(t.ctx, inv.token, await codeFor("+47 22 00 00 00"), meta);
      await expect(
        signConsent(t.ctx, inv.token, v, goodInput("Pip Halvorsen"), { fromStaffDevice: false, meta }),
      ).rejects.toMatchObject({ field: "typedName" });
      await expect(
        signConsent(
          t.ctx,
          inv.token,
          v,
          { ...goodInput("Ragna Halvorsen"), assentName: "Someone Else", assentConfirm: true },
          { fromStaffDevice: false, meta },
        ),
      ).rejects.toMatchObject({ field: "assentName" });
      await signConsent(
        t.ctx,
        inv.token,
        v,
        { ...goodInput("Ragna Halvorsen"), assentName: "Pip Halvorsen", assentConfirm: true },
        { fromStaffDevice: false, meta },
      );
      const s = await consentStatus(t.ctx, subj.id, { withNames: true });
      expect(s.signatures.map((x) => [x.role, x.printedName, x.primary])).toEqual([
        ["parent", "Ragna Halvorsen", true],
        ["assent", "Pip Halvorsen", false],
      ]);
      await expect(
        addConsentDocument(t.ctx, p.admin, "ICF-1", {
          code: "ICF2",
          version: "1",
          title: "No sections",
          bodyMarkdown: "Just a paragraph of text without any section.",
          irbName: "IRB",
          irbApprovedOn: "2026-01-01",
        }),
      ).rejects.toMatchObject({ field: "bodyMarkdown", message: expect.stringMatching(/at least one `## section`/) });
      await expect(
        addConsentDocument(t.ctx, p.admin, "ICF-1", {
          code: "ICF2",
          version: "1",
          title: "Bad",
          bodyMarkdown: "## A\n\n[question:maybe] Is this fine?",
          irbName: "IRB",
          irbApprovedOn: "2026-01-01",
        }),
      ).rejects.toMatchObject({ message: expect.stringMatching(/line 3: a question's answer must be yes or no/) });
    },
  );
});
