/**
 * Notifications through the outbox (issue 18, ADR 0035) on PGlite and PostgreSQL, delivered to a REAL SMTP server
 * this test starts (smtp-server on 127.0.0.1, port 0): what it received is asserted (recipient, subject, text).
 * The triggers (invitation, signature requested, re-consent needed), retries after a 451, a server that is down
 * (attempts and the error recorded, failed after N, "send again" delivers), SMS kept queued, no duplicates when two
 * passes run at once, and nothing sent without SMTP_URL.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SMTPServer } from "smtp-server";
import { simpleParser } from "mailparser";
import type { AddressInfo } from "node:net";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { confirmSignerContact } from "../helpers/signer-contact.ts";
import { waitFor } from "../helpers/wait.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { grantDelegation } from "../../app/studies/delegations.server.ts";
import { createApprovedConsentDocument, importForm } from "../../app/records/forms.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { saveRecord } from "../../app/records/records.server.ts";
import { createInvitation } from "../../app/consent/invitations.server.ts";
import { requestSignature } from "../../app/notifications/triggers.server.ts";
import { queueNotification } from "../../app/notifications/notify.server.ts";
import { listOutbox, NO_SMS_GATEWAY, sendAgain, sendDueOnce } from "../../app/notifications/outbox-sender.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";

const PW = "amber otter winter forty-two";
const BASE = "http://portal.test";
let t: TestDb;
const p: Record<string, Principal> = {};

interface Received {
  to: string;
  subject: string;
  text: string;
}
const received: Received[] = [];
/** Recipients whose next RCPT TO is refused with a 451 (then accepted). */
const refuseOnce = new Set<string>();
let server: SMTPServer;
let smtpUrl: string;

const inbox = (to: string) => received.filter((m) => m.to === to);
const sql = async (q: string) => t.database.execute(q);
const noBackoff = { backoffMs: () => 0 };

beforeAll(async () => {
  server = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    onRcptTo(address, _session, cb) {
      if (refuseOnce.delete(address.address)) {
        const err = Object.assign(new Error("mailbox busy, try again later"), { responseCode: 451 });
        return cb(err);
      }
      cb();
    },
    onData(stream, _session, cb) {
      simpleParser(stream)
        .then((mail) => {
          const to = Array.isArray(mail.to) ? mail.to.map((a) => a.text).join(", ") : (mail.to?.text ?? "");
          received.push({ to, subject: mail.subject ?? "", text: mail.text ?? "" });
          cb();
        })
        .catch(cb);
    },
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  smtpUrl = `smtp://127.0.0.1:${(server.server.address() as AddressInfo).port}`;

  t = await openTestDatabase();
  await createStudy(t.ctx, { code: "NOT-1", title: "Notifications", sites: [{ code: "S1", name: "One" }] }, null);
  for (const [k, role, site] of [
    ["inv", "investigator", "S1"],
    ["coord", "coordinator", "S1"],
    ["admin", "admin", undefined],
  ] as const) {
    const u = await createUser(
      t.ctx,
      {
        email: `${k}@not.test`,
        fullName: `${k} person`,
        password: PW,
        role,
        study: role === "admin" ? undefined : "NOT-1",
        site,
      },
      null,
    );
    p[k] = (await principalForUser(t.ctx, u.id))!;
  }
  await grantDelegation(t.ctx, p.inv, {
    study: "NOT-1",
    site: "S1",
    delegate: "coord@not.test",
    task: "data_entry",
    startsOn: "2026-01-01",
    training: [{ course: "GCP", completedOn: "2025-01-01", evidenceSha256: "ab".repeat(32) }],
  });
  await importForm(
    t.ctx,
    "NOT-1",
    {
      code: "VS",
      title: "Vital signs",
      version: 1,
      visits: ["V1"],
      fields: [{ name: "sbp", label: "SBP", type: "number", required: true }],
    },
    { actorId: null },
  );
  await createApprovedConsentDocument(
    t.ctx,
    "NOT-1",
    {
      code: "ICF",
      version: "1.0",
      title: "Informed consent form",
      bodyMarkdown: "# Consent\n\n## Purpose\nA test.\n",
      irbName: "Test IRB",
      irbApprovedOn: "2026-01-15",
    },
    null,
  );
});

afterAll(async () => {
  await t?.close();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

describe(`notifications through the outbox on ${engineUnderTest()}`, () => {
  it("without SMTP_URL nothing is sent and the outbox page says so", async () => {
    const { subjectCode } = await enrollParticipant(t.ctx, p.inv, {
      study: "NOT-1",
      site: "S1",
      personal: { fullName: "Dev Mailbox", email: "dev@example.org" },
    });
    await confirmSignerContact(t.ctx, "NOT-1", subjectCode);
    await createInvitation(t.ctx, p.inv, "NOT-1", { subject: subjectCode }, BASE);
    t.ctx.env.smtpUrl = undefined;
    expect(await sendDueOnce(t.ctx)).toEqual({ sent: 0, retrying: 0, failed: 0 });
    const page = await listOutbox(t.ctx, p.admin);
    expect(page.smtpConfigured).toBe(false);
    const m = page.messages.find((x) => x.to === "dev@example.org")!;
    expect(m).toMatchObject({ state: "queued", kind: "consent_invitation", attempts: 0 });
    expect(m.body).toContain("/consent/ci_"); // the development mailbox shows the text
    await expect(listOutbox(t.ctx, p.coord)).rejects.toMatchObject({ code: "forbidden" });
  });

  it("delivers an invitation, a signature request and re-consent notices to the SMTP server", async () => {
    t.ctx.env.smtpUrl = smtpUrl;
    const { subjectCode } = await enrollParticipant(t.ctx, p.inv, {
      study: "NOT-1",
      site: "S1",
      personal: { fullName: "Ada Quartey", email: "ada@example.org" },
    });
    await confirmSignerContact(t.ctx, "NOT-1", subjectCode);
    const inv = await createInvitation(t.ctx, p.inv, "NOT-1", { subject: subjectCode }, BASE);
    await giveCompleteConsent(t.ctx, "NOT-1", subjectCode); // consented to ICF 1.0 (on paper)
    const rec = await saveRecord(t.ctx, p.coord, "NOT-1", {
      subject: subjectCode,
      form: "VS",
      visit: "V1",
      data: { sbp: 120 },
    });
    const { notified } = await requestSignature(t.ctx, p.coord, "NOT-1", rec.id);
    expect(notified).toBeGreaterThanOrEqual(1);
    // A new version of the consent document: the participant who consented to 1.0 must re-consent.
    await createApprovedConsentDocument(
      t.ctx,
      "NOT-1",
      {
        code: "ICF",
        version: "1.1",
        title: "Informed consent form",
        bodyMarkdown: "# Consent\n\n## Purpose\nA test, amended.\n",
        irbName: "Test IRB",
        irbApprovedOn: "2026-03-01",
      },
      null,
    );
    const pass = await sendDueOnce(t.ctx);
    expect(pass.retrying + pass.failed).toBe(0);
    await waitFor(() => inbox("ada@example.org").length >= 2, { what: "the participant's two messages" });

    const invitation = inbox("ada@example.org").find((m) => /Invitation to review and sign/.test(m.subject))!;
    expect(invitation.text).toContain(inv.url);
    expect(inbox("dev@example.org")[0].text).toContain("/consent/ci_"); // queued earlier, sent now

    const [sig] = inbox("inv@not.test").filter((m) => /signature requested/.test(m.subject));
    expect(sig.subject).toBe(`NOT-1: signature requested for ${subjectCode}, VS visit V1`);
    expect(sig.text).toContain(`/studies/NOT-1/records/${rec.id}`);
    expect(sig.text).toContain("coord person asks you to review and sign");
    expect(inbox("coord@not.test").some((m) => /signature requested/.test(m.subject))).toBe(false);

    const reconsent = inbox("ada@example.org").find((m) => /needs your consent/.test(m.subject))!;
    expect(reconsent.subject).toBe('NOT-1: a new version of "Informed consent form" needs your consent');
    expect(reconsent.text).toContain("A new version (1.1)");
    const staff = inbox("coord@not.test").find((m) => /re-consent needed at site S1/.test(m.subject))!;
    expect(staff.text).toContain(subjectCode);
    expect(staff.text).not.toContain("Ada"); // subject codes only, no names
    // Sent rows are kept (never deleted), marked sent; the page lists them as sent.
    const [row] = await sql(
      "SELECT sent_at, attempts, last_error FROM outbox WHERE to_address = 'ada@example.org' " +
        "AND kind = 'reconsent_needed'",
    );
    expect(row.sent_at).not.toBeNull();
    expect(row.attempts).toBe(1);
    expect(row.last_error).toBeNull();
    // The audit trail names who requested the signature.
    const [ev] = await sql("SELECT actor_user_id FROM audit_events WHERE action = 'record.signature_requested'");
    expect(ev.actor_user_id).toBe(p.coord.userId);
  });

  it("a 451 from the server: the message is retried with the error in words, then delivered", async () => {
    t.ctx.env.smtpUrl = smtpUrl;
    refuseOnce.add("busy@not.test");
    await queueNotification(t.ctx.db, {
      studyId: null,
      kind: "import_finished",
      to: "busy@not.test",
      subject: "Import finished",
      body: "Your import of vitals.csv finished: 10 rows.",
    });
    expect(await sendDueOnce(t.ctx, noBackoff)).toMatchObject({ retrying: 1 });
    const [row] = await sql("SELECT attempts, last_error, sent_at FROM outbox WHERE to_address = 'busy@not.test'");
    expect(row.attempts).toBe(1);
    expect(row.last_error).toMatch(/refused the message: 451/);
    expect(row.sent_at).toBeNull();
    const page = await listOutbox(t.ctx, p.admin, { state: "retrying" });
    expect(page.messages.map((m) => m.to)).toContain("busy@not.test");
    expect(await sendDueOnce(t.ctx, noBackoff)).toMatchObject({ sent: 1 });
    expect(inbox("busy@not.test")).toEqual([
      { to: "busy@not.test", subject: "Import finished", text: "Your import of vitals.csv finished: 10 rows.\n" },
    ]);
  });

  it("a server that is down: attempts and error recorded, failed after N, 'send again' delivers once", async () => {
    const dead = new SMTPServer({ authOptional: true });
    await new Promise<void>((resolve) => dead.listen(0, "127.0.0.1", resolve));
    const deadPort = (dead.server.address() as AddressInfo).port;
    await new Promise<void>((resolve) => dead.close(() => resolve()));
    t.ctx.env.smtpUrl = `smtp://127.0.0.1:${deadPort}`;
    await queueNotification(t.ctx.db, {
      studyId: null,
      kind: "import_finished",
      to: "later@not.test",
      subject: "Down",
      body: "Sent once the server is back.",
    });
    const opts = { ...noBackoff, maxAttempts: 3 };
    expect(await sendDueOnce(t.ctx, opts)).toMatchObject({ retrying: 1 });
    expect(await sendDueOnce(t.ctx, opts)).toMatchObject({ retrying: 1 });
    expect(await sendDueOnce(t.ctx, opts)).toMatchObject({ failed: 1 });
    const [row] = await sql(
      "SELECT id, attempts, last_error, failed_at FROM outbox WHERE to_address = 'later@not.test'",
    );
    expect(row.attempts).toBe(3);
    expect(row.last_error).toMatch(/could not reach the mail server/);
    expect(row.failed_at).not.toBeNull();
    // Failed is final until someone asks: the server back, a pass sends nothing.
    t.ctx.env.smtpUrl = smtpUrl;
    expect(await sendDueOnce(t.ctx, opts)).toEqual({ sent: 0, retrying: 0, failed: 0 });
    const failed = await listOutbox(t.ctx, p.admin, { state: "failed" });
    expect(failed.messages.map((m) => m.id)).toEqual([row.id]);
    await expect(sendAgain(t.ctx, p.coord, row.id as string)).rejects.toMatchObject({ code: "forbidden" });
    await sendAgain(t.ctx, p.admin, row.id as string);
    expect(await sendDueOnce(t.ctx, opts)).toMatchObject({ sent: 1 });
    expect(inbox("later@not.test").map((m) => m.text)).toEqual(["Sent once the server is back.\n"]);
    await expect(sendAgain(t.ctx, p.admin, row.id as string)).rejects.toMatchObject({ code: "conflict" });
    const [ev] = await sql("SELECT actor_user_id FROM audit_events WHERE action = 'outbox.send_again'");
    expect(ev.actor_user_id).toBe(p.admin.userId);
  });

  it("SMS stays queued: no SMS gateway is configured", async () => {
    t.ctx.env.smtpUrl = smtpUrl;
    await queueNotification(t.ctx.db, {
      studyId: null,
      kind: "consent_invitation",
      channel: "sms",
      to: "+15550100",
      subject: "Invitation",
      body: "Open the link.",
    });
    await sendDueOnce(t.ctx);
    const page = await listOutbox(t.ctx, p.admin);
    expect(page.messages.find((m) => m.to === "+15550100")).toMatchObject({
      state: "not_sent_sms",
      lastError: NO_SMS_GATEWAY,
      attempts: 0,
    });
  });

  it("two passes at once deliver each message exactly once; nothing is lost", async () => {
    t.ctx.env.smtpUrl = smtpUrl;
    const to = Array.from({ length: 20 }, (_, i) => `many${i}@not.test`);
    for (const address of to)
      await queueNotification(t.ctx.db, {
        studyId: null,
        kind: "import_finished",
        to: address,
        subject: "x",
        body: "y",
      });
    const [a, b] = await Promise.all([sendDueOnce(t.ctx), sendDueOnce(t.ctx)]);
    expect(a.sent + b.sent).toBe(20);
    await waitFor(() => to.every((x) => inbox(x).length >= 1), { what: "every message received" });
    for (const x of to) expect(inbox(x), x).toHaveLength(1);
    const [left] = await sql("SELECT count(*)::int AS n FROM outbox WHERE channel = 'email' AND sent_at IS NULL");
    expect(left.n).toBe(0);
  });
});
