/**
 * Sign-in throttling and lockout (ADR 0022, issue 16 items 2, 3 and 7) on PGlite and PostgreSQL, driving the
 * services with 40 parallel wrong passwords / codes: every attempt is counted in SQL before it is checked (exact
 * counts, no lost updates), the answers do not tell unknown, wrong and locked accounts apart, a stranger cannot
 * lock anyone out at the password step, and wrong second-factor codes across sign-ins lock the account and tell
 * the user and the admins at once. Also the participant's one-time code and the API's per-token rate limit.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateTOTP } from "@epic-web/totp";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import {
  beginTotpEnrolment,
  completeMfa,
  confirmTotpEnrolment,
  login,
  principalForUser,
  requestPasswordReset,
  resetPassword,
} from "../../app/accounts/auth.server.ts";
import { COMMANDS } from "../../app/platform/commands.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { addConsentDocument } from "../../app/records/forms.server.ts";
import { tokenHash } from "../../app/accounts/secret-tokens.server.ts";
import { consentInvitations } from "../../db/schema/index.ts";
import { sendIdentityCode, verifyIdentityCode } from "../../app/consent/identity-code.server.ts";
import * as api from "../../app/platform/api.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";

const PW = "amber otter winter forty-two";
const N = 40;
/** The policy of ADR 0022: free password attempts per account and source; wrong codes that lock. */
const FREE_PER_SOURCE = 5;
const MFA_LOCK = 5;
const from = (ip: string) => ({ ip, userAgent: "vitest" });
let t: TestDb;
const p: Record<string, Principal> = {};

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(t.ctx, { code: "THR-1", title: "Throttling", sites: [{ code: "A", name: "A" }] }, null);
  for (const [k, role] of [
    ["admin", "admin"],
    ["mon", "monitor"],
    ["mon2", "monitor"],
    ["mon3", "monitor"],
    ["inv", "investigator"],
    ["reg", "regulator"],
  ] as const) {
    const u = await createUser(
      t.ctx,
      {
        email: `${k}@thr.test`,
        fullName: k,
        password: PW,
        role,
        study: role === "admin" ? undefined : "THR-1",
        site: role === "investigator" ? "A" : undefined,
      },
      null,
    );
    p[k] = (await principalForUser(t.ctx, u.id))!;
  }
});
afterAll(async () => {
  await t?.close();
});

const sql = (q: string) => t.database.execute(q);
const one = async (q: string) => (await sql(q))[0];
const code = async (secret: string) => (await generateTOTP({ secret, period: 30, digits: 6, algorithm: "SHA-1" })).otp;
/** How each of a batch of attempts ended: "ok", or the refusal's code and message. */
async function outcomes(attempts: Promise<unknown>[]) {
  const r = await Promise.allSettled(attempts);
  return r.map((x) =>
    x.status === "fulfilled" ? "ok" : `${(x.reason as { code?: string }).code}: ${(x.reason as Error).message}`,
  );
}
function tally(xs: string[]) {
  const m: Record<string, number> = {};
  for (const x of xs) m[x] = (m[x] ?? 0) + 1;
  return m;
}

describe(`sign-in throttling and lockout on ${engineUnderTest()}`, () => {
  it("40 parallel wrong passwords from one source: exactly 5 are checked and counted, the rest wait", async () => {
    const r = await outcomes(
      Array.from({ length: N }, () => login(t.ctx, "mon@thr.test", "wrong guess 1", from("10.0.0.1"))),
    );
    const checked = r.filter((x) => x.startsWith("unauthenticated")).length;
    const throttled = r.filter((x) => x.startsWith("rate_limited")).length;
    expect({ checked, throttled }).toEqual({ checked: FREE_PER_SOURCE, throttled: N - FREE_PER_SOURCE });
    expect(await one(`SELECT failed_logins, locked_at FROM users WHERE email = 'mon@thr.test'`)).toEqual({
      failed_logins: FREE_PER_SOURCE,
      locked_at: null,
    });
    const audited = await one(
      `SELECT count(*)::int AS n FROM audit_events a JOIN users u ON u.id = a.actor_user_id
       WHERE u.email = 'mon@thr.test' AND a.action = 'login' AND a.detail->>'reason' = 'bad_password'`,
    );
    expect(audited.n).toBe(FREE_PER_SOURCE);
    // Waiting does not help the guesser: the right password from that source is refused too, unchecked ...
    await expect(login(t.ctx, "mon@thr.test", PW, from("10.0.0.1"))).rejects.toMatchObject({ code: "rate_limited" });
    // ... while the owner, from anywhere else, signs in at once (no lockout a stranger can trigger).
    expect((await login(t.ctx, "mon@thr.test", PW, from("192.0.2.7"))).stage).toBe("full");
    expect((await one(`SELECT failed_logins FROM users WHERE email = 'mon@thr.test'`)).failed_logins).toBe(0);
  });

  it("40 parallel wrong passwords from 40 sources: every one is counted (no lost update)", async () => {
    const r = await outcomes(
      Array.from({ length: N }, (_, i) => login(t.ctx, "mon2@thr.test", "wrong guess 2", from(`10.1.0.${i + 1}`))),
    );
    expect(tally(r)).toEqual({ [r[0]]: N });
    expect(r[0]).toMatch(/^unauthenticated: /);
    expect((await one(`SELECT failed_logins FROM users WHERE email = 'mon2@thr.test'`)).failed_logins).toBe(N);
    // The count warns the user and the admins (once, at the threshold); the account still works.
    const alerts = await sql(`SELECT to_address FROM outbox WHERE kind = 'sign_in_alert' ORDER BY to_address`);
    expect(alerts.map((a) => a.to_address)).toEqual(["admin@thr.test", "mon2@thr.test"]);
    expect((await login(t.ctx, "mon2@thr.test", PW, from("10.1.0.1"))).stage).toBe("full");
  });

  it("the answers are the same for an unknown e-mail, a wrong password and a locked account", async () => {
    // Sequentially, so the positions line up.
    const seq = async (email: string, password: string, ip: string) => {
      const out: string[] = [];
      for (let i = 0; i < 8; i++) out.push(...(await outcomes([login(t.ctx, email, password, from(ip))])));
      return out;
    };
    const unknown = await seq("nobody@thr.test", "wrong guess 3", "10.2.0.1");
    const wrong = await seq("mon3@thr.test", "wrong guess 3", "10.2.0.2");
    expect(wrong).toEqual(unknown);
    expect(unknown.slice(0, FREE_PER_SOURCE).every((x) => x === unknown[0])).toBe(true);
    expect(unknown[0]).toMatch(/^unauthenticated: /);
    expect(unknown[FREE_PER_SOURCE]).toMatch(/^rate_limited: /);
    // A (hard-)locked account, even with its right password, answers like an unknown e-mail.
    await sql(`UPDATE users SET locked_at = now() WHERE email = 'mon3@thr.test'`);
    const locked = await seq("mon3@thr.test", PW, "10.2.0.3");
    expect(locked).toEqual(unknown);
    await COMMANDS["users.unlock"](t.ctx, { email: "mon3@thr.test" }, {});
    expect((await login(t.ctx, "mon3@thr.test", PW, from("10.2.0.3"))).stage).toBe("full");
  });

  it(
    "wrong second-factor codes across sign-ins lock the account (exactly 5 checked of 3 x 40), notify the user " +
      "and the admins once, and only an admin's unlock or a password reset lifts it",
    async () => {
      const first = await login(t.ctx, "inv@thr.test", PW, from("10.3.0.1"));
      const { secret } = await beginTotpEnrolment(t.ctx, first.token);
      await confirmTotpEnrolment(t.ctx, first.token, await code(secret), from("10.3.0.1"));
      const results: string[] = [];
      for (let round = 0; round < 3; round++) {
        const s = await login(t.ctx, "inv@thr.test", PW, from("10.3.0.1")).catch((e: Error) => e);
        if (s instanceof Error) {
          results.push(`signin: ${(s as { code?: string }).code}`);
          continue;
        }
        expect(s.stage).toBe("mfa");
        const wrong = (i: number) => String((i * 7919 + round * 13) % 1_000_000).padStart(6, "0");
        results.push(
          ...(await outcomes(
            Array.from({ length: N }, (_, i) => completeMfa(t.ctx, s.token, wrong(i), from("10.3.0.1"))),
          )),
        );
      }
      const checked = await one(
        `SELECT count(*)::int AS n FROM audit_events a JOIN users u ON u.id = a.actor_user_id
         WHERE u.email = 'inv@thr.test' AND a.action = 'login.mfa' AND a.outcome = 'failure'
           AND coalesce(a.detail->>'reason', '') <> 'locked'`,
      );
      expect(checked.n).toBe(MFA_LOCK);
      expect(results.filter((x) => x === "ok")).toEqual([]);
      const u = await one(`SELECT locked_at IS NOT NULL AS locked FROM users WHERE email = 'inv@thr.test'`);
      expect(u.locked).toBe(true);
      // Told at once: the user and every platform admin, one mail each; one audit event.
      const mails = await sql(`SELECT to_address, body FROM outbox WHERE kind = 'account_locked' ORDER BY to_address`);
      expect(mails.map((m) => m.to_address)).toEqual(["admin@thr.test", "inv@thr.test"]);
      expect(String(mails[0].body)).toMatch(/inv@thr\.test was locked/);
      expect((await one(`SELECT count(*)::int AS n FROM audit_events WHERE action = 'account.lock'`)).n).toBe(1);
      // Locked: no live session left, the right password answers like a wrong one, a right code is refused.
      expect(
        (
          await one(`SELECT count(*)::int AS n FROM sessions s JOIN users u ON u.id = s.user_id
        WHERE u.email = 'inv@thr.test' AND s.revoked_at IS NULL`)
        ).n,
      ).toBe(0);
      await expect(login(t.ctx, "inv@thr.test", PW, from("10.3.0.9"))).rejects.toMatchObject({
        code: "unauthenticated",
      });
      expect(await principalForUser(t.ctx, p.inv.userId!)).toBeNull();
      // An admin unlocks (CLI `trialseal users unlock`): the owner signs in with a fresh code.
      const out = await COMMANDS["users.unlock"](t.ctx, { email: "inv@thr.test" }, {});
      expect(out.stdout).toBe("unlocked inv@thr.test\n");
      const again = await login(t.ctx, "inv@thr.test", PW, from("10.3.0.9"));
      await sql(`UPDATE users SET totp_last_step = NULL WHERE email = 'inv@thr.test'`);
      await completeMfa(t.ctx, again.token, await code(secret), from("10.3.0.9"));
      expect(await principalForUser(t.ctx, p.inv.userId!)).not.toBeNull();
    },
  );

  it("a password reset lifts the second-factor lock", async () => {
    const first = await login(t.ctx, "reg@thr.test", PW, from("10.4.0.1"));
    const { secret } = await beginTotpEnrolment(t.ctx, first.token);
    await confirmTotpEnrolment(t.ctx, first.token, await code(secret), from("10.4.0.1"));
    const s = await login(t.ctx, "reg@thr.test", PW, from("10.4.0.1"));
    const r = await outcomes(Array.from({ length: N }, () => completeMfa(t.ctx, s.token, "000001", from("10.4.0.1"))));
    expect(r.filter((x) => x.startsWith("invalid")).length).toBe(MFA_LOCK - 1);
    expect((await one(`SELECT locked_at IS NOT NULL AS l FROM users WHERE email = 'reg@thr.test'`)).l).toBe(true);
    await requestPasswordReset(t.ctx, "reg@thr.test", "http://portal.test", from("10.4.0.1"));
    const [mail] = await sql(`SELECT body FROM outbox WHERE kind = 'password_reset' AND to_address = 'reg@thr.test'`);
    const token = /reset-password\/(\S+)/.exec(String(mail.body))![1];
    await resetPassword(t.ctx, token, "a brand new passphrase 9", from("10.4.0.1"));
    const l = await one(`SELECT locked_at, mfa_failures FROM users WHERE email = 'reg@thr.test'`);
    expect(l).toEqual({ locked_at: null, mfa_failures: 0 });
    expect((await login(t.ctx, "reg@thr.test", "a brand new passphrase 9", from("10.4.0.1"))).stage).toBe("mfa");
  });

  it("40 parallel wrong one-time codes for a consent invitation: exactly 5 are checked", async () => {
    await addConsentDocument(t.ctx, p.admin, "THR-1", {
      code: "ICF",
      version: "1.0",
      title: "Consent",
      bodyMarkdown: "# Consent\n\n## Purpose\nWhy.\n",
      irbName: "Test IRB",
      irbApprovedOn: "2026-01-01",
    });
    const inv = (await principalForUser(t.ctx, p.inv.userId!))!;
    const subj = await enrollParticipant(t.ctx, inv, {
      study: "THR-1",
      site: "A",
      personal: { fullName: "Xanthe Quillfeather", email: "xq@example.org" },
    });
    // The invitation row as createInvitation writes it (its staff-side checks are not the subject here).
    const invitation = { token: `ci_${"x".repeat(43)}` };
    const [ids] = await sql(
      `SELECT s.id AS study, p.id AS participant, d.id AS document FROM studies s
       JOIN participants p ON p.study_id = s.id AND p.subject_code = '${subj.subjectCode}'
       JOIN consent_documents d ON d.study_id = s.id WHERE s.code = 'THR-1'`,
    );
    await t.ctx.db.insert(consentInvitations).values({
      studyId: String(ids.study),
      participantId: String(ids.participant),
      documentId: String(ids.document),
      channel: "email",
      tokenHash: tokenHash(t.ctx.crypto, invitation.token),
      createdBy: inv.userId,
      expiresAt: new Date(Date.now() + 3600_000),
    });
    await sendIdentityCode(t.ctx, invitation.token);
    const [mail] = await sql(
      `SELECT subject FROM outbox WHERE kind = 'consent_code' AND to_address = 'xq@example.org'`,
    );
    const right = /(\d{6})/.exec(String(mail.subject))![1];
    const wrong = right === "000000" ? "111111" : "000000";
    const r = await outcomes(
      Array.from({ length: N }, () => verifyIdentityCode(t.ctx, invitation.token, wrong, from("10.5.0.1"))),
    );
    const checked = await one(
      `SELECT count(*)::int AS n FROM audit_events WHERE action = 'consent.code_check' AND outcome = 'failure'`,
    );
    expect(checked.n).toBe(5);
    expect(r.filter((x) => x.startsWith("invalid")).length).toBe(4);
    const row = await one(`SELECT otp_failures, verified_at FROM consent_invitations`);
    expect(row).toEqual({ otp_failures: 5, verified_at: null });
    await expect(verifyIdentityCode(t.ctx, invitation.token, right, from("10.5.0.1"))).rejects.toBeTruthy();
  });

  it("the API's per-token rate limit lives in the database: a parallel burst takes exactly the bucket", async () => {
    const principal: Principal = { ...p.mon, kind: "token", token: { id: crypto.randomUUID(), name: "thr" } };
    const perSecond = 3;
    const limit = api.rateLimited as unknown as (...a: unknown[]) => Promise<Response | null> | Response | null;
    const r = await Promise.all(Array.from({ length: N }, () => limit(t.ctx, principal, perSecond)));
    expect(r.filter((x) => x === null).length).toBe(2 * perSecond);
    const refused = r.find((x) => x !== null)!;
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toMatch(/^\d+$/);
    const [bucket] = await sql(`SELECT key FROM api_rate_buckets`);
    expect(bucket.key).toBe(`token:${principal.token!.id}`);
  });
});
