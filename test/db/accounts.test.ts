/**
 * Account hardening on PGlite and PostgreSQL: password rules, lockout with back-off, idle timeout, TOTP
 * enrolment and sign-in (attempt limit, no replay, session rotation), password change and reset through the
 * outbox, session list and revoke.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateTOTP } from "@epic-web/totp";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import {
  beginTotpEnrolment,
  changePassword,
  completeMfa,
  confirmTotpEnrolment,
  listSessions,
  login,
  requestPasswordReset,
  resetPassword,
  revokeOwnSession,
  sessionPrincipal,
} from "../../app/accounts/auth.server.ts";
import { checkPasswordRules } from "../../app/accounts/passwords.server.ts";
import { PAIR_RULE, backoffSeconds } from "../../app/accounts/sign-in-throttle.server.ts";

const meta = { ip: "127.0.0.1", userAgent: "vitest" };
const PW = "amber otter winter forty-two";
let t: TestDb;
beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(t.ctx, { code: "ACC-1", title: "Accounts", sites: [{ code: "A", name: "A" }] }, null);
  await createUser(
    t.ctx,
    { email: "coord@acc.test", fullName: "Coord", password: PW, role: "coordinator", study: "ACC-1", site: "A" },
    null,
  );
  await createUser(
    t.ctx,
    { email: "inv@acc.test", fullName: "Inv", password: PW, role: "investigator", study: "ACC-1", site: "A" },
    null,
  );
  await createUser(
    t.ctx,
    { email: "lock@acc.test", fullName: "Lock", password: PW, role: "monitor", study: "ACC-1" },
    null,
  );
});
afterAll(async () => {
  await t?.close();
});

const code = async (secret: string) => (await generateTOTP({ secret, period: 30, digits: 6, algorithm: "SHA-1" })).otp;
const sql = (q: string) => t.database.execute(q);

describe(`accounts on ${engineUnderTest()}`, () => {
  it("password rules: length, breached/common passwords, repeated characters, the email name", () => {
    const rule = (p: string, email?: string) => {
      try {
        checkPasswordRules(p, email);
        return "ok";
      } catch (e) {
        return (e as Error).message;
      }
    };
    expect(rule("short")).toMatch(/at least 12/);
    expect(rule("x".repeat(129))).toMatch(/at most 128/);
    expect(rule("Password1234")).toMatch(/too common/);
    expect(rule("correct horse battery staple")).toMatch(/too common/);
    expect(rule("abababababab")).toMatch(/repeated/);
    expect(rule("jane.doe-is-my-password", "jane.doe@site.org")).toMatch(/email name/);
    expect(rule("  spaces and ünïcødé are fine  ")).toBe("ok");
  });

  it(
    "repeated wrong passwords slow that source down with growing back-off (even the right password waits), " +
      "never lock the account (ADR 0022); a reset clears the back-off",
    async () => {
      expect(backoffSeconds(PAIR_RULE, PAIR_RULE.free - 1)).toBe(0);
      expect(backoffSeconds(PAIR_RULE, PAIR_RULE.free)).toBe(30);
      expect(backoffSeconds(PAIR_RULE, PAIR_RULE.free + 1)).toBe(60);
      expect(backoffSeconds(PAIR_RULE, 100)).toBe(15 * 60);
      for (let i = 0; i < PAIR_RULE.free; i++)
        await expect(login(t.ctx, "lock@acc.test", "wrong password here", meta)).rejects.toMatchObject({
          code: "unauthenticated",
        });
      await expect(login(t.ctx, "lock@acc.test", PW, meta)).rejects.toMatchObject({
        code: "rate_limited",
        message: expect.stringMatching(/wait \d+ s/),
      });
      const [u] = await sql(`SELECT failed_logins, locked_at FROM users WHERE email = 'lock@acc.test'`);
      expect(u).toMatchObject({ failed_logins: PAIR_RULE.free, locked_at: null });
      // The reset link arrives through the outbox; it unlocks the account and works once only.
      await requestPasswordReset(t.ctx, "lock@acc.test", "http://portal.test", meta);
      await requestPasswordReset(t.ctx, "nobody@acc.test", "http://portal.test", meta); // silently nothing
      const mails = await sql(`SELECT to_address, body FROM outbox WHERE kind = 'password_reset'`);
      expect(mails.map((m) => m.to_address)).toEqual(["lock@acc.test"]);
      const token = /reset-password\/(\S+)/.exec(String(mails[0].body))![1];
      await expect(resetPassword(t.ctx, token, "short", meta)).rejects.toMatchObject({ field: "password" });
      await resetPassword(t.ctx, token, "a brand new passphrase 7", meta);
      await expect(resetPassword(t.ctx, token, "another new passphrase 8", meta)).rejects.toMatchObject({
        field: "token",
      });
      expect((await login(t.ctx, "lock@acc.test", "a brand new passphrase 7", meta)).stage).toBe("full");
      // Only the token's hash is stored.
      const stored = await sql(`SELECT encode(token_hash, 'hex') AS h FROM password_resets`);
      expect(stored.every((r) => !String(r.h).includes(Buffer.from(token).toString("hex")))).toBe(true);
    },
  );

  it("ends sessions idle for longer than SESSION_IDLE_MINUTES", async () => {
    const { token } = await login(t.ctx, "coord@acc.test", PW, meta);
    expect(await sessionPrincipal(t.ctx, token)).not.toBeNull();
    await sql(
      `UPDATE sessions SET last_seen_at = now() - interval ` +
        `'${t.ctx.env.sessionIdleMs / 60_000 + 1} minutes' WHERE revoked_at IS NULL`,
    );
    expect(await sessionPrincipal(t.ctx, token)).toBeNull();
  });

  it(
    "an investigator must enrol TOTP; then every sign-in needs a fresh code (limited attempts, no replay) " +
      "and rotates the session",
    async () => {
      const first = await login(t.ctx, "inv@acc.test", PW, meta);
      expect(first.stage).toBe("enroll");
      expect(await sessionPrincipal(t.ctx, first.token)).toBeNull(); // nothing else is allowed yet
      const { secret, uri } = await beginTotpEnrolment(t.ctx, first.token);
      expect(uri).toMatch(/^otpauth:\/\/totp\/TrialSeal:inv%40acc\.test\?.*secret=/);
      const [enc] = await sql(`SELECT encode(totp_secret_enc, 'escape') AS s FROM users WHERE email = 'inv@acc.test'`);
      expect(String(enc.s)).not.toContain(secret); // stored encrypted
      await expect(confirmTotpEnrolment(t.ctx, first.token, "000000", meta)).rejects.toMatchObject({ field: "code" });
      const enrolled = await confirmTotpEnrolment(t.ctx, first.token, await code(secret), meta);
      expect(enrolled).not.toBe(first.token);
      expect(await sessionPrincipal(t.ctx, first.token)).toBeNull(); // the pre-enrolment session is gone
      expect((await sessionPrincipal(t.ctx, enrolled))?.email).toBe("inv@acc.test");

      const second = await login(t.ctx, "inv@acc.test", PW, meta);
      expect(second.stage).toBe("mfa");
      expect(await sessionPrincipal(t.ctx, second.token)).toBeNull();
      // The code used for enrolment cannot be replayed within its window.
      await expect(completeMfa(t.ctx, second.token, await code(secret), meta)).rejects.toMatchObject({ field: "code" });
      // As if the code had not been used yet.
      await sql(`UPDATE users SET totp_last_step = totp_last_step - 2 WHERE email = 'inv@acc.test'`);
      const full = await completeMfa(t.ctx, second.token, await code(secret), meta);
      expect((await sessionPrincipal(t.ctx, full))?.email).toBe("inv@acc.test");
      expect(await sessionPrincipal(t.ctx, second.token)).toBeNull();

      const third = await login(t.ctx, "inv@acc.test", PW, meta);
      for (let i = 1; i < 5; i++)
        await expect(completeMfa(t.ctx, third.token, "123456", meta)).rejects.toMatchObject({ field: "code" });
      // The fifth wrong code in a row locks the account (ADR 0022); even the right code is refused then.
      await expect(completeMfa(t.ctx, third.token, "123456", meta)).rejects.toMatchObject({
        code: "locked",
        message: /locked after too many wrong verification codes/,
      });
      await expect(completeMfa(t.ctx, third.token, await code(secret), meta)).rejects.toMatchObject({
        code: "unauthenticated",
      });
      const events = await sql(
        `SELECT action, outcome FROM audit_events WHERE action LIKE 'login.mfa' OR action = 'mfa.enrol' ORDER BY id`,
      );
      expect(events.filter((e) => e.action === "mfa.enrol")).toHaveLength(1);
      expect(events.filter((e) => e.action === "login.mfa" && e.outcome === "failure").length).toBeGreaterThanOrEqual(
        5,
      );
    },
  );

  it(
    "changing the password needs the current one and signs out the other sessions; " +
      "sessions can be listed and revoked",
    async () => {
      const a = await login(t.ctx, "coord@acc.test", PW, meta);
      const b = await login(t.ctx, "coord@acc.test", PW, { ip: "10.0.0.2", userAgent: "other device" });
      const pa = (await sessionPrincipal(t.ctx, a.token))!;
      const listed = await listSessions(t.ctx, pa.userId!);
      expect(listed.map((s) => s.userAgent).sort()).toEqual(["other device", "vitest"]);
      await expect(
        changePassword(t.ctx, a.token, "not the password", "another fine passphrase", meta),
      ).rejects.toMatchObject({ field: "current" });
      await expect(changePassword(t.ctx, a.token, PW, "short", meta)).rejects.toMatchObject({ field: "password" });
      await changePassword(t.ctx, a.token, PW, "another fine passphrase", meta);
      expect(await sessionPrincipal(t.ctx, a.token)).not.toBeNull();
      expect(await sessionPrincipal(t.ctx, b.token)).toBeNull();
      await expect(login(t.ctx, "coord@acc.test", PW, meta)).rejects.toMatchObject({ code: "unauthenticated" });
      const c = await login(t.ctx, "coord@acc.test", "another fine passphrase", meta);
      const sc = (await sessionPrincipal(t.ctx, c.token))!;
      await revokeOwnSession(t.ctx, pa.userId!, sc.sessionId, meta);
      expect(await sessionPrincipal(t.ctx, c.token)).toBeNull();
      // Someone else's session id is not yours to revoke.
      const inv = (
        await sql(`SELECT id FROM sessions WHERE user_id = (SELECT id FROM users WHERE email = 'inv@acc.test') LIMIT 1`)
      )[0];
      await expect(revokeOwnSession(t.ctx, pa.userId!, String(inv.id), meta)).rejects.toMatchObject({
        code: "not_found",
      });
    },
  );
});
