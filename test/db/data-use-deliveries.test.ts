/**
 * Data-use deliveries (issue 22, ADR 0070) on PGlite and PostgreSQL: only participants whose choice in force allows
 * the purpose (not those who declined, withdrew or were never asked), pseudonyms of the delivery's own key, the
 * manifest's SHA-256 sealed and matching the package, no subject code, site or ledger reference in the ZIP, downloads
 * by the requester until expiry (then 410), a purpose nobody consented to refused with the reason, and (PostgreSQL) a
 * choice committed during a delivery applies to the next one.
 */
import { createHash } from "node:crypto";
import { sql } from "drizzle-orm";
import { strToU8, unzipSync, zipSync } from "fflate";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eligibilityForPurpose, recordChoiceChange } from "../../app/data-sharing/choices.server.ts";
import { decideDataUseRequest } from "../../app/data-sharing/decisions.server.ts";
import { downloadDelivery, makeDelivery, verifyDeliveryPackage } from "../../app/data-sharing/deliveries.server.ts";
import { membersHash } from "../../app/data-sharing/members-hash.ts";
import { getDataUseRequest, submitDataUseRequest } from "../../app/data-sharing/requests.server.ts";
import { ServiceError } from "../../app/platform/errors.server.ts";
import { addConsentDocument } from "../../app/records/forms.server.ts";
import { correctRecord } from "../../app/records/records.server.ts";
import { engineUnderTest, openTestDatabase, type TestDb } from "../helpers/db.ts";
import { type DataUseStudy, dataUseStudy, requestBody, STUDY } from "./data-use-setup.ts";

let t: TestDb;
let s: DataUseStudy;

beforeAll(async () => {
  t = await openTestDatabase();
  s = await dataUseStudy(t);
}, 240_000);
afterAll(async () => {
  await t?.close();
});

async function refusal(p: Promise<unknown>): Promise<ServiceError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ServiceError);
  return err as ServiceError;
}

async function approved(over: Record<string, unknown> = {}, days = 30) {
  const r = await submitDataUseRequest(t.ctx, s.p.res, STUDY, requestBody(over));
  await decideDataUseRequest(t.ctx, s.p.dac, STUDY, r.id, { outcome: "approved", reason: "ok", expiresInDays: days });
  return r.id;
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);
/** Rows changed behind the log (a superuser with the append-only triggers off). */
async function tamper(statements: string[]) {
  await t.ctx.db.transaction(async (tx) => {
    await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
    for (const x of statements) await tx.execute(sql.raw(x));
  });
}
const countOf = async (q: string) => Number((await t.database.execute(q))[0].n);
const deliveriesOf = (id: string) =>
  countOf(`SELECT count(*)::int AS n FROM data_use_deliveries WHERE request_id = '${id}'`);
const refusedEvents = (action: string) =>
  t.database.execute(`SELECT detail FROM audit_events WHERE action = '${action}' ORDER BY id`);
async function packageOf(requestId: string, deliveryId: string) {
  const d = await downloadDelivery(t.ctx, s.p.res, STUDY, requestId, deliveryId);
  const files = unzipSync(d.bytes);
  return { d, files, manifest: JSON.parse(text(files["manifest.json"])), csv: text(files["data.csv"]) };
}
const csvRows = (csv: string) =>
  csv
    .trim()
    .split("\r\n")
    .slice(1)
    .map((l) => l.split(",").map((c) => c.replace(/^"|"$/g, "")));

describe(`data-use deliveries on ${engineUnderTest()}`, () => {
  let requestId = "";
  let first: Awaited<ReturnType<typeof makeDelivery>>;

  beforeAll(async () => {
    requestId = await approved();
    first = await makeDelivery(t.ctx, s.p.dac, STUDY, requestId);
  });

  it("holds only those who said yes and have not withdrawn; counts the others by reason", async () => {
    expect(first.participantCount).toBe(3); // yes1, yes2, yes3
    const members = await t.database.execute(
      `SELECT participant_id FROM data_use_delivery_participants WHERE delivery_id = '${first.id}'`,
    );
    expect(members.map((m) => String(m.participant_id)).sort()).toEqual([s.pid.yes1, s.pid.yes2, s.pid.yes3].sort());
    const { manifest, csv } = await packageOf(requestId, first.id);
    expect(manifest.counts).toEqual({
      included: 3,
      agreedWithoutDataInPeriod: 0,
      excluded: { declined: 1, withdrawn: 1, notAsked: 1 },
    });
    expect(manifest.choicesHonoured).toEqual({
      items: ["future_research"],
      rule: "participants who said yes and have not withdrawn",
    });
    expect(manifest.purpose).toMatchObject({ code: "HRESCH", words: "other medical research" });
    expect(manifest.fields).toEqual(["VITALS.dbp", "VITALS.sbp"]);
    expect(manifest.period).toMatchObject({ from: "2020-01-01", to: "2099-12-31" });
    expect(manifest.delivery).toBe(first.id);
    expect(manifest.study).toBe(STUDY);
    // yes1..yes3 entered sbp 110..112 and dbp 70..72; no1 (113), wd (114) and paper (115) are left out.
    const rows = csvRows(csv);
    expect(csv.split("\r\n")[0].replaceAll('"', "")).toBe(
      "participant,form,visit,instance,entered_on,VITALS.dbp,VITALS.sbp",
    );
    expect(rows.map((r) => Number(r[6])).sort()).toEqual([110, 111, 112]);
    expect(rows.map((r) => r[0]).every((x) => /^P-[0-9A-F]{10}$/.test(x))).toBe(true);
    const [row] = await t.database.execute(`SELECT excluded FROM data_use_deliveries WHERE id = '${first.id}'`);
    expect(row.excluded).toEqual({ declined: 1, withdrawn: 1, notAsked: 1 });
  });

  it("the manifest's SHA-256 is the one sealed in data_use.delivered, with membersHash over the rows", async () => {
    const { files, manifest } = await packageOf(requestId, first.id);
    const sha = createHash("sha256").update(files["manifest.json"]).digest("hex");
    expect(sha).toBe(first.manifestSha256);
    const [e] = await t.database.execute(`SELECT kind, payload_text FROM ledger_entries WHERE id = '${first.entryId}'`);
    expect(e.kind).toBe("data_use.delivered");
    const payload = JSON.parse(String(e.payload_text));
    expect(payload).toMatchObject({
      delivery: first.id,
      request: requestId,
      purpose: "HRESCH",
      manifestSha256: sha,
      participants: 3,
      excluded: { declined: 1, withdrawn: 1, notAsked: 1 },
      expiresAt: manifest.expiresAt,
      actor: s.ids.dac,
    });
    expect(payload.membersHash).toBe(membersHash(t.ctx.crypto, payload.salt, [s.pid.yes1, s.pid.yes2, s.pid.yes3]));
    expect(createHash("sha256").update(files["data.csv"]).digest("hex")).toBe(manifest.files["data.csv"].sha256);
    const [row] = await t.database.execute(`SELECT manifest FROM data_use_deliveries WHERE id = '${first.id}'`);
    expect(row.manifest).toBe(text(files["manifest.json"]));
  });

  it("the package names no subject code, site, participant id, ledger entry, seq or leaf hash", async () => {
    const { files } = await packageOf(requestId, first.id);
    expect(Object.keys(files).sort()).toEqual(["README.txt", "data.csv", "manifest.json"]);
    const all = Object.values(files).map(text).join("\n");
    for (const code of Object.values(s.subj)) expect(all).not.toContain(code);
    for (const id of Object.values(s.pid)) expect(all).not.toContain(id);
    expect(all).not.toMatch(/\bS1\b|Site one/);
    const entries = await t.database.execute(
      "SELECT id, encode(payload_hash, 'hex') AS h FROM ledger_entries " +
        `WHERE study_id = (SELECT id FROM studies WHERE code = '${STUDY}')`,
    );
    for (const e of entries) {
      expect(all).not.toContain(String(e.id));
      expect(all).not.toContain(String(e.h));
    }
    expect(all).not.toMatch(/"seq"|leafHash|leaf_hash|entry_id|bundle/i);
    expect(text(files["README.txt"])).toMatch(/only participants who said yes and have not withdrawn/);
  });

  it("the same participant has another pseudonym in another delivery; the key is stored encrypted", async () => {
    const second = await makeDelivery(t.ctx, s.p.dac, STUDY, requestId);
    const a = csvRows((await packageOf(requestId, first.id)).csv).map((r) => r[0]);
    const b = csvRows((await packageOf(requestId, second.id)).csv).map((r) => r[0]);
    expect(a).toHaveLength(3);
    expect(b).toHaveLength(3);
    expect(a.filter((x) => b.includes(x))).toEqual([]);
    const keys = await t.database.execute(
      `SELECT pseudonym_key_enc AS k FROM data_use_deliveries WHERE id IN ('${first.id}', '${second.id}')`,
    );
    expect(keys).toHaveLength(2);
    for (const k of keys) expect((k.k as Uint8Array).length).toBe(1 + 12 + 44 + 16); // AES-GCM of base64(32 bytes)
  });

  it("writes the export's audit event with the participants and the purpose, and each download's", async () => {
    const events = await t.database.execute(
      "SELECT detail, actor_user_id FROM audit_events WHERE action = 'export.data_use'",
    );
    const ev = events.find((e) => (e.detail as { delivery: string }).delivery === first.id);
    expect(ev?.actor_user_id).toBe(s.ids.dac);
    expect(ev?.detail).toMatchObject({ purpose: "HRESCH", request: requestId });
    expect([...((ev?.detail ?? {}) as { participants: string[] }).participants].sort()).toEqual(
      [s.pid.yes1, s.pid.yes2, s.pid.yes3].sort(),
    );
    const before = await t.database.execute(
      "SELECT count(*)::int AS n FROM audit_events WHERE action = 'data_use.downloaded' " +
        `AND actor_user_id = '${s.ids.res}'`,
    );
    await downloadDelivery(t.ctx, s.p.res, STUDY, requestId, first.id);
    const after = await t.database.execute(
      "SELECT count(*)::int AS n FROM audit_events WHERE action = 'data_use.downloaded' " +
        `AND actor_user_id = '${s.ids.res}'`,
    );
    expect(Number(after[0].n)).toBe(Number(before[0].n) + 1);
  });

  it("only the researcher who asked downloads, until it expires; after, 410 in words", async () => {
    expect((await refusal(downloadDelivery(t.ctx, s.p.res2, STUDY, requestId, first.id))).code).toBe("not_found");
    expect((await refusal(downloadDelivery(t.ctx, s.p.dac, STUDY, requestId, first.id))).code).toBe("forbidden");
    const d = await getDataUseRequest(t.ctx, s.p.res, STUDY, requestId);
    const expiresAt = new Date(d.deliveries.find((x) => x.id === first.id)!.expiresAt);
    const created = new Date(d.deliveries.find((x) => x.id === first.id)!.createdAt);
    expect(expiresAt.getTime() - created.getTime()).toBe(30 * 86_400_000);
    const justBefore = await downloadDelivery(
      t.ctx,
      s.p.res,
      STUDY,
      requestId,
      first.id,
      new Date(expiresAt.getTime() - 1),
    );
    expect(justBefore.bytes.length).toBeGreaterThan(0);
    const gone = await refusal(downloadDelivery(t.ctx, s.p.res, STUDY, requestId, first.id, expiresAt));
    expect(gone.code).toBe("gone");
    expect(gone.status).toBe(410);
    expect(gone.message).toMatch(/expired on \d{4}-\d{2}-\d{2}.*Ask the data access committee for a new delivery/);
  });

  it("a purpose nobody was asked about is refused with the reason; so is a declined request", async () => {
    const train = await approved({ purpose: "TRAIN" });
    const err = await refusal(makeDelivery(t.ctx, s.p.dac, STUDY, train));
    expect(err.code).toBe("conflict");
    expect(err.status).toBe(409);
    expect(err.message).toMatch(/^Nothing can be delivered: /);
    // The reason is the eligibility's own, in words (nobody was asked about training; one withdrew).
    const study = await getDataUseRequest(t.ctx, s.p.dac, STUDY, train);
    const why = await eligibilityForPurpose(t.ctx, study.study.id, "TRAIN");
    expect(why.allowed).toEqual([]);
    expect(why.reason).toBeTruthy();
    expect(err.message).toBe(`Nothing can be delivered: ${why.reason}`);
    const [n] = await t.database.execute(
      `SELECT count(*)::int AS n FROM data_use_deliveries WHERE request_id = '${train}'`,
    );
    expect(Number(n.n)).toBe(0);
    // The refusal is an audit event with the reason's code (no free text); the page shows the empty result at once.
    const refused = (await refusedEvents("data_use.delivery_refused")).map((e) => e.detail as Record<string, unknown>);
    expect(refused.find((d) => d.request === train)).toEqual({
      request: train,
      purpose: "TRAIN",
      code: "purpose_not_asked",
    });
    expect(study.eligibleNow).toEqual({ allowed: 0, reason: why.reason });
    expect((await getDataUseRequest(t.ctx, s.p.res, STUDY, requestId)).eligibleNow).toEqual({
      allowed: 3,
      reason: null,
    });
    const declined = await submitDataUseRequest(t.ctx, s.p.res, STUDY, requestBody());
    await decideDataUseRequest(t.ctx, s.p.dac, STUDY, declined.id, { outcome: "declined", reason: "no" });
    expect((await refusal(makeDelivery(t.ctx, s.p.dac, STUDY, declined.id))).message).toMatch(/declined/);
    const undecided = await submitDataUseRequest(t.ctx, s.p.res, STUDY, requestBody());
    expect((await refusal(makeDelivery(t.ctx, s.p.dac, STUDY, undecided.id))).message).toMatch(/decide the request/);
  });

  it("no data collected in the period: refused, saying so", async () => {
    const old = await approved({ periodFrom: "2020-01-01", periodTo: "2020-12-31" });
    const err = await refusal(makeDelivery(t.ctx, s.p.dac, STUDY, old));
    expect(err.code).toBe("conflict");
    expect(err.message).toMatch(/none of the 3 participants who agreed .* has data .* from 2020-01-01 to 2020-12-31/);
  });

  it("only the committee makes deliveries", async () => {
    for (const k of ["res", "inv", "reg", "admin"])
      expect((await refusal(makeDelivery(t.ctx, s.p[k], STUDY, requestId))).code, k).toBe("forbidden");
  });

  it("choices come from approved consent documents only (a draft's items are not honoured)", async () => {
    const doc = { code: "ICF2", title: "Consent 2", irbName: "IRB", irbApprovedOn: "2026-01-01", version: "1.0" };
    const body = "# C\n\n## P\nWhy.\n\n## O\n[optional:teaching for:HRESCH] Teaching.\n";
    await addConsentDocument(t.ctx, s.p.admin, STUDY, { ...doc, bodyMarkdown: body });
    await tamper(["UPDATE consent_documents SET status = 'draft' WHERE code = 'ICF2'"]);
    const d = await makeDelivery(t.ctx, s.p.dac, STUDY, requestId);
    expect((await packageOf(requestId, d.id)).manifest.choicesHonoured.items).toEqual(["future_research"]);
    await tamper(["UPDATE consent_documents SET status = 'approved' WHERE code = 'ICF2'"]);
  });

  it("a choice row or record altered behind the log: 409 naming subject and table, nothing delivered", async () => {
    const cases: [string, string, string[], string[]][] = [
      [
        "no1",
        "consent_signatures",
        [
          "UPDATE consent_signatures SET options = '{\"future_research\": true}'::jsonb " +
            `WHERE participant_id = '${s.pid.no1}' AND countersigns IS NULL`,
        ],
        [
          "UPDATE consent_signatures SET options = '{\"future_research\": false}'::jsonb " +
            `WHERE participant_id = '${s.pid.no1}' AND countersigns IS NULL`,
        ],
      ],
      [
        "wd",
        "consent_withdrawals",
        [
          `CREATE TABLE saved_wd AS SELECT * FROM consent_withdrawals WHERE participant_id = '${s.pid.wd}'`,
          `DELETE FROM consent_withdrawals WHERE participant_id = '${s.pid.wd}'`,
        ],
        ["INSERT INTO consent_withdrawals SELECT * FROM saved_wd", "DROP TABLE saved_wd"],
      ],
      [
        "yes1",
        "record_versions",
        [`UPDATE record_versions SET data_text = replace(data_text, '110', '99') WHERE record_id = '${s.rid.yes1}'`],
        [`UPDATE record_versions SET data_text = replace(data_text, '99', '110') WHERE record_id = '${s.rid.yes1}'`],
      ],
    ];
    for (const [who, table, change, undo] of cases) {
      const before = await deliveriesOf(requestId);
      await tamper(change);
      const err = await refusal(makeDelivery(t.ctx, s.p.dac, STUDY, requestId));
      await tamper(undo);
      expect(err.status, table).toBe(409);
      expect(err.message, table).toContain(`subject ${s.subj[who]} (${table})`);
      expect(err.message, table).toMatch(/^Nothing was delivered: .* do not match their sealed entries/);
      expect(err.message, table).not.toMatch(/future_research|110|99/);
      expect(await deliveriesOf(requestId), table).toBe(before);
      const last = (await refusedEvents("data_use.delivery_refused")).at(-1)?.detail as Record<string, unknown>;
      expect(last, table).toEqual({ request: requestId, purpose: "HRESCH", code: "seal_mismatch" });
    }
    // Undone: a delivery is made again.
    expect((await makeDelivery(t.ctx, s.p.dac, STUDY, requestId)).participantCount).toBe(3);
  });

  it("a package altered in storage is not served (409, named) and verifyDeliveryPackage names it", async () => {
    const d = await makeDelivery(t.ctx, s.p.dac, STUDY, requestId);
    const [row] = await t.database.execute(`SELECT content FROM data_use_deliveries WHERE id = '${d.id}'`);
    const files = unzipSync(row.content as Uint8Array);
    const hexOf = (b: Uint8Array) => Buffer.from(b).toString("hex");
    const put = (f: Record<string, Uint8Array>) =>
      tamper([`UPDATE data_use_deliveries SET content = '\\x${hexOf(zipSync(f))}'::bytea WHERE id = '${d.id}'`]);
    const stored = async () => {
      const [r] = await t.database.execute(
        `SELECT id, entry_id, content, manifest_sha256 FROM data_use_deliveries WHERE id = '${d.id}'`,
      );
      return verifyDeliveryPackage(t.ctx, {
        id: String(r.id),
        entryId: String(r.entry_id),
        content: r.content as Uint8Array,
        manifestSha256: r.manifest_sha256 as Uint8Array,
      });
    };
    expect(await stored()).toBeNull();
    const csv = text(files["data.csv"]).replace(/,11(\d)\r\n/, ",19$1\r\n");
    const m = JSON.parse(text(files["manifest.json"]));
    for (const [altered, what] of [
      [{ ...files, "data.csv": strToU8(csv) }, /data\.csv does not match the SHA-256 in manifest\.json/],
      [{ ...files, "manifest.json": strToU8(JSON.stringify({ ...m, fields: [] })) }, /manifest\.json does not match/],
    ] as const) {
      await put(altered);
      expect(await stored()).toMatch(what);
      const err = await refusal(downloadDelivery(t.ctx, s.p.res, STUDY, requestId, d.id));
      expect(err.status).toBe(409);
      expect(err.message).toMatch(what);
      expect(err.message).toMatch(/is not served/);
    }
    await put(files);
    expect((await downloadDelivery(t.ctx, s.p.res, STUDY, requestId, d.id)).bytes.length).toBeGreaterThan(0);
  });

  it.runIf(engineUnderTest() === "postgres")(
    "a choice changed and committed during a delivery applies to the next delivery (PostgreSQL, two connections)",
    async () => {
      const id = await approved();
      let committed = false;
      const during = await makeDelivery(t.ctx, s.p.dac, STUDY, id, {
        afterEligibility: async () => {
          // Other connections of the pool: both commit while the delivery's transaction is open.
          await recordChoiceChange(t.ctx, s.p.inv, STUDY, s.subj.yes3, { choices: { future_research: false } });
          await correctRecord(t.ctx, s.p.inv, STUDY, s.rid.yes1, { data: { sbp: 140, dbp: 90 }, reason: "typo" });
          committed = true;
        },
      });
      expect(committed).toBe(true);
      // The delivery follows its one snapshot: yes3 was allowed when it began, and yes1's value is the one before
      // the correction (at READ COMMITTED the records read after the hook would hold 140).
      expect(during.participantCount).toBe(3);
      const inDuring = await t.database.execute(
        `SELECT participant_id FROM data_use_delivery_participants WHERE delivery_id = '${during.id}'`,
      );
      expect(inDuring.map((r) => String(r.participant_id))).toContain(s.pid.yes3);
      // yes3 said no since: the package is no longer served (read here from its stored row).
      expect((await refusal(downloadDelivery(t.ctx, s.p.res, STUDY, id, during.id))).status).toBe(409);
      const [stored] = await t.database.execute(`SELECT content FROM data_use_deliveries WHERE id = '${during.id}'`);
      const sbpDuring = csvRows(text(unzipSync(stored.content as Uint8Array)["data.csv"])).map((r) => Number(r[6]));
      expect(sbpDuring.sort()).toEqual([110, 111, 112]);
      const next = await makeDelivery(t.ctx, s.p.dac, STUDY, id);
      expect(next.participantCount).toBe(2);
      const { manifest, csv } = await packageOf(id, next.id);
      expect(manifest.counts.excluded).toEqual({ declined: 2, withdrawn: 1, notAsked: 1 });
      expect(
        csvRows(csv)
          .map((r) => Number(r[6]))
          .sort(),
      ).toEqual([111, 140]);
    },
  );

  it.skipIf(engineUnderTest() === "postgres")(
    "PGlite has one connection: a change made during a delivery waits for it, then applies to the next delivery",
    async () => {
      // The race needs two connections (PostgreSQL, above). Here the change started during the delivery can only
      // run after the delivery's transaction ends: the same promise, the next delivery reflects it.
      const id = await approved();
      let change: Promise<unknown> | null = null;
      const d = await makeDelivery(t.ctx, s.p.dac, STUDY, id, {
        afterEligibility: async () => {
          change = recordChoiceChange(t.ctx, s.p.inv, STUDY, s.subj.yes3, { choices: { future_research: false } });
        },
      });
      await change;
      expect(d.participantCount).toBe(3);
      expect((await makeDelivery(t.ctx, s.p.dac, STUDY, id)).participantCount).toBe(2);
    },
  );

  // Last: yes2's "no" stays (staff record only a "no"; the race tests above turn yes3's to "no").
  it("someone in the package said no since it was made: the download is refused (409, a count, audited)", async () => {
    const d = await makeDelivery(t.ctx, s.p.dac, STUDY, requestId);
    await recordChoiceChange(t.ctx, s.p.inv, STUDY, s.subj.yes2, { choices: { future_research: false } });
    const err = await refusal(downloadDelivery(t.ctx, s.p.res, STUDY, requestId, d.id));
    expect(err.status).toBe(409);
    expect(err.message).toBe(
      "1 participant changed their choices since this package was made: " +
        "ask the data access committee for a new delivery",
    );
    const last = (await refusedEvents("data_use.download_refused")).at(-1)?.detail;
    expect(last).toEqual({ delivery: d.id, request: requestId, code: "choices_changed", participants: 1 });
    // A new delivery leaves them out and is served.
    const next = await makeDelivery(t.ctx, s.p.dac, STUDY, requestId);
    expect(next.participantCount).toBe(d.participantCount - 1);
    expect((await downloadDelivery(t.ctx, s.p.res, STUDY, requestId, next.id)).bytes.length).toBeGreaterThan(0);
  });
});
