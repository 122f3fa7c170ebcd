/**
 * Group commit of new records (issue 19, ADR 0041), on PGlite and PostgreSQL: concurrent saveRecord calls share one
 * transaction (shown by the committer's counters and by the rows' xmin), each acknowledged with its own record, ledger
 * entry and audit event; a bad item among good ones (a locked subject, one without consent, a form already entered
 * at that visit, an invalid value) fails alone with the error it gets on its own; an
 * Idempotency-Key replayed inside a group; the rows of a repeating form numbered without gaps under concurrency; a
 * group whose transaction fails retried item by item, so only the offender fails; the integrity audit clean.
 */
import net from "node:net";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { testEnv } from "../helpers/env.ts";
import { openDatabase } from "../../db/client.ts";
import { contextFor } from "../../app/platform/context.server.ts";
import { recordPaperConsent, hashScan } from "../../app/consent/paper-consent.server.ts";
import { findUserByEmail } from "../../db/queries/users.ts";
import { Readable } from "node:stream";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { configureRecordGroupCommit, recordGroupCommitStats, saveRecord } from "../../app/records/records.server.ts";
import { setLock } from "../../app/clinical-monitoring/clinical-monitoring.server.ts";
import { consentStatus } from "../../app/consent/status.server.ts";
import { subjectFacts } from "../../app/records/bulk-checks.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import { parsePayload } from "../../anchoring/log/payloads.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import type { Idempotency } from "../../app/records/idempotency.server.ts";

const PW = "amber otter winter forty-two";
const STUDY = "GC-1";
const STUDY2 = "GC-2";
const VISITS = Array.from({ length: 10 }, (_, i) => `V${i + 1}`);
let t: TestDb;
const p: Record<string, Principal> = {};
const subjects: string[] = [];

const rows = (q: string) => t.database.execute(q);
const vitals = (subject: string, visit: string, sbp = 120) => ({ subject, form: "VS", visit, data: { sbp } });
const idemOf = (key: string, body: string): Idempotency => ({
  scope: "test",
  key,
  requestHash: new Uint8Array(Buffer.alloc(32, body)),
});

async function enrolConsented() {
  const s = (await enrollParticipant(t.ctx, p.inv, { study: STUDY, site: "S1" })).subjectCode;
  await giveCompleteConsent(t.ctx, STUDY, s);
  return s;
}

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(t.ctx, { code: STUDY, title: "Group commit", sites: [{ code: "S1", name: "Site 1" }] }, null);
  for (const [k, role, site] of [
    ["inv", "investigator", "S1"],
    ["coord", "coordinator", "S1"],
    ["dm", "data_manager", undefined],
  ] as const) {
    const u = await createUser(
      t.ctx,
      { email: `${k}@gc.test`, fullName: `${k} person`, password: PW, role, study: STUDY, site },
      null,
    );
    p[k] = (await principalForUser(t.ctx, u.id))!;
  }
  await importForm(
    t.ctx,
    STUDY,
    {
      code: "VS",
      title: "Vitals",
      version: 1,
      visits: VISITS,
      fields: [{ name: "sbp", label: "SBP", type: "number", integer: true, min: 50, max: 250, required: true }],
    },
    { actorId: null },
  );
  await importForm(
    t.ctx,
    STUDY,
    {
      code: "AE",
      title: "Adverse events",
      version: 1,
      visits: ["ANY"],
      repeating: true,
      fields: [{ name: "term", label: "Term", type: "text", maxLength: 100, required: true }],
    },
    { actorId: null },
  );
  for (let i = 0; i < 10; i++) subjects.push(await enrolConsented());
  // A second study (its rows are changed behind the log by the tie test, so the audit of STUDY stays clean).
  await createStudy(t.ctx, { code: STUDY2, title: "Group commit 2", sites: [{ code: "S1", name: "Site 1" }] }, null);
  const u2 = await createUser(
    t.ctx,
    { email: "inv2@gc.test", fullName: "inv2 person", password: PW, role: "investigator", study: STUDY2, site: "S1" },
    null,
  );
  p.inv2 = (await principalForUser(t.ctx, u2.id))!;
  await importForm(
    t.ctx,
    STUDY2,
    {
      code: "VS",
      title: "Vitals",
      version: 1,
      visits: VISITS,
      fields: [{ name: "sbp", label: "SBP", type: "number", integer: true, min: 50, max: 250, required: true }],
    },
    { actorId: null },
  );
});
afterAll(async () => {
  await t?.close();
});

const isPg = engineUnderTest() === "postgres";

/** Poll `cond` until it is true (no fixed sleeps: the machine may be slow). */
async function waitFor(what: string, cond: () => Promise<boolean>, tries = 600) {
  for (let i = 0; i < tries; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** Sessions of the test database waiting on a lock (of the given kind) right now. */
async function lockWaiters(kind: "advisory" | "tuple" | "any") {
  const [{ n }] = await rows(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
     ${kind === "any" ? "" : `AND wait_event = '${kind}'`}`,
  );
  return Number(n);
}

/**
 * A TCP proxy in front of PostgreSQL that, once armed, forwards the next COMMIT to the server and cuts that
 * connection when the server answers it (its CommandComplete), without passing the answer on: the transaction is
 * committed, the client sees a dropped connection (a COMMIT reply lost).
 */
async function commitReplyDropper(target: URL) {
  let armed = false;
  let hangArmed = false;
  let dropped = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    sockets.add(client);
    sockets.add(upstream);
    let buf = Buffer.alloc(0);
    let started = false;
    let cut = false;
    let hung = false;
    client.on("data", (chunk) => {
      upstream.write(chunk);
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (!started) {
          if (buf.length < 8) break;
          const len = buf.readInt32BE(0);
          if (buf.length < len) break;
          if (buf.readInt32BE(4) === 196608) started = true; // the startup message (protocol 3.0)
          buf = buf.subarray(len);
          continue;
        }
        if (buf.length < 5) break;
        const len = buf.readInt32BE(1);
        if (buf.length < len + 1) break;
        const type = String.fromCharCode(buf[0]);
        const body = buf.subarray(5, len + 1);
        // A simple query's text, or a Parse message's (after the statement's name).
        const text = (type === "P" ? body.subarray(body.indexOf(0) + 1) : body).toString("utf8").trim().toLowerCase();
        if (armed && (type === "Q" || type === "P") && text.startsWith("commit")) {
          armed = false;
          cut = true;
        }
        if (hangArmed && (type === "Q" || type === "P") && text.includes("set_config('lock_timeout'")) {
          hangArmed = false;
          hung = true;
        }
        buf = buf.subarray(len + 1);
      }
    });
    upstream.on("data", (chunk) => {
      if (hung) return; // a hung connection: the server's answers never arrive
      if (cut && chunk.includes("COMMIT\0")) {
        dropped++;
        client.destroy();
        upstream.destroy();
        return;
      }
      client.write(chunk);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end);
    upstream.on("error", end);
    client.on("close", end);
    upstream.on("close", end);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = new URL(target.toString());
  url.hostname = "127.0.0.1";
  url.port = String((server.address() as net.AddressInfo).port);
  return {
    url: url.toString(),
    arm: () => {
      armed = true;
    },
    /** The connection of the next group transaction stops answering (a hung connection). */
    hangNextGroup: () => {
      hangArmed = true;
    },
    dropped: () => dropped,
    close: () =>
      new Promise<void>((r) => {
        for (const x of sockets) x.destroy();
        server.close(() => r());
      }),
  };
}

describe(`group commit of new records on ${engineUnderTest()}`, () => {
  it("40 concurrent saves: acknowledged after commit, sharing transactions; every entry and event there", async () => {
    const before = recordGroupCommitStats(t.ctx.db);
    const jobs = subjects.slice(0, 4).flatMap((s) => VISITS.map((v, i) => vitals(s, v, 100 + i)));
    expect(jobs).toHaveLength(40);
    const saved = await Promise.all(jobs.map((j) => saveRecord(t.ctx, p.inv, STUDY, j)));
    const after = recordGroupCommitStats(t.ctx.db);
    // 40 items in fewer transactions than items: batching happened, with no fallback.
    expect(after.items - before.items).toBe(40);
    expect(after.groups - before.groups).toBeLessThan(40);
    expect(after.largest).toBeGreaterThan(1);
    expect(after.fallbacks).toBe(before.fallbacks);
    const ids = saved.map((s) => s.id);
    expect(new Set(ids).size).toBe(40);
    const recs = await rows(
      `SELECT r.id, r.xmin::text AS x, rv.entry_id, e.payload_text, e.xmin::text AS ex
       FROM records r JOIN record_versions rv ON rv.record_id = r.id JOIN ledger_entries e ON e.id = rv.entry_id
       WHERE r.id IN (${ids.map((id) => `'${id}'`).join(",")})`,
    );
    expect(recs).toHaveLength(40);
    // Rows of one record commit together, and several records share one transaction id.
    for (const r of recs) expect(r.ex).toBe(r.x);
    expect(new Set(recs.map((r) => r.x)).size).toBeLessThan(40);
    for (const s of saved) {
      const r = recs.find((x) => x.id === s.id)!;
      expect(r.entry_id).toBe(s.entry.id);
      const payload = parsePayload("record.saved", JSON.parse(String(r.payload_text)));
      expect(payload.success).toBe(true);
      expect(payload.data).toMatchObject({ record: s.id, version: 1, form: "VS", instance: 1, actor: p.inv.userId });
    }
    const events = await rows(
      `SELECT a.detail, a.actor_user_id, e.kind, a.xmin::text AS x FROM audit_events a
       JOIN ledger_entries e ON e.id = a.entry_id WHERE a.action = 'record.create'`,
    );
    for (const s of saved) {
      const ev = events.filter((e) => (e.detail as { record?: string }).record === s.id);
      expect(ev).toHaveLength(1);
      expect(ev[0]).toMatchObject({ kind: "audit.event", actor_user_id: p.inv.userId });
      expect(ev[0].detail).toMatchObject({ entry: s.entry.id, version: 1, form: "VS" });
      expect(ev[0].x).toBe(recs.find((r) => r.id === s.id)!.x);
    }
  });

  it("a bad item among good ones fails alone, with the error it gets on its own; the others commit", async () => {
    const [locked, good1, good2] = subjects.slice(4, 7);
    const noConsent = (await enrollParticipant(t.ctx, p.inv, { study: STUDY, site: "S1" })).subjectCode;
    await setLock(t.ctx, p.dm, STUDY, { scope: "subject", target: locked, reason: "frozen for review" });
    await saveRecord(t.ctx, p.inv, STUDY, vitals(good1, "V1"));
    // What each bad item gets on its own (one at a time): the errors to expect inside a group.
    const alone = async (j: unknown) => saveRecord(t.ctx, p.inv, STUDY, j).catch((e: Error) => e);
    const bad = [
      vitals(locked, "V9"),
      vitals(noConsent, "V9"),
      vitals(good1, "V1"), // already entered at V1
      vitals(good2, "V9", 999), // outside its limits
    ];
    const expected: unknown[] = [];
    for (const j of bad) expected.push(await alone(j));
    for (const e of expected) expect(e).toBeInstanceOf(Error);
    expect(String(expected[0])).toMatch(/locked/);
    expect(String(expected[1])).toMatch(/not consented/);
    expect(String(expected[2])).toMatch(/already has form VS at visit V1/);
    expect(String(expected[3])).toMatch(/SBP must be between 50 and 250/);
    const before = recordGroupCommitStats(t.ctx.db);
    const goods = [good1, good2].flatMap((s) => ["V2", "V3", "V4", "V5"].map((v) => vitals(s, v)));
    // Interleaved: good, bad, good, ... all at once.
    const jobs = goods.flatMap((g, i) => (i < bad.length ? [g, bad[i]] : [g]));
    const results = await Promise.allSettled(jobs.map((j) => saveRecord(t.ctx, p.inv, STUDY, j)));
    const after = recordGroupCommitStats(t.ctx.db);
    expect(after.fallbacks).toBe(before.fallbacks);
    // The invalid value is refused before the queue; the 12 others went through fewer transactions than items.
    expect(after.items - before.items).toBe(jobs.length - 1);
    expect(after.groups - before.groups).toBeLessThan(jobs.length - 1);
    jobs.forEach((j, i) => {
      const b = bad.indexOf(j);
      const r = results[i];
      if (b < 0) expect(r.status, JSON.stringify(j)).toBe("fulfilled");
      else {
        expect(r.status).toBe("rejected");
        const err = (r as PromiseRejectedResult).reason as Error & { code?: string; field?: string };
        const want = expected[b] as Error & { code?: string; field?: string };
        expect({ m: err.message, c: err.code, f: err.field }).toEqual({ m: want.message, c: want.code, f: want.field });
      }
    });
    const [{ n }] = await rows(
      `SELECT count(*)::int AS n FROM records r JOIN participants p ON p.id = r.participant_id
       WHERE p.subject_code IN ('${locked}', '${noConsent}') OR (p.subject_code = '${good2}'
       AND r.visit = 'V9')`,
    );
    expect(n).toBe(0);
  });

  it("an Idempotency-Key replayed inside a group returns the first response; one record", async () => {
    const s = subjects[7];
    const idem = idemOf("gc-replay-1", "a");
    const before = recordGroupCommitStats(t.ctx.db);
    const [a, b, ...others] = await Promise.all([
      saveRecord(t.ctx, p.inv, STUDY, vitals(s, "V1", 130), idem),
      saveRecord(t.ctx, p.inv, STUDY, vitals(s, "V1", 130), idem),
      ...[8, 9].map((i) => saveRecord(t.ctx, p.inv, STUDY, vitals(subjects[i], "V1"))),
    ]);
    expect(b).toEqual(a);
    expect(others.map((o) => o.version)).toEqual([1, 1]);
    const after = recordGroupCommitStats(t.ctx.db);
    expect(after.fallbacks).toBe(before.fallbacks);
    const [{ n }] = await rows(
      `SELECT count(*)::int AS n FROM records r JOIN participants p ON p.id = r.participant_id
       WHERE p.subject_code = '${s}' AND r.visit = 'V1'`,
    );
    expect(n).toBe(1);
    const [{ k }] = await rows(`SELECT count(*)::int AS k FROM idempotency_keys WHERE key = 'gc-replay-1'`);
    expect(k).toBe(1);
  });

  it("rows of a repeating form saved at once get distinct instances 1..n", async () => {
    const s = subjects[1];
    const saved = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        saveRecord(t.ctx, p.inv, STUDY, { subject: s, form: "AE", visit: "ANY", data: { term: `event ${i}` } }),
      ),
    );
    expect(saved.map((x) => x.instance).sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    const inst = await rows(
      `SELECT r.instance FROM records r JOIN participants p ON p.id = r.participant_id
       WHERE p.subject_code = '${s}' AND r.form_code = 'AE' ORDER BY r.instance`,
    );
    expect(inst.map((r) => Number(r.instance))).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
  });

  it("a group whose transaction fails is retried item by item: only the offender fails", async () => {
    // The same Idempotency-Key for two different repeating rows: their group's idempotency INSERT violates the key's
    // uniqueness, the group rolls back, and its items are retried one by one.
    const s = subjects[2];
    const idem1 = idemOf("gc-clash", "x");
    const idem2 = idemOf("gc-clash", "y");
    const before = recordGroupCommitStats(t.ctx.db);
    // A first save keeps the committer busy so that the next ones queue up and form one group.
    const results = await Promise.allSettled([
      saveRecord(t.ctx, p.inv, STUDY, vitals(subjects[7], "V2")),
      saveRecord(t.ctx, p.inv, STUDY, { subject: s, form: "AE", visit: "ANY", data: { term: "one" } }, idem1),
      saveRecord(t.ctx, p.inv, STUDY, vitals(subjects[8], "V2")),
      saveRecord(t.ctx, p.inv, STUDY, { subject: s, form: "AE", visit: "ANY", data: { term: "two" } }, idem2),
      saveRecord(t.ctx, p.inv, STUDY, vitals(subjects[9], "V2")),
    ]);
    const after = recordGroupCommitStats(t.ctx.db);
    expect(after.fallbacks).toBeGreaterThan(before.fallbacks);
    // The other records all commit; of the two rows under one key, the one that reaches the database first is
    // written, the other is refused as a different request under a used key (as two such requests are today).
    for (const i of [0, 2, 4]) expect(results[i].status).toBe("fulfilled");
    const clash = [results[1], results[3]];
    expect(clash.map((r) => r.status).sort()).toEqual(["fulfilled", "rejected"]);
    const refused = clash.find((r) => r.status === "rejected") as PromiseRejectedResult;
    expect(String(refused.reason)).toMatch(/already used for a different request/);
    const kept = clash[0].status === "fulfilled" ? "one" : "two";
    const terms = await rows(
      `SELECT rv.data_text FROM records r JOIN record_versions rv ON rv.record_id = r.id
       JOIN participants p ON p.id = r.participant_id WHERE p.subject_code = '${s}' AND r.form_code = 'AE'
       AND (rv.data_text LIKE '%"one"%' OR rv.data_text LIKE '%"two"%')`,
    );
    expect(terms.map((r) => r.data_text)).toEqual([`{"term":"${kept}"}`]);
  });

  it("the bulk consent check says consented only where consentStatus does", async () => {
    const fresh = (await enrollParticipant(t.ctx, p.inv, { study: STUDY, site: "S1" })).subjectCode;
    const all = await rows(`SELECT id FROM participants`);
    const facts = await subjectFacts(
      t.ctx.db,
      all.map((r) => String(r.id)),
    );
    expect(facts.size).toBe(all.length);
    let consented = 0;
    for (const r of all) {
      const st = await consentStatus(t.ctx, String(r.id));
      const f = facts.get(String(r.id))!;
      if (f.consented && !f.withdrawn) {
        consented++;
        expect(st.state).toBe("consented");
      }
      if (st.state === "consented") expect(f.consented).toBe(true);
      expect(f.withdrawn).toBe(st.withdrawals.length > 0);
    }
    expect(consented).toBeGreaterThan(0);
    expect(fresh).toBeTruthy();
  });

  it("a COMMIT that fails rejects every item of the group with its error; nothing is written again", async () => {
    // A deferred constraint trigger refuses one subject's V10 record at COMMIT, and counts its attempts in a
    // sequence (not rolled back).
    const s = await enrolConsented();
    const [{ id: pid }] = await rows(
      `SELECT p.id FROM participants p JOIN studies s ON s.id = p.study_id WHERE s.code = '${STUDY}'
       AND p.subject_code = '${s}'`,
    );
    await rows(`CREATE SEQUENCE gc_commit_attempts`);
    await rows(`CREATE FUNCTION gc_fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
      IF NEW.visit = 'V10' AND NEW.participant_id = '${pid}' THEN
        PERFORM nextval('gc_commit_attempts'); RAISE EXCEPTION 'gc test: refused at commit';
      END IF; RETURN NULL; END $$`);
    await rows(`CREATE CONSTRAINT TRIGGER gc_fail_at_commit AFTER INSERT ON records DEFERRABLE INITIALLY DEFERRED
      FOR EACH ROW EXECUTE FUNCTION gc_fail_at_commit()`);
    try {
      const before = recordGroupCommitStats(t.ctx.db);
      const err = await saveRecord(t.ctx, p.inv, STUDY, vitals(s, "V10")).catch((e: Error) => e);
      expect(String(err)).toMatch(/gc test: refused at commit/);
      const [{ n }] = await rows(`SELECT last_value::int AS n FROM gc_commit_attempts`);
      expect(n, "COMMIT attempts of the record").toBe(1);
      const after = recordGroupCommitStats(t.ctx.db);
      expect(after.fallbacks).toBe(before.fallbacks);
      expect(after.uncertain).toBe(before.uncertain + 1);
    } finally {
      await rows(`DROP TRIGGER gc_fail_at_commit ON records`);
      await rows(`DROP FUNCTION gc_fail_at_commit()`);
      await rows(`DROP SEQUENCE gc_commit_attempts`);
    }
  });

  it.skipIf(!isPg)("a COMMIT whose reply is lost is not written again: one row of a repeating form", async () => {
    const proxy = await commitReplyDropper(new URL(t.url!));
    const database = await openDatabase({ url: proxy.url, poolSize: 4 });
    try {
      const ctx = contextFor({ ...testEnv(), databaseUrl: proxy.url }, database);
      const s = subjects[3];
      proxy.arm();
      const r = await saveRecord(ctx, p.inv, STUDY, { subject: s, form: "AE", visit: "ANY", data: { term: "lost" } })
        .then(() => "saved")
        .catch((e: Error) => e);
      expect(proxy.dropped()).toBe(1);
      const terms = await rows(
        `SELECT count(*)::int AS n FROM records r JOIN record_versions rv ON rv.record_id = r.id
         JOIN participants p ON p.id = r.participant_id WHERE p.subject_code = '${s}' AND r.form_code = 'AE'
         AND rv.data_text = '{"term":"lost"}'`,
      );
      expect(terms[0].n, "records written").toBe(1);
      // The writer is told that the outcome is unknown (the connection's error), never a second record.
      expect(r).toBeInstanceOf(Error);
    } finally {
      await database.close();
      await proxy.close();
    }
  });

  it.skipIf(!isPg)("a group hung on a dead connection gives its slot to the next group", async () => {
    const proxy = await commitReplyDropper(new URL(t.url!));
    const database = await openDatabase({ url: proxy.url, poolSize: 4 });
    let hung: Promise<unknown> = Promise.resolve();
    try {
      const ctx = contextFor({ ...testEnv(), databaseUrl: proxy.url }, database);
      configureRecordGroupCommit(database.db, { stallMs: 200 });
      proxy.hangNextGroup();
      hung = saveRecord(ctx, p.inv, STUDY, vitals(subjects[4], "V10")).catch((e: Error) => e);
      await waitFor("the group to stall", async () => recordGroupCommitStats(database.db).stalled === 1);
      // The next save is a group of its own on another connection, and commits.
      const next = await saveRecord(ctx, p.inv, STUDY, vitals(subjects[5], "V9"));
      expect(next.version).toBe(1);
      expect(recordGroupCommitStats(database.db).groups).toBeGreaterThanOrEqual(1);
    } finally {
      await proxy.close(); // the hung connection is cut: its save settles (retried on its own, or refused)
      await hung;
      await database.close();
    }
  });

  it.skipIf(!isPg)(
    "a group waiting on a study's row lock does not stop saves of another study",
    async () => {
      const s1 = subjects[5];
      const s2 = (await enrollParticipant(t.ctx, p.inv2, { study: STUDY2, site: "S1" })).subjectCode;
      await giveCompleteConsent(t.ctx, STUDY2, s2);
      const holder = postgres(t.url!, { max: 1, onnotice: () => {} });
      let release!: () => void;
      const held = new Promise<void>((r) => {
        release = r;
      });
      let locked!: () => void;
      const isLocked = new Promise<void>((r) => {
        locked = r;
      });
      // Another transaction holds GC-1's row FOR UPDATE (as a settings, schedule or lock change does).
      const tx = holder.begin(async (sql) => {
        await sql`SELECT 1 FROM studies WHERE code = ${STUDY} FOR UPDATE`;
        locked();
        await held;
      });
      try {
        await isLocked;
        const blocked = saveRecord(t.ctx, p.inv, STUDY, vitals(s1, "V10"));
        await waitFor("the group to wait on the row lock", async () => (await lockWaiters("any")) > 0);
        // Another study's save goes through while GC-1's row is still locked.
        const other = await Promise.race([
          saveRecord(t.ctx, p.inv2, STUDY2, vitals(s2, "V1")),
          new Promise<never>((_, rej) =>
            setTimeout(() => rej(new Error("another study's save waited behind the locked group")), 60_000).unref(),
          ),
        ]);
        expect(other.version).toBe(1);
        release();
        await tx;
        // The blocked one is saved once the lock goes (one by one, waiting as a lone write does).
        expect((await blocked).version).toBe(1);
      } finally {
        release();
        await tx.catch(() => {});
        await holder.end();
      }
    },
    120_000,
  );

  it.skipIf(!isPg)(
    "repeating-form slot locks are taken in the batch API's order: no deadlock",
    async () => {
      const [a, b, c] = [subjects[6], subjects[7], subjects[8]];
      const pids = await rows(`SELECT p.id, p.subject_code FROM participants p JOIN studies s ON s.id = p.study_id
         WHERE s.code = '${STUDY}' AND p.subject_code IN ('${a}', '${b}')`);
      const keyOf = (pid: unknown) => `records:${pid}:AE:ANY`;
      // The slot the batch API locks first: the lower lock id (hash).
      const hashes = await rows(
        `SELECT k FROM (VALUES ('${keyOf(pids[0].id)}'), ('${keyOf(pids[1].id)}')) AS v(k)
       ORDER BY hashtextextended(k, 0)`,
      );
      const [first, second] = hashes.map((h) => String(h.k));
      const subjectOf = (k: string) => String(pids.find((x) => keyOf(x.id) === k)!.subject_code);
      // Long lock waits for the group here, so that the order of its waits shows.
      configureRecordGroupCommit(t.ctx.db, { lockTimeoutMs: 60_000 });
      const batchLike = postgres(t.url!, { max: 1, onnotice: () => {} });
      const rowHolder = postgres(t.url!, { max: 1, onnotice: () => {} });
      const gate = () => {
        let open!: () => void;
        const p = new Promise<void>((r) => {
          open = r;
        });
        return { p, open };
      };
      const proceed = gate();
      const holding = gate();
      const unblock = gate();
      const blocking = gate();
      // Another writer (as a batch does) takes the first slot now and the second one later.
      const tx = batchLike.begin(async (sql) => {
        await sql`SET LOCAL deadlock_timeout = '10ms'`;
        await sql`SELECT pg_advisory_xact_lock(hashtextextended(${first}, 0))`;
        holding.open();
        await proceed.p;
        await sql`SELECT pg_advisory_xact_lock(hashtextextended(${second}, 0))`;
      });
      // A subject's row held FOR UPDATE keeps a first group in flight while the next group forms.
      const rows2 = rowHolder.begin(async (sql) => {
        await sql`SELECT 1 FROM participants p JOIN studies s ON s.id = p.study_id
          WHERE s.code = ${STUDY} AND p.subject_code = ${c} FOR UPDATE OF p`;
        blocking.open();
        await unblock.p;
      });
      try {
        await Promise.all([holding.p, blocking.p]);
        const ae = (s: string, term: string) =>
          saveRecord(t.ctx, p.inv, STUDY, { subject: s, form: "AE", visit: "ANY", data: { term } });
        const filler = saveRecord(t.ctx, p.inv, STUDY, vitals(c, "V10"));
        await waitFor("the first group to wait on the row", async () => (await lockWaiters("any")) > 0);
        // The next group: the second slot's item, then the first slot's.
        const later = ae(subjectOf(second), "slot order 2");
        await waitFor("the first item to queue", async () => recordGroupCommitStats(t.ctx.db).queued === 1);
        const sooner = ae(subjectOf(first), "slot order 1");
        await waitFor("the second item to queue", async () => recordGroupCommitStats(t.ctx.db).queued === 2);
        unblock.open();
        await rows2;
        await filler;
        await waitFor("the group to wait on a slot", async () => (await lockWaiters("advisory")) > 0);
        proceed.open();
        await tx; // no deadlock: the group holds no slot while it waits for the first
        const results = await Promise.allSettled([later, sooner]);
        expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled"]);
      } finally {
        proceed.open();
        unblock.open();
        await tx.catch(() => {});
        await rows2.catch(() => {});
        await batchLike.end();
        await rowHolder.end();
        configureRecordGroupCommit(t.ctx.db, {});
      }
    },
    120_000,
  );

  it("a tie between the latest consents is never plainly consented: the per-record check decides", async () => {
    // Two subjects, each with an attested and an unattested paper consent at the same instant (in both orders).
    const doc = { document: "ICF", version: "1.0" };
    const uploader = (await principalForUser(t.ctx, (await findUserByEmail(t.ctx.db, "inv2@gc.test"))!.id))!;
    const unattested = async (s: string) => {
      const scan = await hashScan(Readable.from([Buffer.from(`second consent form of ${s}`)]));
      return (await recordPaperConsent(t.ctx, uploader, STUDY2, s, doc, scan)).id;
    };
    const tied: string[] = [];
    for (const order of ["attested first", "unattested first"]) {
      const s = (await enrollParticipant(t.ctx, p.inv2, { study: STUDY2, site: "S1" })).subjectCode;
      let a: string;
      let u: string;
      if (order === "attested first") {
        a = await giveCompleteConsent(t.ctx, STUDY2, s);
        u = await unattested(s);
      } else {
        u = await unattested(s);
        a = await giveCompleteConsent(t.ctx, STUDY2, s);
      }
      // Behind the log (this study is not audited here): the append-only guard set aside for the one change.
      await rows(`ALTER TABLE paper_consents DISABLE TRIGGER paper_consents_guard`);
      await rows(`UPDATE paper_consents SET uploaded_at = (SELECT uploaded_at FROM paper_consents WHERE id = '${a}')
        WHERE id = '${u}'`);
      await rows(`ALTER TABLE paper_consents ENABLE TRIGGER paper_consents_guard`);
      tied.push(s);
    }
    const ids = await rows(
      `SELECT p.id, p.subject_code FROM participants p JOIN studies s ON s.id = p.study_id WHERE s.code = '${STUDY2}'
       AND p.subject_code IN (${tied.map((s) => `'${s}'`).join(",")})`,
    );
    const facts = await subjectFacts(
      t.ctx.db,
      ids.map((r) => String(r.id)),
    );
    for (const r of ids) {
      expect(facts.get(String(r.id))!.consented, `${r.subject_code}: a tie is not plain`).toBe(false);
      // The per-record check decides, as on its own.
      const st = await consentStatus(t.ctx, String(r.id));
      const saved = await saveRecord(t.ctx, p.inv2, STUDY2, vitals(String(r.subject_code), "V2"))
        .then(() => "saved")
        .catch((e: Error) => e.message);
      if (st.state === "consented") expect(saved).toBe("saved");
      else expect(saved).toMatch(/consent/);
    }
  });

  it("the integrity audit is clean after the group writes", async () => {
    await sealAll(t.ctx);
    const r = await runIntegrityAudit(t.ctx, { study: STUDY });
    expect(
      r.findings.filter((f) => f.severity === "tamper"),
      JSON.stringify(r.findings),
    ).toEqual([]);
  });
});
