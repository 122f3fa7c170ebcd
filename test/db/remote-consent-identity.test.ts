/**
 * Issue 15 item 4 on PGlite and PostgreSQL (ADR 0018): one coordinator cannot fabricate a complete remote consent.
 * An invitation is refused until a different member of staff confirms the signer's contact (a representative's or
 * parent's by an investigator other than the inviter); what gets through is flagged: a contact equal to a staff
 * account's or another participant's (integrity audit and review page), a signature from the network of a staff
 * session within the hour, and a site with one member of staff.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { login, principalForUser } from "../../app/accounts/auth.server.ts";
import { grantDelegation } from "../../app/studies/delegations.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { addConsentDocument } from "../../app/records/forms.server.ts";
import { consentStatus } from "../../app/consent/status.server.ts";
import { countersignConsent } from "../../app/consent/countersigning.server.ts";
import { createInvitation } from "../../app/consent/invitations.server.ts";
import { sendIdentityCode, verifyIdentityCode } from "../../app/consent/identity-code.server.ts";
import { signConsent } from "../../app/consent/signing.server.ts";
import {
  confirmContact,
  registerRepresentative,
  signerContactsOf,
} from "../../app/consent/contact-confirmation.server.ts";
import { participantBySubject } from "../../app/participants/find-participant.server.ts";
import { runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import { studyReview } from "../../app/integrity-audit/review.server.ts";
import { getStudyOrThrow } from "../../app/studies/studies.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";

const PW = "amber otter winter forty-two";
const BASE = "http://portal.test";
const STAFF_IP = "198.51.100.7";
const DOC = "# Consent\n\n## Purpose\nWhy.\n";
let t: TestDb;
const p: Record<string, Principal> = {};

const outboxTo = async (to: string, kind: string) =>
  (
    await t.database.execute(
      `SELECT body FROM outbox WHERE to_address = '${to}' AND kind = '${kind}' ORDER BY created_at DESC LIMIT 1`,
    )
  ).map((r) => String(r.body))[0];
const codeFor = async (to: string) => /is (\d{6})\./.exec((await outboxTo(to, "consent_code")) ?? "")![1];

async function participant(subject: string) {
  const study = await getStudyOrThrow(t.ctx, "RC-1");
  return (await participantBySubject(t.ctx, study.id, subject))!;
}

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(
    t.ctx,
    {
      code: "RC-1",
      title: "Remote consent",
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
    ["nurse", "coordinator", "S1"],
    ["solo", "coordinator", "S2"],
    ["reg", "regulator", undefined],
  ] as const) {
    const u = await createUser(
      t.ctx,
      {
        email: `${k}@rc.test`,
        fullName: `${k} person`,
        password: PW,
        role,
        study: role === "admin" ? undefined : "RC-1",
        site,
      },
      null,
    );
    p[k] = (await principalForUser(t.ctx, u.id))!;
  }
  const training = [{ course: "GCP", completedOn: "2025-01-01", evidenceSha256: "ab".repeat(32) }];
  for (const task of ["consent", "enrollment"] as const) {
    await grantDelegation(t.ctx, p.inv, {
      study: "RC-1",
      site: "S1",
      delegate: "coord@rc.test",
      task,
      startsOn: "2026-01-01",
      training,
    });
    await grantDelegation(t.ctx, p.admin, {
      study: "RC-1",
      site: "S2",
      delegate: "solo@rc.test",
      task,
      startsOn: "2026-01-01",
      training,
    });
  }
  await addConsentDocument(t.ctx, p.admin, "RC-1", {
    code: "ICF",
    version: "1.0",
    title: "Consent",
    bodyMarkdown: DOC,
    irbName: "Test IRB",
    irbApprovedOn: "2026-01-01",
  });
}, 60_000);

afterAll(async () => {
  await t?.close();
});

describe(`remote consent identity on ${engineUnderTest()}`, () => {
  it("the issue's scenario: a coordinator's made-up representative is refused, then flagged", async () => {
    const subj = await enrollParticipant(t.ctx, p.coord, {
      study: "RC-1",
      site: "S1",
      personal: { fullName: "Ada Lovell", email: "ada@example.org" },
    });
    const lar = { signerRole: "lar", representativeName: "Made Up Person", representativeContact: "cc@example.net" };
    // Refused: nobody but the inviter has confirmed this representative or contact.
    await expect(
      createInvitation(t.ctx, p.coord, "RC-1", { subject: subj.subjectCode, ...lar }, BASE),
    ).rejects.toMatchObject({ code: "conflict", field: "representativeContact" });
    // The staff account's own address is refused outright.
    await expect(
      registerRepresentative(t.ctx, p.coord, "RC-1", subj.subjectCode, {
        role: "lar",
        name: "Made Up Person",
        contact: " COORD@rc.test ",
      }),
    ).rejects.toMatchObject({ code: "conflict", message: expect.stringMatching(/contact of a staff account/) });
    const rep = await registerRepresentative(t.ctx, p.coord, "RC-1", subj.subjectCode, {
      role: "lar",
      name: "Made Up Person",
      contact: "cc@example.net",
    });
    // The one who entered it cannot confirm it; a coordinator cannot confirm a representative; an investigator can.
    await expect(
      confirmContact(t.ctx, p.coord, "RC-1", subj.subjectCode, { contact: rep.id, method: "staff" }),
    ).rejects.toMatchObject({ code: "forbidden", message: expect.stringMatching(/you entered this contact/) });
    await expect(
      confirmContact(t.ctx, p.nurse, "RC-1", subj.subjectCode, { contact: rep.id, method: "staff" }),
    ).rejects.toMatchObject({ code: "forbidden", message: expect.stringMatching(/investigator/) });
    await confirmContact(t.ctx, p.inv, "RC-1", subj.subjectCode, { contact: rep.id, method: "staff" });
    // The investigator who confirmed cannot also invite; a different name is not the confirmed representative.
    await expect(
      createInvitation(t.ctx, p.inv, "RC-1", { subject: subj.subjectCode, ...lar }, BASE),
    ).rejects.toMatchObject({ code: "forbidden", message: expect.stringMatching(/you confirmed this contact/) });
    await expect(
      createInvitation(
        t.ctx,
        p.coord,
        "RC-1",
        { subject: subj.subjectCode, ...lar, representativeName: "Other" },
        BASE,
      ),
    ).rejects.toMatchObject({ code: "conflict" });
    // What gets through with a second person is flagged: signed from the network of the coordinator's session.
    await login(t.ctx, "coord@rc.test", PW, { ip: STAFF_IP, userAgent: "staff browser" });
    const inv = await createInvitation(t.ctx, p.coord, "RC-1", { subject: subj.subjectCode, ...lar }, BASE);
    await sendIdentityCode(t.ctx, inv.token);
    const meta = { ip: STAFF_IP, userAgent: "a browser without the staff cookie" };
    const verified = await verifyIdentityCode(t.ctx, inv.token, await codeFor("cc@example.net"), meta);
    await signConsent(
      t.ctx,
      inv.token,
      verified,
      { acknowledged: ["s1"], answers: {}, options: {}, typedName: "Made Up Person", confirm: true },
      { fromStaffDevice: false, meta },
    );
    await countersignConsent(t.ctx, p.coord, "RC-1", subj.subjectCode, { password: PW }, meta);
    expect((await consentStatus(t.ctx, subj.id)).state).toBe("consented");
    const review = await studyReview(t.ctx, p.reg, "RC-1");
    const mine = review.consentSignals.find((s) => s.subject === subj.subjectCode);
    expect(mine?.signals.map((s) => s.code)).toContain("staff_network");
    expect(mine?.signals.find((s) => s.code === "staff_network")?.message).toMatch(/coord person/);
    // Who entered and who confirmed are shown on the participant's page.
    const shown = await signerContactsOf(t.ctx, await participant(subj.subjectCode));
    expect(shown.find((c) => c.role === "lar")).toMatchObject({
      name: "Made Up Person",
      contact: "c***@e***.net",
      enteredBy: "coord person",
      confirmedBy: "inv person",
      method: "staff",
    });
  });

  it("a participant's contact entered by the inviter needs another member of staff or an in-person check", async () => {
    const subj = await enrollParticipant(t.ctx, p.coord, {
      study: "RC-1",
      site: "S1",
      personal: { fullName: "Bo Brand", phone: "+44 20 7946 0001" },
    });
    await expect(createInvitation(t.ctx, p.coord, "RC-1", { subject: subj.subjectCode }, BASE)).rejects.toMatchObject({
      code: "conflict",
      field: "subject",
      message: expect.stringMatching(/second member/),
    });
    await expect(confirmContact(t.ctx, p.coord, "RC-1", subj.subjectCode, { method: "staff" })).rejects.toMatchObject({
      code: "forbidden",
    });
    await expect(confirmContact(t.ctx, p.reg, "RC-1", subj.subjectCode, { method: "staff" })).rejects.toMatchObject({
      code: "forbidden",
    });
    // The coordinator met the participant at a visit: recorded, but then someone else must send the invitation.
    await confirmContact(t.ctx, p.coord, "RC-1", subj.subjectCode, { method: "in_person" });
    await expect(confirmContact(t.ctx, p.nurse, "RC-1", subj.subjectCode, { method: "staff" })).rejects.toMatchObject({
      code: "conflict",
    });
    await expect(createInvitation(t.ctx, p.coord, "RC-1", { subject: subj.subjectCode }, BASE)).rejects.toMatchObject({
      code: "forbidden",
      message: expect.stringMatching(/you confirmed this contact/),
    });
    const inv = await createInvitation(t.ctx, p.inv, "RC-1", { subject: subj.subjectCode }, BASE);
    expect(inv.channel).toBe("sms");
    const shown = await signerContactsOf(t.ctx, await participant(subj.subjectCode));
    expect(shown).toMatchObject([
      { role: "participant", enteredBy: "coord person", confirmedBy: "coord person", method: "in_person" },
    ]);
    // Each confirmation is a sealed entry naming who confirmed; no contact or HMAC reaches the ledger.
    const entries = await t.database.execute(
      "SELECT payload_text FROM ledger_entries " +
        "WHERE kind IN ('consent.contact_confirmed', 'consent.contact_registered')",
    );
    expect(entries.length).toBe(3);
    const hmacs = (await t.database.execute("SELECT encode(contact_hmac, 'hex') AS h FROM signer_contacts")).map((r) =>
      String(r.h),
    );
    const all = (await t.database.execute("SELECT payload_text FROM ledger_entries")).map((r) =>
      String(r.payload_text),
    );
    for (const h of hmacs) expect(all.some((x) => x.includes(h))).toBe(false);
    // (Patterns that hex digests cannot contain: a "+", a dot, a space.)
    expect(all.join("\n")).not.toMatch(/\+44|example\.net|Made Up/);
    expect(entries.map((e) => JSON.parse(String(e.payload_text)).actor)).toContain(p.coord.userId);
    // The confirmations match their sealed entries: nothing for the audit to report so far.
    const audit = await runIntegrityAudit(t.ctx, { study: "RC-1" });
    expect(audit.findings.filter((f) => f.severity === "tamper")).toEqual([]);
  });

  it("flags one contact for several participants, a staff account's contact, and a one-staff site", async () => {
    const enrol = (site: string, personal: Record<string, string>) =>
      enrollParticipant(t.ctx, p.inv.memberships.some((m) => m.siteCode === site) ? p.inv : p.solo, {
        study: "RC-1",
        site,
        personal: { fullName: "Some One", ...personal },
      });
    const c = await enrol("S1", { email: " Shared@Example.org" });
    const d = await enrol("S1", { email: "shared@example.org" });
    const e = await enrol("S1", { email: "nurse@rc.test" });
    const f = await enrol("S2", { phone: "+44 (20) 7946-0002" });
    const g = await enrol("S1", { phone: "+442079460002" });
    // A staff account's contact cannot be confirmed; the audit and the review page report it anyway.
    await expect(confirmContact(t.ctx, p.coord, "RC-1", e.subjectCode, { method: "staff" })).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringMatching(/nurse person/),
    });
    const report = await runIntegrityAudit(t.ctx, { study: "RC-1" });
    const codes = (code: string) =>
      report.findings.filter((x) => x.code === code).map((x) => x.message.match(/S\d-\d{3}/)![0]);
    expect(codes("CONTACT_OF_STAFF")).toEqual([e.subjectCode]);
    expect(report.findings.find((x) => x.code === "CONTACT_OF_STAFF")?.severity).toBe("tamper");
    expect(report.clean).toBe(false);
    expect(new Set(codes("CONTACT_SHARED"))).toEqual(
      new Set([c.subjectCode, d.subjectCode, f.subjectCode, g.subjectCode]),
    );
    const review = await studyReview(t.ctx, p.reg, "RC-1");
    const flags = (s: string) => review.consentSignals.find((x) => x.subject === s)?.signals.map((x) => x.code) ?? [];
    expect(flags(e.subjectCode)).toContain("contact_of_staff");
    expect(flags(c.subjectCode)).toContain("contact_shared");
    expect(flags(g.subjectCode)).toContain("contact_shared");
    expect(review.singleStaffSites.map((s) => s.site)).toEqual(["S2"]);
    // The one-staff site is not refused: its coordinator enrols; alone they cannot complete a remote consent.
    await confirmContact(t.ctx, p.solo, "RC-1", f.subjectCode, { method: "in_person" });
    await expect(createInvitation(t.ctx, p.solo, "RC-1", { subject: f.subjectCode }, BASE)).rejects.toMatchObject({
      code: "forbidden",
    });
  });
});
