/**
 * The participant's signing lists every problem at once (issue 17): on a phone, fixing one thing per tap of Sign,
 * each time with the message far above the button, is how participants give up. Nothing is stored while any remain.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { grantDelegation } from "../../app/studies/delegations.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { addConsentDocument } from "../../app/records/forms.server.ts";
import { createInvitation } from "../../app/consent/invitations.server.ts";
import { sendIdentityCode, verifyIdentityCode } from "../../app/consent/identity-code.server.ts";
import { signConsent } from "../../app/consent/signing.server.ts";
import { confirmSignerContact } from "../helpers/signer-contact.ts";

const PW = "amber otter winter forty-two";
const meta = { ip: "127.0.0.1", userAgent: "test" };
const DOC =
  `# Consent\n\n## Purpose\nWhy.\n\n## Your choices\nYou may leave.\n\n` +
  `[question:yes] Can you leave at any time?\n\n## Optional\n` +
  `[optional:future_research] Samples for future research.\n`;
let t: TestDb;

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(t.ctx, { code: "ICF-P", title: "Consent study", sites: [{ code: "S1", name: "1" }] }, null);
  const principals: Record<string, Awaited<ReturnType<typeof principalForUser>>> = {};
  for (const [k, role, site] of [
    ["admin", "admin", undefined],
    ["inv", "investigator", "S1"],
    ["coord", "coordinator", "S1"],
  ] as const) {
    const u = await createUser(
      t.ctx,
      {
        email: `${k}@icfp.test`,
        fullName: `${k} person`,
        password: PW,
        role,
        study: role === "admin" ? undefined : "ICF-P",
        site,
      },
      null,
    );
    principals[k] = await principalForUser(t.ctx, u.id);
  }
  await addConsentDocument(t.ctx, principals.admin!, "ICF-P", {
    code: "ICF",
    version: "1.0",
    title: "Consent",
    bodyMarkdown: DOC,
    irbName: "Test IRB",
    irbApprovedOn: "2026-01-01",
  });
  await grantDelegation(t.ctx, principals.inv!, {
    study: "ICF-P",
    site: "S1",
    delegate: "coord@icfp.test",
    task: "consent",
    startsOn: "2026-01-01",
    training: [{ course: "eConsent", completedOn: "2025-01-01", evidenceSha256: "ab".repeat(32) }],
  });
  const e = await enrollParticipant(t.ctx, principals.inv!, {
    study: "ICF-P",
    site: "S1",
    personal: { fullName: "Ada Okonkwo", email: "ada@example.org" },
  });
  await confirmSignerContact(t.ctx, "ICF-P", e.subjectCode);
  const inv = await createInvitation(t.ctx, principals.coord!, "ICF-P", { subject: e.subjectCode }, "http://x.test");
  token = inv.token;
});
afterAll(async () => {
  await t?.close();
});
let token = "";

describe(`consent signing on ${engineUnderTest()}`, () => {
  it("names every problem of a signing at once, in the document's order, and stores nothing", async () => {
    await sendIdentityCode(t.ctx, token);
    const [row] = await t.database.execute(
      "SELECT body FROM outbox WHERE to_address = 'ada@example.org' AND kind = 'consent_code' LIMIT 1",
    );
    const verified = await verifyIdentityCode(t.ctx, token, /is (\d{6})\./.exec(String(row.body))![1], meta);
    const refusal = signConsent(
      t.ctx,
      token,
      verified,
      { acknowledged: ["s2"], answers: { q1: "no" }, options: {}, typedName: "Someone Else", confirm: false },
      { fromStaffDevice: false, meta },
    );
    await expect(refusal).rejects.toMatchObject({
      code: "invalid",
      field: "ack-s1",
      message: 'Please confirm that you have read the section "Purpose".',
      problems: [
        { field: "ack-s1", message: 'Please confirm that you have read the section "Purpose".' },
        { field: "ack-s3", message: 'Please confirm that you have read the section "Optional".' },
        {
          field: "answer-q1",
          message:
            'Your answer to "Can you leave at any time?" does not match the document. Please read that section ' +
            "again, or ask the study team.",
        },
        { field: "option-future_research", message: 'Please choose yes or no for: "Samples for future research."' },
        {
          field: "typedName",
          message:
            "The name you typed does not match the name the study team recorded. Type your full name as it " +
            "appears on your records, or ask the study team.",
        },
        { field: "confirm", message: "Please confirm that typing your name is your electronic signature." },
      ],
    });
    const [n] = await t.database.execute("SELECT count(*)::int AS n FROM consent_signatures");
    expect(Number(n.n)).toBe(0);
    // Fixed, it signs.
    await signConsent(
      t.ctx,
      token,
      verified,
      {
        acknowledged: ["s1", "s2", "s3"],
        answers: { q1: "yes" },
        options: { future_research: "no" },
        typedName: "Ada Okonkwo",
        confirm: true,
      },
      { fromStaffDevice: false, meta },
    );
    const [m] = await t.database.execute("SELECT count(*)::int AS n FROM consent_signatures");
    expect(Number(m.n)).toBeGreaterThan(0);
  });
});
