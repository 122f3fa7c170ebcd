/** Sign-off, SDV, queries and locks on PGlite and PostgreSQL: each a ledger entry, each enforced. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import postgres from "postgres";
import { generateTOTP } from "@epic-web/totp";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { nextStepTotp } from "../helpers/totp.ts";
import { waitFor } from "../helpers/wait.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { beginTotpEnrolment, confirmTotpEnrolment, login, principalForUser } from "../../app/accounts/auth.server.ts";
import { grantDelegation } from "../../app/studies/delegations.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { correctRecord, saveRecord } from "../../app/records/records.server.ts";
import {
  answerQuery,
  closeQuery,
  markSdv,
  openQuery,
  queriesOf,
  releaseLock,
  setLock,
  signRecord,
  signaturesOf,
} from "../../app/clinical-monitoring/clinical-monitoring.server.ts";
import { toHex } from "../../anchoring/log/bytes.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";

const PW = "amber otter winter forty-two";
const meta = { ip: null, userAgent: null };
let t: TestDb;
const p: Record<string, Principal> = {};
let secret: string;
let recordId: string;

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(t.ctx, { code: "MON-1", title: "Monitoring", sites: [{ code: "S1", name: "1" }] }, null);
  for (const [k, role, site] of [
    ["inv", "investigator", "S1"],
    ["coord", "coordinator", "S1"],
    ["mon", "monitor", undefined],
    ["dm", "data_manager", undefined],
  ] as const) {
    const u = await createUser(
      t.ctx,
      { email: `${k}@mon.test`, fullName: `${k} person`, password: PW, role, study: "MON-1", site },
      null,
    );
    p[k] = (await principalForUser(t.ctx, u.id))!;
  }
  await grantDelegation(t.ctx, p.inv, {
    study: "MON-1",
    site: "S1",
    delegate: "coord@mon.test",
    task: "data_entry",
    startsOn: "2026-01-01",
    training: [{ course: "GCP", completedOn: "2025-01-01", evidenceSha256: "ab".repeat(32) }],
  });
  await importForm(
    t.ctx,
    "MON-1",
    {
      code: "VS",
      title: "VS",
      version: 1,
      visits: ["V1"],
      fields: [{ name: "sbp", label: "SBP", type: "number", required: true }],
    },
    { actorId: null },
  );
  await enrollParticipant(t.ctx, p.inv, { study: "MON-1", site: "S1" });
  await giveCompleteConsent(t.ctx, "MON-1", "S1-001");
  recordId = (
    await saveRecord(t.ctx, p.coord, "MON-1", { subject: "S1-001", form: "VS", visit: "V1", data: { sbp: 120 } })
  ).id;
  // The investigator enrols TOTP (required for the role).
  const { token } = await login(t.ctx, "inv@mon.test", PW, meta);
  secret = (await beginTotpEnrolment(t.ctx, token)).secret;
  await confirmTotpEnrolment(
    t.ctx,
    token,
    (await generateTOTP({ secret, period: 30, digits: 6, algorithm: "SHA-1" })).otp,
    meta,
  );
  // Let the test use the current code again.
  await t.database.execute(`UPDATE users SET totp_last_step = NULL WHERE email = 'inv@mon.test'`);
});
afterAll(async () => {
  await t?.close();
});

const code = async () => (await generateTOTP({ secret, period: 30, digits: 6, algorithm: "SHA-1" })).otp;
const kinds = async () => (await t.database.execute(`SELECT kind FROM ledger_entries`)).map((r) => String(r.kind));

describe(`sign-off, monitoring and locks on ${engineUnderTest()}`, () => {
  it(
    "the investigator signs with password and TOTP; " +
      "the signature is bound to the version's payload hash and invalidated by a correction",
    async () => {
      await expect(
        signRecord(t.ctx, p.coord, "MON-1", recordId, { meaning: "approved", password: PW }, meta),
      ).rejects.toMatchObject({ code: "forbidden" });
      await expect(
        signRecord(t.ctx, p.inv, "MON-1", recordId, { meaning: "approved", password: "wrong password!!" }, meta),
      ).rejects.toMatchObject({ field: "password" });
      await expect(
        signRecord(t.ctx, p.inv, "MON-1", recordId, { meaning: "approved", password: PW, code: "000000" }, meta),
      ).rejects.toMatchObject({ field: "code" });
      await expect(
        signRecord(t.ctx, p.inv, "MON-1", recordId, { meaning: "liked", password: PW, code: await code() }, meta),
      ).rejects.toMatchObject({ field: "meaning" });
      const s = await signRecord(
        t.ctx,
        p.inv,
        "MON-1",
        recordId,
        { meaning: "approved", password: PW, code: await code() },
        meta,
      );
      const [v1] = await t.database.execute(
        `SELECT e.payload_hash FROM record_versions v JOIN ledger_entries e ON e.id = v.entry_id ` +
          `WHERE v.record_id = '${recordId}' AND v.version = 1`,
      );
      expect(toHex(s.signedPayloadHash)).toBe(toHex(v1.payload_hash as Uint8Array));
      expect(s).toMatchObject({ printedName: "inv person", meaning: "approved", version: 1 });
      expect((await signaturesOf(t.ctx, recordId, 1))[0]).toMatchObject({ valid: true, note: null });
      await correctRecord(t.ctx, p.coord, "MON-1", recordId, { data: { sbp: 121 }, reason: "re-measured" });
      const after = await signaturesOf(t.ctx, recordId, 2);
      expect(after[0]).toMatchObject({ valid: false, note: expect.stringMatching(/invalidated/) });
      await expect(t.database.execute(`UPDATE signatures SET meaning = 'authored'`)).rejects.toThrow(/append-only/);
      expect(await kinds()).toContain("signature.applied");
    },
  );

  it(
    "SDV and a query: monitor opens, coordinator answers, monitor closes; each a ledger entry; " + "roles enforced",
    async () => {
      await expect(markSdv(t.ctx, p.coord, "MON-1", recordId)).rejects.toMatchObject({ code: "forbidden" });
      expect((await markSdv(t.ctx, p.mon, "MON-1", recordId)).version).toBe(2);
      await expect(openQuery(t.ctx, p.coord, "MON-1", recordId, { field: "sbp", text: "?" })).rejects.toMatchObject({
        code: "forbidden",
      });
      await expect(openQuery(t.ctx, p.mon, "MON-1", recordId, { field: "sbp", text: "" })).rejects.toMatchObject({
        field: "text",
      });
      const q = await openQuery(t.ctx, p.mon, "MON-1", recordId, {
        field: "sbp",
        text: "Please confirm 121 against the source document.",
      });
      await expect(closeQuery(t.ctx, p.mon, "MON-1", q.id)).rejects.toMatchObject({ code: "conflict" });
      await expect(answerQuery(t.ctx, p.mon, "MON-1", q.id, "ok")).rejects.toMatchObject({ code: "forbidden" });
      await answerQuery(t.ctx, p.coord, "MON-1", q.id, "Confirmed against the clinic chart.");
      await closeQuery(t.ctx, p.mon, "MON-1", q.id);
      expect((await queriesOf(t.ctx, recordId))[0]).toMatchObject({
        status: "closed",
        answer: "Confirmed against the clinic chart.",
      });
      const payloads = (
        await t.database.execute(`SELECT payload_text FROM ledger_entries WHERE kind LIKE 'query.%'`)
      ).map((r) => String(r.payload_text));
      expect(payloads).toHaveLength(3);
      expect(payloads.join()).not.toContain("clinic chart"); // only the text's hash reaches the ledger
      expect(await kinds()).toContain("sdv.marked");
    },
  );

  it("after a lock (record, subject or study) editing is refused until a logged unlock", async () => {
    await expect(
      setLock(t.ctx, p.coord, "MON-1", { scope: "record", target: recordId, reason: "clean" }),
    ).rejects.toMatchObject({ code: "forbidden" });
    await expect(
      setLock(t.ctx, p.dm, "MON-1", { scope: "record", target: recordId, reason: "" }),
    ).rejects.toMatchObject({ field: "reason" });
    for (const [scope, target] of [
      ["record", recordId],
      ["subject", "S1-001"],
      ["study", undefined],
    ] as const) {
      const l = await setLock(t.ctx, p.dm, "MON-1", { scope, target, reason: `${scope} review done` });
      await expect(
        correctRecord(t.ctx, p.coord, "MON-1", recordId, { data: { sbp: 125 }, reason: "late" }),
        scope,
      ).rejects.toMatchObject({ code: "locked" });
      await expect(releaseLock(t.ctx, p.coord, "MON-1", l.id, "x")).rejects.toMatchObject({ code: "forbidden" });
      await expect(releaseLock(t.ctx, p.dm, "MON-1", l.id, " ")).rejects.toMatchObject({ field: "reason" });
      await releaseLock(t.ctx, p.dm, "MON-1", l.id, "query to resolve");
    }
    // A study lock also stops new records.
    const l = await setLock(t.ctx, p.dm, "MON-1", { scope: "study", reason: "database lock" });
    await expect(
      saveRecord(t.ctx, p.coord, "MON-1", { subject: "S1-001", form: "VS", visit: "V1", data: { sbp: 1 } }),
    ).rejects.toMatchObject({ code: "locked" });
    await releaseLock(t.ctx, p.dm, "MON-1", l.id, "reopened by sponsor");
    const c = await correctRecord(t.ctx, p.coord, "MON-1", recordId, {
      data: { sbp: 125 },
      reason: "late entry after unlock",
    });
    expect(c.version).toBe(3);
    const k = await kinds();
    expect(k.filter((x) => x === "lock.set")).toHaveLength(4);
    expect(k.filter((x) => x === "lock.released")).toHaveLength(4);
  });
});

describe(`casebook signing on ${engineUnderTest()}`, () => {
  it("one re-authentication signs every record of the subject, each bound to its own current version", async () => {
    const { signCasebook } = await import("../../app/clinical-monitoring/clinical-monitoring.server.ts");
    await expect(
      signCasebook(t.ctx, p.coord, "MON-1", "S1-001", { meaning: "approved", password: PW }, meta),
    ).rejects.toMatchObject({ code: "forbidden" });
    // Codes are single-use (per 30 s step) and the record signature above used the current one: the next step's
    // code is fresh, and accepted (one step of clock skew).
    const sigs = await signCasebook(
      t.ctx,
      p.inv,
      "MON-1",
      "S1-001",
      { meaning: "reviewed", password: PW, code: await nextStepTotp(secret) },
      meta,
    );
    expect(sigs.skipped).toEqual([]);
    expect(sigs.signed).toHaveLength(1);
    expect(sigs.signed[0]).toMatchObject({ meaning: "reviewed", version: 3 });
    expect((await signaturesOf(t.ctx, recordId, 3)).filter((s) => s.valid)).toHaveLength(1);
  });
});

describe(`certified copy on ${engineUnderTest()}`, () => {
  it(
    "renders the casebook as a PDF with values, audit trail, signatures, " +
      "queries and every version's entry (audited)",
    async () => {
      const { casebookPdf } = await import("../../app/exports/certified-copy.server.ts");
      const { extractText, getDocumentProxy } = await import("unpdf");
      const pdf = await casebookPdf(t.ctx, p.mon, "MON-1", "S1-001");
      expect(pdf.subarray(0, 5).toString()).toBe("%PDF-");
      const { text } = await extractText(await getDocumentProxy(new Uint8Array(pdf)), { mergePages: true });
      const flat = String(text).replace(/\s+/g, " ");
      expect(flat).toContain("Certified copy: casebook of subject S1-001");
      expect(flat).toContain("SBP: 125");
      expect(flat).toMatch(/v2 .* UTC .* sbp: 120 -> 121 reason: re-measured/);
      expect(flat).toMatch(/inv person, .* UTC, meaning: approved \(version 1\) \[invalidated/);
      expect(flat).toContain("Please confirm 121 against the source document.");
      const entries = (
        await t.database.execute(`SELECT v.entry_id FROM record_versions v WHERE v.record_id = '${recordId}'`)
      ).map((r) => String(r.entry_id));
      for (const e of entries) expect(flat).toContain(`entry ${e}`);
      const [ev] = await t.database.execute(
        `SELECT action, participant_id IS NOT NULL AS subj FROM audit_events WHERE action = 'export.certified_copy'`,
      );
      expect(ev).toEqual({ action: "export.certified_copy", subj: true });
      await expect(casebookPdf(t.ctx, p.mon, "MON-1", "S1-999")).rejects.toMatchObject({ code: "not_found" });
    },
  );

  // PostgreSQL only: PGlite has one connection, so two transactions can never overlap there.
  it.runIf(engineUnderTest() === "postgres")(
    "a lock committed while a save is in flight is never bypassed: the save waits for it, then refuses",
    async () => {
      const e = await enrollParticipant(t.ctx, p.inv, { study: "MON-1", site: "S1" });
      await giveCompleteConsent(t.ctx, "MON-1", e.subjectCode);
      const [{ study_id: studyId }] = await t.database.execute(
        `SELECT study_id FROM participants WHERE id = '${e.id}'`,
      );
      const other = postgres(t.url!, { max: 2, onnotice: () => {} });
      try {
        // A subject lock being set, as setLock does it: the subject's row FOR UPDATE, the lock row, not committed yet.
        const reserved = await other.reserve();
        const [{ pid }] = await reserved`SELECT pg_backend_pid() AS pid`;
        await reserved`BEGIN`;
        await reserved`SELECT 1 FROM participants WHERE id = ${e.id} FOR UPDATE`;
        await reserved`INSERT INTO locks (study_id, scope, target_id, reason)
            VALUES (${String(studyId)}, 'subject', ${e.id}, 'database lock for interim analysis')`;
        let settled = false;
        const save = saveRecord(t.ctx, p.coord, "MON-1", {
          subject: e.subjectCode,
          form: "VS",
          visit: "V1",
          data: { sbp: 118 },
        }).finally(() => (settled = true));
        save.catch(() => {});
        // Wait until the save is blocked by the open transaction (PostgreSQL says so), then check it is still waiting.
        const blockedByLock = async () =>
          (
            await other`SELECT count(*)::int AS n FROM pg_stat_activity WHERE ${pid}::int = ANY(pg_blocking_pids(pid))`
          ).map((r) => Number(r.n))[0] > 0;
        await waitFor(async () => settled || (await blockedByLock()), {
          what: "the save to wait on the subject's row (pg_blocking_pids)",
        });
        expect(settled).toBe(false); // the save waits on the subject's row
        await reserved`COMMIT`;
        reserved.release();
        await expect(save).rejects.toMatchObject({ code: "locked" });
        const [{ n }] = await t.database.execute(
          `SELECT count(*)::int AS n FROM records WHERE participant_id = '${e.id}'`,
        );
        expect(Number(n)).toBe(0);
      } finally {
        await other.end();
      }
    },
  );
});
