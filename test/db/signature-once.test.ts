/**
 * One signature per member of staff, version and meaning (issue 17), on PGlite and PostgreSQL: a second signature
 * of the same version with the same meaning by the same person is refused in plain words (409), by the service and
 * by the database (a unique index, so two at once cannot both land); another meaning, another signer, or a new
 * version after a correction can still be signed; casebook signing skips and reports what is already signed.
 */
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import postgres from "postgres";
import { generateTOTP } from "@epic-web/totp";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { waitFor } from "../helpers/wait.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { beginTotpEnrolment, confirmTotpEnrolment, login, principalForUser } from "../../app/accounts/auth.server.ts";
import { grantDelegation } from "../../app/studies/delegations.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { correctRecord, saveRecord } from "../../app/records/records.server.ts";
import { signCasebook, signRecord, signaturesOf } from "../../app/clinical-monitoring/clinical-monitoring.server.ts";
import { MIGRATIONS_DIR } from "../../db/client.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";

const PW = "cobalt heron autumn fifty-one";
const meta = { ip: null, userAgent: null };
const STUDY = "SIG-1";
let t: TestDb;
const p: Record<string, Principal> = {};
const secrets: Record<string, string> = {};
let subject: string;
let vs: string;
let lab: string;

async function enrolTotp(email: string) {
  const { token } = await login(t.ctx, email, PW, meta);
  const secret = (await beginTotpEnrolment(t.ctx, token)).secret;
  await confirmTotpEnrolment(t.ctx, token, await totp(secret), meta);
  return secret;
}
async function totp(secret: string) {
  return (await generateTOTP({ secret, period: 30, digits: 6, algorithm: "SHA-1" })).otp;
}
/** A fresh re-authentication: each code is single-use per step, so the test lets the current one be used again. */
async function credentials(who: "inv" | "inv2", meaning: string) {
  await t.database.execute(`UPDATE users SET totp_last_step = NULL WHERE email = '${who}@sig.test'`);
  return { meaning, password: PW, code: await totp(secrets[who]) };
}
const sign = async (who: "inv" | "inv2", recordId: string, meaning: string) =>
  signRecord(t.ctx, p[who], STUDY, recordId, await credentials(who, meaning), meta);
async function count(recordId: string) {
  const [{ n }] = await t.database.execute(`SELECT count(*)::int AS n FROM signatures WHERE record_id = '${recordId}'`);
  return Number(n);
}

async function signatureEntries(recordId: string) {
  const [{ n }] = await t.database.execute(
    `SELECT count(*)::int AS n FROM ledger_entries
     WHERE kind = 'signature.applied' AND payload_text LIKE '%${recordId}%'`,
  );
  return Number(n);
}

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(t.ctx, { code: STUDY, title: "Signatures", sites: [{ code: "S1", name: "1" }] }, null);
  for (const [k, role] of [
    ["inv", "investigator"],
    ["inv2", "investigator"],
    ["coord", "coordinator"],
  ] as const) {
    const u = await createUser(
      t.ctx,
      { email: `${k}@sig.test`, fullName: `${k} person`, password: PW, role, study: STUDY, site: "S1" },
      null,
    );
    p[k] = (await principalForUser(t.ctx, u.id))!;
  }
  await grantDelegation(t.ctx, p.inv, {
    study: STUDY,
    site: "S1",
    delegate: "coord@sig.test",
    task: "data_entry",
    startsOn: "2026-01-01",
    training: [{ course: "GCP", completedOn: "2025-01-01", evidenceSha256: "ab".repeat(32) }],
  });
  for (const code of ["VS", "LAB"])
    await importForm(
      t.ctx,
      STUDY,
      { code, title: code, version: 1, visits: ["V1"], fields: [{ name: "x", label: "X", type: "number" }] },
      { actorId: null },
    );
  subject = (await enrollParticipant(t.ctx, p.inv, { study: STUDY, site: "S1" })).subjectCode;
  await giveCompleteConsent(t.ctx, STUDY, subject);
  vs = (await saveRecord(t.ctx, p.coord, STUDY, { subject, form: "VS", visit: "V1", data: { x: 1 } })).id;
  lab = (await saveRecord(t.ctx, p.coord, STUDY, { subject, form: "LAB", visit: "V1", data: { x: 2 } })).id;
  secrets.inv = await enrolTotp("inv@sig.test");
  secrets.inv2 = await enrolTotp("inv2@sig.test");
});
afterAll(async () => {
  await t?.close();
});

describe(`one signature per signer, version and meaning on ${engineUnderTest()}`, () => {
  it("a second signature of the same version with the same meaning by the same person is refused (409)", async () => {
    await sign("inv", vs, "authored");
    await expect(sign("inv", vs, "authored")).rejects.toMatchObject({
      code: "conflict",
      status: 409,
      field: "meaning",
      message: expect.stringMatching(/^You have already signed version 1 as author; /),
    });
    expect(await count(vs)).toBe(1);
    expect(await signatureEntries(vs)).toBe(1); // the refused signature left no entry
  });

  it("another meaning, another investigator, and a new version after a correction can still be signed", async () => {
    await sign("inv", vs, "reviewed");
    await sign("inv2", vs, "authored");
    await correctRecord(t.ctx, p.coord, STUDY, vs, { data: { x: 3 }, reason: "transcription error" });
    const again = await sign("inv", vs, "authored");
    expect(again).toMatchObject({ version: 2, meaning: "authored" });
    await expect(sign("inv", vs, "authored")).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringMatching(/^You have already signed version 2 as author; /),
    });
    const sigs = await signaturesOf(t.ctx, vs, 2);
    expect(sigs.map((s) => `${s.printedName} ${s.meaning} v${s.version} ${s.valid}`)).toEqual([
      "inv person authored v1 false",
      "inv person reviewed v1 false",
      "inv2 person authored v1 false",
      "inv person authored v2 true",
    ]);
  });

  it("casebook signing skips the records already signed with that meaning and reports them", async () => {
    const out = await signCasebook(t.ctx, p.inv, STUDY, subject, await credentials("inv", "authored"), meta);
    expect(out.signed.map((s) => s.recordId)).toEqual([lab]);
    expect(out.skipped).toEqual([{ record: vs, form: "VS", visit: "V1", version: 2 }]);
    await expect(
      signCasebook(t.ctx, p.inv, STUDY, subject, await credentials("inv", "authored"), meta),
    ).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringMatching(new RegExp(`^You have already signed every record of ${subject} as author`)),
    });
    expect(await count(lab)).toBe(1);
  });

  it("the database itself refuses a second row for the same record, version, signer and meaning", async () => {
    await expect(
      t.database.execute(
        `INSERT INTO signatures (study_id, record_id, version, signed_payload_hash, meaning, signer_id, printed_name,
           entry_id)
         SELECT study_id, record_id, version, signed_payload_hash, meaning, signer_id, printed_name, entry_id
         FROM signatures WHERE record_id = '${lab}'`,
      ),
    ).rejects.toThrow(/duplicate key value violates unique constraint "signatures_once_idx"/);
  });

  // PostgreSQL only: PGlite has one connection, so two transactions can never overlap there.
  it.runIf(engineUnderTest() === "postgres")(
    "two signatures at once: the second waits for the first and is then refused, leaving no entry",
    async () => {
      const other = postgres(t.url!, { max: 2, onnotice: () => {} });
      try {
        // A signature being applied by another process, not committed yet: the same signer, version and meaning.
        const reserved = await other.reserve();
        const [{ pid }] = await reserved`SELECT pg_backend_pid() AS pid`;
        await reserved`BEGIN`;
        await reserved.unsafe(
          `INSERT INTO signatures (study_id, record_id, version, signed_payload_hash, meaning, signer_id, printed_name,
             entry_id)
           SELECT study_id, record_id, version, signed_payload_hash, 'reviewed', signer_id, printed_name, entry_id
           FROM signatures WHERE record_id = '${lab}' AND meaning = 'authored'`,
        );
        const before = await count(lab);
        const entriesBefore = await signatureEntries(lab);
        let settled = false;
        const second = sign("inv", lab, "reviewed").finally(() => (settled = true));
        second.catch(() => {});
        const blocked = async () =>
          (
            await other`SELECT count(*)::int AS n FROM pg_stat_activity WHERE ${pid}::int = ANY(pg_blocking_pids(pid))`
          ).map((r) => Number(r.n))[0] > 0;
        await waitFor(async () => settled || (await blocked()), {
          what: "the second signature to wait on the first (pg_blocking_pids)",
        });
        expect(settled).toBe(false);
        await reserved`COMMIT`;
        reserved.release();
        await expect(second).rejects.toMatchObject({
          code: "conflict",
          message: expect.stringMatching(/^You have already signed version 1 as reviewer; /),
        });
        expect(await count(lab)).toBe(before + 1);
        expect(await signatureEntries(lab)).toBe(entriesBefore); // the refused one's entry was rolled back with it
      } finally {
        await other.end();
      }
    },
  );

  it(
    "the migration keeps repeats signed before it (append-only), marks each as a repeat, and still refuses new " +
      "ones",
    async () => {
      const file = readdirSync(MIGRATIONS_DIR).find((f) => /^\d{4}_signatures_once\.sql$/.test(f));
      expect(file).toBeDefined();
      // The table as it was before the migration: no column `repeats`, no index, and a repeat in it.
      await t.database.execute(`ALTER TABLE signatures DROP COLUMN repeats`);
      await t.database.execute(
        `INSERT INTO signatures (study_id, record_id, version, signed_payload_hash, meaning, signer_id, printed_name,
           entry_id, signed_at)
         SELECT study_id, record_id, version, signed_payload_hash, meaning, signer_id, printed_name, entry_id,
           signed_at + interval '1 minute'
         FROM signatures WHERE record_id = '${lab}' AND meaning = 'authored'`,
      );
      const before = await t.database.execute(`SELECT id FROM signatures ORDER BY id`);
      const migration = readFileSync(path.join(MIGRATIONS_DIR, file!), "utf8");
      for (const statement of migration.split("--> statement-breakpoint")) await t.database.execute(statement);
      expect(await t.database.execute(`SELECT id FROM signatures ORDER BY id`)).toEqual(before);
      const repeats = await t.database.execute(
        `SELECT s.meaning, s.repeats = first.id AS of_first, s.signed_at > first.signed_at AS later
         FROM signatures s JOIN signatures first ON first.id = s.repeats`,
      );
      expect(repeats).toEqual([{ meaning: "authored", of_first: true, later: true }]);
      await expect(sign("inv", lab, "authored")).rejects.toMatchObject({ code: "conflict" });
      await expect(t.database.execute(`UPDATE signatures SET repeats = NULL`)).rejects.toThrow(/append-only/);
    },
  );
});
