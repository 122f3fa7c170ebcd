/**
 * The integration API for records on PGlite and PostgreSQL, through the real route handlers: enrol, enter,
 * correct with a reason (prev chain), history; bad input of every kind; idempotent replays; tokens of other
 * studies; and 50 concurrent clients losing or duplicating nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createApiToken } from "../../app/accounts/tokens.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { toHex } from "../../anchoring/log/bytes.ts";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import { action as participantsAction } from "../../app/routes/api/api.v1.studies.$code.participants.ts";
import { action as recordsAction } from "../../app/routes/api/api.v1.studies.$code.records.ts";
import { action as recordPut, loader as recordGet } from "../../app/routes/api/api.v1.studies.$code.records_.$id.ts";

const VITALS = (version: number) => ({
  code: "VITALS",
  title: "Vital signs",
  version,
  visits: ["SCREENING", "WEEK4"],
  fields: [
    {
      name: "sbp",
      label: "Systolic BP",
      type: "number",
      integer: true,
      unit: "mmHg",
      min: 50,
      max: 250,
      required: true,
    },
    { name: "temp", label: "Temperature", type: "number", unit: "Cel", min: 30, max: 45 },
    { name: "visit_date", label: "Visit date", type: "date", required: true },
  ],
});

let t: TestDb;
let token: string;
let foreign: string;
beforeAll(async () => {
  t = await openTestDatabase();
  t.ctx.env = { ...t.ctx.env, apiRatePerSecond: 100_000 };
  await createStudy(t.ctx, { code: "API-1", title: "API", sites: [{ code: "S1", name: "1" }] }, null);
  await createStudy(t.ctx, { code: "API-2", title: "Other", sites: [{ code: "S1", name: "1" }] }, null);
  await importForm(t.ctx, "API-1", VITALS(1), { actorId: null });
  await importForm(t.ctx, "API-1", VITALS(2), { draft: true, actorId: null });
  token = (await createApiToken(t.ctx, { study: "API-1", name: "edc" }, null)).token;
  foreign = (await createApiToken(t.ctx, { study: "API-2", name: "other" }, null)).token;
});
afterAll(async () => {
  await t?.close();
});

type Res = { status: number; body: any; headers: Headers };
async function call(
  fn: (args: never) => Promise<Response>,
  method: string,
  url: string,
  params: Record<string, string>,
  opts: { token?: string | null; body?: unknown; raw?: string; key?: string } = {},
): Promise<Res> {
  const headers: Record<string, string> = {};
  if (opts.token !== null) headers.authorization = `Bearer ${opts.token ?? token}`;
  if (opts.key) headers["idempotency-key"] = opts.key;
  let body: string | undefined;
  if (opts.raw !== undefined || opts.body !== undefined) {
    headers["content-type"] = "application/json";
    body = opts.raw ?? JSON.stringify(opts.body);
  }
  const res = await fn({
    request: new Request(`http://portal.test${url}`, { method, headers, body }),
    context: { ctx: t.ctx },
    params,
  } as never);
  return { status: res.status, body: await res.json(), headers: res.headers };
}
/** Enrol through the API; an enrolled subject is given a complete consent (no CRF data before it, ADR 0021). */
const enrol = async (site = "S1", tok?: string) => {
  const r = await call(
    participantsAction,
    "POST",
    "/api/v1/studies/API-1/participants",
    { code: "API-1" },
    { body: { site }, token: tok },
  );
  if (r.status === 201) await giveCompleteConsent(t.ctx, "API-1", r.body.subject);
  return r;
};
const post = (body: unknown, opts: { key?: string; token?: string | null; raw?: string } = {}) =>
  call(recordsAction, "POST", "/api/v1/studies/API-1/records", { code: "API-1" }, { body, ...opts });
const put = (id: string, body: unknown) =>
  call(recordPut, "PUT", `/api/v1/studies/API-1/records/${id}`, { code: "API-1", id }, { body });
const get = (id: string, tok?: string) =>
  call(recordGet, "GET", `/api/v1/studies/API-1/records/${id}`, { code: "API-1", id }, { token: tok });

describe(`records API on ${engineUnderTest()}`, () => {
  it(
    "enrols, enters a record (201 + pending entry), corrects it with a reason (prev chain), " + "and shows the history",
    async () => {
      const p = await enrol();
      expect(p.status).toBe(201);
      expect(p.body.subject).toBe("S1-001");
      const r = await post({
        subject: "S1-001",
        form: "VITALS",
        visit: "SCREENING",
        data: { sbp: 120, temp: 36.6, visit_date: "2026-03-01" },
      });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      expect(r.body).toMatchObject({
        id: expect.any(String),
        version: 1,
        entry: { id: expect.any(String), status: "pending" },
      });
      const noReason = await put(r.body.id, { data: { sbp: 122, temp: 36.6, visit_date: "2026-03-01" } });
      expect(noReason.status).toBe(422);
      expect(noReason.body.error.field).toBe("reason");
      const same = await put(r.body.id, { data: { sbp: 120, temp: 36.6, visit_date: "2026-03-01" }, reason: "typo" });
      expect(same.status).toBe(422);
      const c = await put(r.body.id, {
        data: { sbp: 122, temp: 36.6, visit_date: "2026-03-01" },
        reason: "transcription error",
      });
      expect(c.status, JSON.stringify(c.body)).toBe(200);
      expect(c.body.version).toBe(2);
      const [v1, v2] = await t.database.execute(
        `SELECT payload_hash, payload_text FROM ledger_entries ` +
          `WHERE id IN ('${r.body.entry.id}', '${c.body.entry.id}') ` +
          `ORDER BY payload_text LIKE '%"version":2%'`,
      );
      const corrected = JSON.parse(String(v2.payload_text));
      expect(corrected).toMatchObject({
        version: 2,
        prev: toHex(v1.payload_hash as Uint8Array),
        values: { sbp: 122 },
      });
      // The reason enters the payload only as a hash salted with the payload's own salt (ADR 0020).
      expect(corrected.reason).toBeUndefined();
      expect(corrected.reasonHash).toBe(saltedTextHash(t.ctx.crypto, corrected.salt, "transcription error"));
      const h = await get(r.body.id);
      expect(h.status).toBe(200);
      expect(h.body).toMatchObject({
        subject: "S1-001",
        form: "VITALS",
        visit: "SCREENING",
        version: 2,
        data: { sbp: 122 },
      });
      expect(h.body.history.map((x: any) => [x.version, x.reason, x.entry.status])).toEqual([
        [1, null, "pending"],
        [2, "transcription error", "pending"],
      ]);
      expect(h.body.history[1].changes).toEqual([{ field: "sbp", old: 120, new: 122 }]);
      // Numbers are kept as parsed: 36.6 stays 36.6 in the stored canonical text.
      const [ver] = await t.database.execute(
        `SELECT data_text FROM record_versions WHERE record_id = '${r.body.id}' AND version = 1`,
      );
      expect(String(ver.data_text)).toBe('{"sbp":120,"temp":36.6,"visit_date":"2026-03-01"}');
    },
  );

  it(
    "refuses invalid fields, wrong form versions, unknown subjects/visits, duplicates, " +
      "oversize and non-JSON bodies",
    async () => {
      const ok = { subject: "S1-001", form: "VITALS", visit: "WEEK4", data: { sbp: 118, visit_date: "2026-04-01" } };
      const cases: [string, Promise<Res>, number, string][] = [
        ["out of range", post({ ...ok, data: { sbp: 300, visit_date: "2026-04-01" } }), 422, "data.sbp"],
        ["not an integer", post({ ...ok, data: { sbp: 120.5, visit_date: "2026-04-01" } }), 422, "data.sbp"],
        ["missing required", post({ ...ok, data: { sbp: 120 } }), 422, "data.visit_date"],
        ["unknown field", post({ ...ok, data: { ...ok.data, colour: "red" } }), 422, "data.colour"],
        ["bad date", post({ ...ok, data: { sbp: 120, visit_date: "2026-02-30" } }), 422, "data.visit_date"],
        ["draft form version", post({ ...ok, formVersion: 2 }), 422, "formVersion"],
        ["unknown form version", post({ ...ok, formVersion: 7 }), 422, "formVersion"],
        ["unknown form", post({ ...ok, form: "NOPE" }), 422, "form"],
        ["unknown visit", post({ ...ok, visit: "WEEK99" }), 422, "visit"],
        ["unknown subject", post({ ...ok, subject: "S1-999" }), 422, "subject"],
        ["duplicate", post({ ...ok, visit: "SCREENING" }), 409, "visit"],
        ["not JSON", post(undefined, { raw: "{nope" }), 400, "body"],
        ["oversize", post({ ...ok, data: { ...ok.data, pad: "x".repeat(70_000) } }), 413, "body"],
      ];
      const before = Number((await t.database.execute(`SELECT count(*)::int AS n FROM ledger_entries`))[0].n);
      for (const [name, p, status, field] of cases) {
        const r = await p;
        expect(r.status, `${name}: ${JSON.stringify(r.body)}`).toBe(status);
        expect(r.body.error.field, name).toBe(field);
      }
      expect(Number((await t.database.execute(`SELECT count(*)::int AS n FROM ledger_entries`))[0].n)).toBe(before);
    },
  );

  it("needs a token of the study: missing 401, unknown 401, another study's 404", async () => {
    const body = { subject: "S1-001", form: "VITALS", visit: "WEEK4", data: { sbp: 118, visit_date: "2026-04-01" } };
    expect((await post(body, { token: null })).status).toBe(401);
    expect((await post(body, { token: "ts_nope" })).status).toBe(401);
    expect((await post(body, { token: foreign })).status).toBe(404);
    const id = String((await t.database.execute(`SELECT id FROM records LIMIT 1`))[0].id);
    expect((await get(id, foreign)).status).toBe(404);
    expect((await get("00000000-0000-4000-8000-000000000000")).status).toBe(404);
  });

  it(
    "a replay with the same Idempotency-Key returns the same record and writes nothing; " +
      "another body under it is refused",
    async () => {
      await enrol();
      const body = {
        subject: "S1-002",
        form: "VITALS",
        visit: "SCREENING",
        data: { sbp: 130, visit_date: "2026-03-02" },
      };
      const a = await post(body, { key: "retry-1" });
      expect(a.status).toBe(201);
      const entries = Number((await t.database.execute(`SELECT count(*)::int AS n FROM ledger_entries`))[0].n);
      const b = await post(body, { key: "retry-1" });
      expect(b.status).toBe(201);
      expect(b.body).toEqual(a.body);
      expect(b.headers.get("idempotent-replay")).toBe("true");
      expect(Number((await t.database.execute(`SELECT count(*)::int AS n FROM ledger_entries`))[0].n)).toBe(entries);
      const c = await post({ ...body, data: { sbp: 131, visit_date: "2026-03-02" } }, { key: "retry-1" });
      expect(c.status).toBe(409);
      expect(c.body.error.field).toBe("Idempotency-Key");
    },
  );

  it("50 concurrent clients (each retrying once with its Idempotency-Key): every record exactly once", async () => {
    const subjects: string[] = [];
    for (let i = 0; i < 50; i++) subjects.push((await enrol()).body.subject);
    const send = (s: string, i: number) =>
      post(
        { subject: s, form: "VITALS", visit: "WEEK4", data: { sbp: 100 + (i % 100), visit_date: "2026-05-01" } },
        { key: `load-${s}` },
      );
    const first = await Promise.all(subjects.map(send));
    const again = await Promise.all(subjects.map(send)); // every client retries (a lost response)
    expect(first.every((r) => r.status === 201)).toBe(true);
    expect(again.map((r) => r.body.id)).toEqual(first.map((r) => r.body.id));
    const [{ n }] = await t.database.execute(`SELECT count(*)::int AS n FROM records WHERE visit = 'WEEK4'`);
    expect(Number(n)).toBe(50);
    const [{ e }] = await t.database.execute(
      `SELECT count(*)::int AS e FROM record_versions v JOIN records r ON r.id = v.record_id WHERE r.visit = 'WEEK4'`,
    );
    expect(Number(e)).toBe(50);
    // The same request sent twice at the same moment under one key: one write, the same answer twice.
    const pairs = await Promise.all(
      subjects.slice(0, 10).map(async (s) => {
        const body = { subject: s, form: "VITALS", visit: "SCREENING", data: { sbp: 111, visit_date: "2026-03-03" } };
        return Promise.all([post(body, { key: `race-${s}` }), post(body, { key: `race-${s}` })]);
      }),
    );
    for (const [x, y] of pairs) {
      expect([x.status, y.status]).toEqual([201, 201]);
      expect(y.body.id).toBe(x.body.id);
    }
    const [{ m }] = await t.database.execute(
      `SELECT count(*)::int AS m FROM records WHERE visit = 'SCREENING' ` +
        `AND participant_id IN (SELECT id FROM participants WHERE subject_code IN (${subjects
          .slice(0, 10)
          .map((s) => `'${s}'`)
          .join(",")}))`,
    );
    expect(Number(m)).toBe(10);
  });
});
