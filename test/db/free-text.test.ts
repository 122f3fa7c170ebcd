/**
 * Free text in the log (issue 15 item 10, ADR 0020), on PGlite and PostgreSQL: a lock, an unlock, a delegation
 * revocation and a correction whose reasons name a patient leave no trace of the text in their ledger payloads,
 * only its salted hash; the bundle and the text verify together (and a wrong text does not); the pages' data rows
 * still match their entries (seal match, integrity audit) and an altered reason row is flagged; and the bundle of
 * an entry about site B (its lock, its unlock, its record's query) is not site A's to fetch, while the study's
 * monitor, regulator and data manager get it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { grantDelegation, revokeDelegation } from "../../app/studies/delegations.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { correctRecord, saveRecord } from "../../app/records/records.server.ts";
import { openQuery, releaseLock, setLock } from "../../app/clinical-monitoring/clinical-monitoring.server.ts";
import { studySealMismatches } from "../../app/records/seal-match.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { deploymentTrustPolicy } from "../../app/anchor-worker/anchor-worker.server.ts";
import { entryVisibleTo, findEntryByRef, proofBundle } from "../../app/log/proofs.server.ts";
import { runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import { verifyBundle } from "../../anchoring/verifier/verify-bundle.ts";
import { parsePayload } from "../../anchoring/log/payloads.ts";
import { saltedTextHash, textMatchesPayload } from "../../anchoring/log/text-hash.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";

const PW = "amber otter winter forty-two";
const PATIENT = "Jane Q. Doe";
const LOCK_REASON = `subject B-001 (${PATIENT}) moved to hospice, casebook frozen`;
const UNLOCK_REASON = `late lab result for ${PATIENT}`;
const REVOKE_REASON = `mixed up ${PATIENT}'s visit dates`;
const CORRECT_REASON = `transcription error, ${PATIENT}'s chart says 130`;
const QUERY_TEXT = `is ${PATIENT}'s value right?`;
let t: TestDb;
const p: Record<string, Principal> = {};
const rec: Record<string, string> = {};

async function entriesOf(kind: string) {
  const rows = (await t.database.execute(
    `SELECT id, payload_text FROM ledger_entries WHERE kind = '${kind}' ORDER BY at, id`,
  )) as { id: string; payload_text: string }[];
  return rows.map((r) => ({ id: r.id, text: r.payload_text, p: JSON.parse(r.payload_text) as Record<string, any> }));
}
const trainingJson = (course: string) =>
  JSON.stringify([{ course, completedOn: "2025-01-01", evidenceSha256: "ab".repeat(32) }]);
const entryOf = async (kind: string, key: string, value: string) =>
  (await entriesOf(kind)).find((e) => e.p[key] === value)!;

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(
    t.ctx,
    {
      code: "FT-1",
      title: "Free text",
      sites: [
        { code: "A", name: "A" },
        { code: "B", name: "B" },
      ],
    },
    null,
  );
  for (const [k, role, site] of [
    ["invA", "investigator", "A"],
    ["coordA", "coordinator", "A"],
    ["invB", "investigator", "B"],
    ["coordB", "coordinator", "B"],
    ["mon", "monitor", undefined],
    ["reg", "regulator", undefined],
    ["dm", "data_manager", undefined],
  ] as const) {
    const u = await createUser(
      t.ctx,
      { email: `${k.toLowerCase()}@ft.test`, fullName: `${k} person`, password: PW, role, study: "FT-1", site },
      null,
    );
    p[k] = (await principalForUser(t.ctx, u.id))!;
  }
  await importForm(
    t.ctx,
    "FT-1",
    {
      code: "VS",
      title: "VS",
      version: 1,
      visits: ["V1"],
      fields: [{ name: "sbp", label: "SBP", type: "number", required: true }],
    },
    { actorId: null },
  );
  for (const site of ["A", "B"]) {
    const inv = p[`inv${site}`];
    await enrollParticipant(t.ctx, inv, { study: "FT-1", site });
    await giveCompleteConsent(t.ctx, "FT-1", `${site}-001`);
    rec[site] = (
      await saveRecord(t.ctx, inv, "FT-1", { subject: `${site}-001`, form: "VS", visit: "V1", data: { sbp: 120 } })
    ).id;
  }
});
afterAll(async () => {
  await t?.close();
});

describe(`free text in ledger payloads (${engineUnderTest()})`, () => {
  it("reasons and a query naming a patient: only their salted hashes reach the log", async () => {
    await correctRecord(t.ctx, p.invB, "FT-1", rec.B, { data: { sbp: 130 }, reason: CORRECT_REASON });
    const lock = await setLock(t.ctx, p.dm, "FT-1", { scope: "subject", target: "B-001", reason: LOCK_REASON });
    await releaseLock(t.ctx, p.dm, "FT-1", lock.id, UNLOCK_REASON);
    const d = await grantDelegation(t.ctx, p.invB, {
      study: "FT-1",
      site: "B",
      delegate: "coordb@ft.test",
      task: "data_entry",
      startsOn: "2026-01-01",
      training: [{ course: "GCP", completedOn: "2025-01-01", evidenceSha256: "ab".repeat(32) }],
    });
    await revokeDelegation(t.ctx, p.invB, { study: "FT-1", id: d.id, reason: REVOKE_REASON });
    const q = await openQuery(t.ctx, p.mon, "FT-1", rec.B, { field: "sbp", text: QUERY_TEXT });

    const found = [
      { e: await entryOf("lock.set", "lock", lock.id), text: LOCK_REASON },
      { e: await entryOf("lock.released", "lock", lock.id), text: UNLOCK_REASON },
      { e: await entryOf("delegation.revoked", "delegation", d.id), text: REVOKE_REASON },
      {
        e: (await entriesOf("record.saved")).find((x) => x.p.record === rec.B && x.p.version === 2)!,
        text: CORRECT_REASON,
        v: 3, // record.saved v3 (ADR 0025) keeps v2's reasonHash
      },
    ];
    for (const { e, text, v } of found as { e: (typeof found)[number]["e"]; text: string; v?: number }[]) {
      expect(e, text).toBeDefined();
      // Nothing of the text, not even the patient's name, is in the stored payload.
      expect(e.text, e.p.kind).not.toContain("Doe");
      expect(e.p.reason, e.text).toBeUndefined();
      expect(e.p.v, e.text).toBe(v ?? 2);
      expect(e.p.reasonHash).toBe(saltedTextHash(t.ctx.crypto, e.p.salt, text));
      expect(textMatchesPayload(t.ctx.crypto, e.p, "reason", text)).toBe(true);
      expect(textMatchesPayload(t.ctx.crypto, e.p, "reason", `${text}.`)).toBe(false);
    }
    // A query's text: version 1 held its plain SHA-256 (guessable for a short text); now a salted hash.
    const qe = await entryOf("query.opened", "query", q.id);
    expect(qe.p.v).toBe(3); // query.opened v3 adds the API token; the text's salted hash is as in v2
    expect(qe.p.textSha256).toBeUndefined();
    expect(qe.p.textHash).toBe(saltedTextHash(t.ctx.crypto, qe.p.salt, QUERY_TEXT));
    // Other free text: the study's title, training course names, the IRB's name.
    const reg = (await entriesOf("study.registered")).find((x) => x.p.study === "FT-1")!;
    expect([reg.p.v, reg.p.title, reg.p.titleHash]).toEqual([
      2,
      undefined,
      saltedTextHash(t.ctx.crypto, reg.p.salt, "Free text"),
    ]);
    const granted = await entryOf("delegation.granted", "delegation", d.id);
    expect(granted.p.training).toEqual([
      {
        courseHash: saltedTextHash(t.ctx.crypto, granted.p.salt, "GCP"),
        completedOn: "2025-01-01",
        evidenceSha256: "ab".repeat(32),
      },
    ]);
    const docs = await entriesOf("consent_document.approved");
    expect(docs.length).toBeGreaterThan(0);
    for (const x of docs) expect([x.p.v, x.p.irbName, typeof x.p.irbNameHash]).toEqual([2, undefined, "string"]);
    // The data rows keep the text, and still match their entries.
    expect(
      await studySealMismatches(t.ctx, (await t.database.execute(`SELECT id FROM studies`))[0].id as string),
    ).toEqual([]);
  });

  it("the sealed bundle and the text verify together; anchors and logs see only the hash", async () => {
    await sealAll(t.ctx);
    const policy = deploymentTrustPolicy(t.ctx);
    const e = (await entriesOf("lock.set"))[0];
    const b = await proofBundle(t.ctx, (await findEntryByRef(t.ctx, e.id))!);
    if (b.status !== "sealed") throw new Error("not sealed");
    expect((await verifyBundle(t.ctx.crypto, b.bundle, policy)).verdict).toBe("valid");
    expect(JSON.stringify(b.bundle)).not.toContain("Doe");
    const payload = b.bundle.payload as Record<string, unknown>;
    expect(textMatchesPayload(t.ctx.crypto, payload, "reason", LOCK_REASON)).toBe(true);
    expect(textMatchesPayload(t.ctx.crypto, payload, "reason", "subject B-001 (John Roe) moved")).toBe(false);
  });

  it("the integrity audit recomputes the hashes from the rows: clean, then each altered text is named", async () => {
    const r = await runIntegrityAudit(t.ctx, { study: "FT-1" });
    expect(r.findings.filter((f) => f.severity === "tamper")).toEqual([]);
    await t.ctx.db.transaction(async (tx) => {
      await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
      await tx.execute(sql.raw(`UPDATE locks SET reason = 'routine freeze' WHERE scope = 'subject'`));
      await tx.execute(sql.raw(`UPDATE locks SET release_reason = 'routine' WHERE scope = 'subject'`));
      await tx.execute(sql.raw(`UPDATE delegations SET revoke_reason = 'routine' WHERE revoked_at IS NOT NULL`));
      await tx.execute(sql.raw(`UPDATE queries SET text = 'routine?'`));
      await tx.execute(sql.raw(`UPDATE record_versions SET reason = 'routine' WHERE version = 2`));
      await tx.execute(sql.raw(`UPDATE studies SET title = 'Renamed' WHERE code = 'FT-1'`));
      await tx.execute(sql.raw(`UPDATE delegations SET training = '${trainingJson("Forged")}'`));
    });
    const r2 = await runIntegrityAudit(t.ctx, { study: "FT-1" });
    for (const [table, field] of [
      ["locks", "reason"],
      ["locks", "release_reason"],
      ["delegations", "revoke_reason"],
      ["queries", "text"],
      ["record_versions", "reason"],
      ["studies", "title"],
      ["delegations", "training"],
    ])
      expect(r2.findings, `${table}.${field}`).toContainEqual(
        expect.objectContaining({ code: "DATA_ROW_MISMATCH", table, field }),
      );
    await t.ctx.db.transaction(async (tx) => {
      await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
      const quoted = (x: string) => `'${x.replace(/'/g, "''")}'`;
      await tx.execute(sql.raw(`UPDATE locks SET reason = ${quoted(LOCK_REASON)} WHERE scope = 'subject'`));
      await tx.execute(sql.raw(`UPDATE locks SET release_reason = ${quoted(UNLOCK_REASON)} WHERE scope = 'subject'`));
      await tx.execute(
        sql.raw(`UPDATE delegations SET revoke_reason = ${quoted(REVOKE_REASON)} WHERE revoked_at IS NOT NULL`),
      );
      await tx.execute(sql.raw(`UPDATE queries SET text = ${quoted(QUERY_TEXT)}`));
      await tx.execute(sql.raw(`UPDATE record_versions SET reason = ${quoted(CORRECT_REASON)} WHERE version = 2`));
      await tx.execute(sql.raw(`UPDATE studies SET title = 'Free text' WHERE code = 'FT-1'`));
      await tx.execute(sql.raw(`UPDATE delegations SET training = '${trainingJson("GCP")}'`));
    });
  });

  it("site B's lock, unlock, record and query bundles are not site A's; monitor and regulator get them", async () => {
    const recordLock = await setLock(t.ctx, p.dm, "FT-1", { scope: "record", target: rec.B, reason: "frozen" });
    const studyLock = await setLock(t.ctx, p.dm, "FT-1", { scope: "study", reason: "database lock" });
    const ofB = [
      ...(await entriesOf("lock.set")).filter((e) => e.p.lock !== studyLock.id),
      ...(await entriesOf("lock.released")),
      await entryOf("lock.set", "lock", recordLock.id),
      ...(await entriesOf("query.opened")),
      (await entriesOf("record.saved")).find((x) => x.p.record === rec.B)!,
    ];
    expect(ofB.length).toBeGreaterThanOrEqual(5);
    for (const e of ofB) {
      const entry = (await findEntryByRef(t.ctx, e.id))!;
      for (const who of ["coordA", "invA"])
        expect(await entryVisibleTo(t.ctx, p[who], entry), `${who} ${e.text}`).toBe(false);
      for (const who of ["coordB", "invB", "mon", "reg", "dm"])
        expect(await entryVisibleTo(t.ctx, p[who], entry), `${who} ${e.text}`).toBe(true);
    }
    // A study-wide lock is about no one site: every study role may read it.
    const s = (await findEntryByRef(t.ctx, (await entryOf("lock.set", "lock", studyLock.id)).id))!;
    for (const who of ["coordA", "coordB", "mon"]) expect(await entryVisibleTo(t.ctx, p[who], s), who).toBe(true);
    // And site A's own lock is site A's.
    const lockA = await setLock(t.ctx, p.dm, "FT-1", { scope: "record", target: rec.A, reason: "frozen" });
    const a = (await findEntryByRef(t.ctx, (await entryOf("lock.set", "lock", lockA.id)).id))!;
    expect(await entryVisibleTo(t.ctx, p.coordA, a)).toBe(true);
    expect(await entryVisibleTo(t.ctx, p.coordB, a)).toBe(false);
  });

  it("old version 1 payloads, with the reason in clear, still parse", () => {
    const salt = "AAAAAAAAAAAAAAAAAAAAAA";
    const actor = "00000000-0000-4000-8000-000000000001";
    const lock = "00000000-0000-4000-8000-000000000002";
    for (const [kind, payload] of [
      ["lock.set", { v: 1, salt, lock, scope: "study", target: "FT-1", reason: "clean", actor }],
      ["lock.released", { v: 1, salt, lock, reason: "late data", actor }],
      ["delegation.revoked", { v: 1, salt, delegation: lock, reason: "left", actor }],
      ["query.answered", { v: 1, salt, query: lock, textSha256: "ab".repeat(32), actor }],
      ["participant.erased", { v: 1, salt, subject: "B-001", reasonSha256: "ab".repeat(32), actor }],
      [
        "record.saved",
        {
          v: 1,
          salt,
          record: lock,
          version: 2,
          subject: "B-001",
          form: "VS",
          formVersion: 1,
          visit: "V1",
          actor,
          reason: "typo",
          values: { sbp: 1 },
          prev: "ab".repeat(32),
        },
      ],
    ] as const)
      expect(parsePayload(kind, payload).success, kind).toBe(true);
    // A version 2 payload with the text in clear is refused, and so is a version 1 one with a hash field.
    expect(parsePayload("lock.released", { v: 2, salt, lock, reason: "late data", actor }).success).toBe(false);
    expect(parsePayload("lock.released", { v: 1, salt, lock, reasonHash: "ab".repeat(32), actor }).success).toBe(false);
    expect(parsePayload("lock.released", { v: 2, salt, lock, reasonHash: "ab".repeat(32), actor }).success).toBe(true);
  });
});
