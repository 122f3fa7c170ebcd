/**
 * Every write that changes trial data or its review state is refused under a database lock (issue 20, ADR 0054),
 * on PGlite and PostgreSQL: dispositions, query steps, e-signatures, SDV marks, enrolment, consent signing (paper),
 * site approvals, the outcome list, the visit schedule, a second study-wide lock; each a 423 ("locked") that leaves
 * nothing written. Allowed: a consent withdrawal, emergency unblinding, erasure, a subject's lock and its release,
 * the study's unblinding and the unlock (by the data manager only). The audit names a refused kind sealed under the
 * lock as tamper; the disposition "randomized" is refused by hand once a randomization list is committed. On
 * PostgreSQL, writes racing a lockDatabase either commit before it (and are in the analysis data set) or are refused.
 */
import { sql } from "drizzle-orm";
import { unzipSync } from "fflate";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  answerQuery,
  closeQuery,
  markSdv,
  openQuery,
  releaseLock,
  reopenQuery,
  setLock,
  signRecord,
} from "../../app/clinical-monitoring/clinical-monitoring.server.ts";
import { signingKey, writeSignature } from "../../app/consent/signatures.server.ts";
import { recordWithdrawal } from "../../app/consent/withdrawal.server.ts";
import {
  analysisDataSet,
  databaseLockInForce,
  lockDatabase,
  unlockDatabase,
} from "../../app/database-lock/database-lock.server.ts";
import { type AuditReport, runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { setDisposition } from "../../app/participants/disposition.server.ts";
import { participantBySubject } from "../../app/participants/find-participant.server.ts";
import { eraseParticipantData, enrollParticipant } from "../../app/participants/participants.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import { emergencyUnblind } from "../../app/randomization/emergency-unblinding.server.ts";
import { commitList, createGeneratedList } from "../../app/randomization/lists.server.ts";
import { randomizeParticipant } from "../../app/randomization/randomize.server.ts";
import { unblindStudy } from "../../app/randomization/unblinding.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { correctRecord, saveRecord, todayIn } from "../../app/records/records.server.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { setOutcomes } from "../../app/study-documents/sap-outcomes.server.ts";
import { approveAtSite } from "../../app/study-documents/study-documents.server.ts";
import { setSchedule } from "../../app/visit-schedule/schedule-setup.server.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { engineUnderTest, openTestDatabase, type TestDb } from "../helpers/db.ts";
import { insertStudyDocument, tinyPdf } from "../helpers/study-document-rows.ts";
import { createStaff, STAFF_PASSWORD } from "../helpers/study-staff.ts";

let t: TestDb;
let p: Record<string, Principal>;
let ids: Record<string, string>;
const S = "DBW-1";
const meta = { ip: "127.0.0.1", userAgent: "vitest database-lock-writes" };
const rows = async (q: string) => (await t.database.execute(q)) as Record<string, unknown>[];
const tamperFindings = (r: AuditReport) => r.findings.filter((f) => f.severity === "tamper");
const underLock = (r: AuditReport) => r.findings.filter((f) => f.code === "DATA_CHANGED_UNDER_LOCK");
const audit = (study = S) => runIntegrityAudit(t.ctx, { study });
async function tamper(statements: string[]) {
  await t.ctx.db.transaction(async (tx) => {
    await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
    for (const s of statements) await tx.execute(sql.raw(s));
  });
}
async function count(table: string) {
  const [r] = await rows(`SELECT count(*)::int AS n FROM ${table}`);
  return Number(r.n);
}
const LOCKED = { code: "locked", message: expect.stringMatching(/study database is locked since .* \(reason: /) };

const VS = {
  code: "VS",
  title: "Vital signs",
  version: 1,
  visits: ["V1", "V2"],
  fields: [{ name: "sbp", label: "Systolic BP", type: "number", required: true }],
};
const DESIGN = {
  v: 1,
  arms: [
    { code: "A", name: "Active", ratio: 1 },
    { code: "P", name: "Placebo", ratio: 1 },
  ],
  blockSizes: [2, 4],
  factors: [],
  sites: ["S1"],
  slotsPerStratum: 8,
  kitTypes: { KA: "A", KP: "P" },
};
const PRIMARY = {
  type: "primary",
  name: "Change in HbA1c",
  measure: "HbA1c (%)",
  timePoint: "Week 26",
  analysis: "ANCOVA",
};
const SCHEDULE = {
  baseline: { kind: "enrolment" },
  visits: [{ code: "V1", name: "Visit 1", day: 28, windowBefore: 3, windowAfter: 3, forms: ["VS"] }],
};
let recordId: string;
let q: Record<"open" | "answered" | "closed", string>;
let protocolId: string;

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(
    t.ctx,
    {
      code: S,
      title: "Database lock writes",
      sites: [
        { code: "S1", name: "One" },
        { code: "S2", name: "Two" },
      ],
    },
    null,
  );
  const staff = await createStaff(t.ctx, S, "dbw.test", [
    ["admin", "admin"],
    ["inv", "investigator", "S1"],
    ["coord", "coordinator", "S1"],
    ["dm", "data_manager"],
    ["mon", "monitor"],
    ["stat", "unblinded_statistician"],
  ]);
  p = staff.principals;
  ids = staff.userIds;
  await importForm(t.ctx, S, VS, { actorId: null });
  for (let i = 1; i <= 6; i++) {
    await enrollParticipant(t.ctx, p.inv, { study: S, site: "S1" });
    if (i <= 5) await giveCompleteConsent(t.ctx, S, `S1-00${i}`);
  }
  recordId = (await saveRecord(t.ctx, p.inv, S, { subject: "S1-001", form: "VS", visit: "V1", data: { sbp: 120 } })).id;
  const open = await openQuery(t.ctx, p.mon, S, recordId, { field: "sbp", text: "please confirm" });
  const answered = await openQuery(t.ctx, p.mon, S, recordId, { field: "sbp", text: "source?" });
  await answerQuery(t.ctx, p.inv, S, answered.id, "confirmed on source");
  const closed = await openQuery(t.ctx, p.mon, S, recordId, { field: "sbp", text: "units?" });
  await answerQuery(t.ctx, p.inv, S, closed.id, "mmHg");
  await closeQuery(t.ctx, p.mon, S, closed.id);
  q = { open: open.id, answered: answered.id, closed: closed.id };
  await insertStudyDocument(t.ctx, S, ids.admin, { type: "protocol", version: "1.0", content: tinyPdf("p1") });
  await insertStudyDocument(t.ctx, S, ids.admin, { type: "sap", version: "1.0", content: tinyPdf("s1") });
  protocolId = String((await rows(`SELECT id FROM study_documents WHERE type = 'protocol'`))[0].id);
  const { listId } = await createGeneratedList(t.ctx, p.stat, S, { design: DESIGN });
  await commitList(t.ctx, p.stat, S, listId);
  await randomizeParticipant(t.ctx, p.inv, S, "S1-001", { factors: {} });
  // An e-consent signature of S1-004 (the paper consent is not one a withdrawal names), as the signing service writes.
  const sid = String((await rows(`SELECT id FROM studies WHERE code = '${S}'`))[0].id);
  const part = (await participantBySubject(t.ctx, sid, "S1-004"))!;
  const [doc] = await rows(`SELECT id, code, version, body_sha256 FROM consent_documents LIMIT 1`);
  await t.ctx.db.transaction((tx) =>
    writeSignature(t.ctx, tx, {
      study: { id: sid, code: S },
      participant: part,
      document: {
        id: String(doc.id),
        code: String(doc.code),
        version: String(doc.version),
        bodySha256: doc.body_sha256 as Uint8Array,
      },
      key: signingKey(t.ctx, part),
      role: "participant",
      printedName: "Participant Four",
      countersigns: null,
      fromStaffDevice: true,
      actor: null,
      userId: null,
      invitationId: null,
      signedAt: new Date(),
    }),
  );
}, 120_000);
afterAll(async () => {
  await t?.close();
});

describe(`writes under a database lock on ${engineUnderTest()}`, () => {
  it("'randomized' by hand is refused once a list is committed; randomizing still sets it", async () => {
    const before = await count("participant_dispositions");
    await expect(
      setDisposition(t.ctx, p.inv, S, "S1-002", { status: "randomized", date: todayIn("UTC") }),
    ).rejects.toMatchObject({
      code: "conflict",
      field: "status",
      message: expect.stringContaining("randomize the participant from the randomization list"),
    });
    expect(await count("participant_dispositions")).toBe(before);
    await randomizeParticipant(t.ctx, p.inv, S, "S1-002", { factors: {} });
    const [d] = await rows(`SELECT disposition FROM participants WHERE subject_code = 'S1-002'`);
    expect(d.disposition).toBe("randomized");
  });

  it("refuses every change of trial data or review state with 423, writing nothing", async () => {
    await lockDatabase(t.ctx, p.dm, S, { reason: "final database lock" });
    await sealAll(t.ctx);
    const tables = [
      "ledger_entries",
      "participant_dispositions",
      "participants",
      "queries",
      "query_events",
      "signatures",
      "sdv_marks",
      "document_site_approvals",
      "sap_outcome_sets",
      "visit_schedules",
      "locks",
      "paper_consents",
      "consent_signatures",
    ];
    const snapshot = async () => Object.fromEntries(await Promise.all(tables.map(async (x) => [x, await count(x)])));
    const before = await snapshot();
    const today = todayIn("UTC");
    const refused: [string, () => Promise<unknown>][] = [
      ["disposition", () => setDisposition(t.ctx, p.inv, S, "S1-003", { status: "completed", date: today })],
      ["query opened", () => openQuery(t.ctx, p.mon, S, recordId, { field: "sbp", text: "late" })],
      ["query answered", () => answerQuery(t.ctx, p.inv, S, q.open, "late answer")],
      ["query closed", () => closeQuery(t.ctx, p.mon, S, q.answered)],
      ["query reopened", () => reopenQuery(t.ctx, p.mon, S, q.closed, { reason: "again" })],
      [
        "e-signature",
        () => signRecord(t.ctx, p.inv, S, recordId, { meaning: "approved", password: STAFF_PASSWORD }, meta),
      ],
      ["SDV mark", () => markSdv(t.ctx, p.mon, S, recordId)],
      ["enrolment", () => enrollParticipant(t.ctx, p.inv, { study: S, site: "S1" })],
      ["consent signing", () => giveCompleteConsent(t.ctx, S, "S1-006")],
      [
        "site approval",
        () => approveAtSite(t.ctx, p.admin, S, { document: protocolId, site: "S1", approvedOn: "2026-02-01" }),
      ],
      ["outcome list", () => setOutcomes(t.ctx, p.admin, S, { outcomes: [PRIMARY], reason: "after lock" })],
      ["visit schedule", () => setSchedule(t.ctx, p.admin, S, SCHEDULE)],
      ["second study lock", () => setLock(t.ctx, p.dm, S, { scope: "study", reason: "again" })],
    ];
    const outcomes: [string, unknown][] = [];
    for (const [what, write] of refused)
      outcomes.push([
        what,
        await write().then(
          () => "written",
          (e: { code?: string; message?: string }) => e,
        ),
      ]);
    expect(outcomes).toEqual(refused.map(([what]) => [what, expect.objectContaining(LOCKED)]));
    await sealAll(t.ctx);
    expect(await snapshot()).toEqual(before);
    const r = await audit();
    expect(tamperFindings(r)).toEqual([]);
    expect(underLock(r)).toEqual([]);
  });

  it("allows a consent withdrawal, emergency unblinding, erasure, a subject's lock; none is a finding", async () => {
    await recordWithdrawal(t.ctx, p.inv, S, "S1-004", { scope: "full", reason: "moving away" });
    await emergencyUnblind(t.ctx, p.inv, S, "S1-001", { reason: "severe reaction, treating physician asks" });
    await eraseParticipantData(t.ctx, p.admin, S, "S1-005", "the participant asked for erasure");
    // A record's or subject's lock and its release change no data: allowed (kept for a targeted unlock later).
    const subjectLock = await setLock(t.ctx, p.dm, S, { scope: "subject", target: "S1-003", reason: "cleaned" });
    await releaseLock(t.ctx, p.dm, S, subjectLock.id, "locked by mistake");
    const r = await audit();
    expect(tamperFindings(r)).toEqual([]);
    expect(underLock(r)).toEqual([]);
  });

  it("only the data manager (database.lock) releases the database lock's study-wide lock", async () => {
    const d = (await databaseLockInForce(t.ctx.db, String((await rows(`SELECT id FROM studies`))[0].id)))!;
    await expect(releaseLock(t.ctx, p.admin, S, d.lockId, "admin unlocks")).rejects.toMatchObject({
      code: "forbidden",
      message: expect.stringMatching(/database lock/),
    });
    expect(await databaseLockInForce(t.ctx.db, d.studyId)).not.toBeNull();
    await unblindStudy(t.ctx, p.stat, S);
  });

  it("names a refused kind sealed under the lock (written behind the services) as tamper", async () => {
    const d = (await databaseLockInForce(t.ctx.db, String((await rows(`SELECT id FROM studies`))[0].id)))!;
    await tamper([`UPDATE locks SET released_at = now() WHERE id = '${d.lockId}'`]);
    await setDisposition(t.ctx, p.inv, S, "S1-003", { status: "completed", date: todayIn("UTC") });
    await openQuery(t.ctx, p.mon, S, recordId, { field: "sbp", text: "behind the lock" });
    await tamper([`UPDATE locks SET released_at = NULL WHERE id = '${d.lockId}'`]);
    await sealAll(t.ctx);
    const f = tamperFindings(await audit());
    expect(f.map((x) => [x.code, x.message.split(" entry")[0]])).toEqual([
      ["DATA_CHANGED_UNDER_LOCK", "participant.disposition_set"],
      ["DATA_CHANGED_UNDER_LOCK", "query.opened"],
    ]);
    // The data manager unlocks with a reason: writes go through again (the ones above stay named).
    await unlockDatabase(t.ctx, p.dm, S, "late query from the monitor");
    await openQuery(t.ctx, p.mon, S, recordId, { field: "sbp", text: "after the unlock" });
    expect(tamperFindings(await audit())).toHaveLength(2);
  });

  it("a disposition or a correction racing a lockDatabase commits before it or is refused (PostgreSQL)", async () => {
    if (!t.url) return; // PGlite runs one transaction at a time: no race to test.
    const T = "DBW-2";
    await createStudy(t.ctx, { code: T, title: "Race", sites: [{ code: "S1", name: "One" }] }, null);
    const r = (
      await createStaff(t.ctx, T, "dbw2.test", [
        ["inv", "investigator", "S1"],
        ["dm", "data_manager"],
      ])
    ).principals;
    await importForm(t.ctx, T, VS, { actorId: null });
    await enrollParticipant(t.ctx, r.inv, { study: T, site: "S1" });
    await giveCompleteConsent(t.ctx, T, "S1-001");
    const rec = await saveRecord(t.ctx, r.inv, T, { subject: "S1-001", form: "VS", visit: "V1", data: { sbp: 100 } });
    const seen = { before: 0, refused: 0 };
    for (let i = 0; i < 20; i++) {
      // Enrolled at once (before the lock): the race is the dispositions' and corrections', not the enrolments'.
      const subjects = (
        await Promise.all([0, 1, 2, 3].map(() => enrollParticipant(t.ctx, r.inv, { study: T, site: "S1" })))
      ).map((e) => e.subjectCode);
      // Writes keep coming while the lock runs (and one more after it): some overlap its transaction.
      let locked = false;
      const lock = lockDatabase(t.ctx, r.dm, T, { reason: `lock ${i}` }).finally(() => {
        locked = true;
      });
      const outcomes: PromiseSettledResult<unknown>[] = [];
      const committed: number[] = [];
      const dispositions = async () => {
        for (const s of subjects) {
          const stop = locked;
          const date = todayIn("UTC");
          outcomes.push(
            ...(await Promise.allSettled([setDisposition(t.ctx, r.inv, T, s, { status: "completed", date })])),
          );
          if (stop) break;
        }
      };
      const corrections = async () => {
        for (let k = 0; k < 4; k++) {
          const stop = locked;
          const value = 1000 + i * 10 + k;
          const [o] = await Promise.allSettled([
            correctRecord(t.ctx, r.inv, T, rec.id, { data: { sbp: value }, reason: `race ${i}.${k}` }),
          ]);
          outcomes.push(o);
          if (o.status === "fulfilled") committed.push(value);
          if (stop) break;
        }
      };
      const [, , l] = await Promise.allSettled([dispositions(), corrections(), lock]);
      expect(l.status).toBe("fulfilled");
      for (const o of outcomes) {
        if (o.status === "fulfilled") seen.before++;
        else {
          expect(o.reason).toMatchObject({ code: "locked" });
          seen.refused++;
        }
      }
      // The analysis data set holds the record's last committed value: every correction that went through came
      // before the lock.
      const { databaseLockId } = (l as PromiseFulfilledResult<{ databaseLockId: string }>).value;
      const set = await analysisDataSet(t.ctx, r.dm, T, databaseLockId);
      const csv = new TextDecoder().decode(unzipSync(set.data)[`${T}-VS.csv`]);
      if (committed.length) expect(csv).toContain(`,${committed[committed.length - 1]}\r\n`);
      await unlockDatabase(t.ctx, r.dm, T, `race ${i} done`);
    }
    await sealAll(t.ctx);
    const report = await audit(T);
    expect(underLock(report)).toEqual([]);
    expect(tamperFindings(report)).toEqual([]);
    expect(seen.refused).toBeGreaterThan(0);
    expect(seen.before).toBeGreaterThan(0);
  }, 300_000);
});
