/**
 * Records on the issue-17 form model, on PGlite and PostgreSQL: the record.saved v3 payload (identifier and free
 * text only as salted hashes, the form version's hash, calculated values, missing-data codes with their reasons'
 * hashes, the row of a repeating form), `null` as no value, every problem of an entry at once (service and HTTP
 * API), a value hidden by a correction cleared with its reason, a confirmed value outside its expected range
 * opening an automatic query, repeating rows each with its own versions, signature and proofs, and a stored identifier
 * changed behind the service named by the seal match and the integrity audit.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { createApiToken } from "../../app/accounts/tokens.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { correctRecord, recordHistory, saveRecord } from "../../app/records/records.server.ts";
import { studySealMismatches } from "../../app/records/seal-match.server.ts";
import { signRecord } from "../../app/clinical-monitoring/clinical-monitoring.server.ts";
import { loadStudyExport } from "../../app/exports/study-data.server.ts";
import { ServiceError } from "../../app/platform/errors.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { deploymentTrustPolicy } from "../../app/anchor-worker/anchor-worker.server.ts";
import { findEntryByRef, proofBundle } from "../../app/log/proofs.server.ts";
import { runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import { verifyBundle } from "../../anchoring/verifier/verify-bundle.ts";
import { parsePayload } from "../../anchoring/log/payloads.ts";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import { canonicalize } from "../../anchoring/log/canonical.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import { action as recordsAction } from "../../app/routes/api/api.v1.studies.$code.records.ts";
import { action as recordPut, loader as recordGet } from "../../app/routes/api/api.v1.studies.$code.records_.$id.ts";

const PW = "amber otter winter forty-two";
const STUDY = "FR-1";
const INITIALS = "JQD";
const BIRTH = "1961-07-04";
const NOTE = "Jane Q. Doe felt dizzy after the walk";
const MISSING_REASON = "thermometer broken at Jane's home visit";

const VS = {
  code: "VS",
  title: "Vital signs",
  version: 1,
  visits: ["V1", "V2"],
  sections: [{ name: "body", title: "Body measurements" }],
  fields: [
    { name: "initials", label: "Initials", type: "text", class: "identifier", maxLength: 5 },
    { name: "birth_date", label: "Date of birth", type: "date", class: "identifier", notFuture: true },
    {
      name: "sex",
      label: "Sex",
      type: "choice",
      required: true,
      options: [
        { value: "F", label: "Female" },
        { value: "M", label: "Male" },
      ],
    },
    { name: "pregnant", label: "Pregnant", type: "boolean", required: true, showIf: "[sex] = 'F'" },
    {
      name: "sbp",
      label: "Systolic BP",
      type: "number",
      integer: true,
      unit: "mm[Hg]",
      min: 50,
      max: 250,
      softMin: 90,
      softMax: 160,
      required: true,
    },
    {
      name: "temp",
      label: "Temperature",
      type: "number",
      unit: "Cel",
      min: 30,
      max: 45,
      required: true,
      missingCodes: ["NOT_DONE", "UNK"],
    },
    { name: "height", label: "Height", type: "number", unit: "cm", min: 50, max: 250, section: "body" },
    { name: "weight", label: "Weight", type: "number", unit: "kg", min: 2, max: 400, section: "body" },
    {
      name: "bmi",
      label: "BMI",
      type: "calc",
      expression: "[weight] / ([height] / 100) ^ 2",
      decimals: 1,
      unit: "kg/m2",
      section: "body",
    },
    { name: "visit_date", label: "Visit date", type: "date", required: true, notFuture: true },
    { name: "notes", label: "Notes", type: "text", maxLength: 500 },
  ],
};
const AE = {
  code: "AE",
  title: "Adverse events",
  version: 1,
  visits: ["LOG"],
  repeating: true,
  fields: [
    { name: "term", label: "Adverse event", type: "text", required: true, maxLength: 200 },
    { name: "serious", label: "Serious", type: "boolean", required: true },
    { name: "onset", label: "Onset date", type: "date", notFuture: true },
  ],
};
const good = (extra: Record<string, unknown> = {}) => ({
  initials: INITIALS,
  birth_date: BIRTH,
  sex: "F",
  pregnant: false,
  sbp: 120,
  temp: 36.6,
  height: 170,
  weight: 65,
  visit_date: "2026-03-01",
  notes: NOTE,
  ...extra,
});

let t: TestDb;
let inv: Principal;
let token: string;
let subject = "";

async function entry(id: string) {
  const [row] = (await t.database.execute(`SELECT payload_text, kind FROM ledger_entries WHERE id = '${id}'`)) as {
    payload_text: string;
    kind: string;
  }[];
  return { text: row.payload_text, p: JSON.parse(row.payload_text) as Record<string, any>, kind: row.kind };
}
async function newSubject() {
  const { subjectCode } = await enrollParticipant(t.ctx, inv, { study: STUDY, site: "S1" });
  await giveCompleteConsent(t.ctx, STUDY, subjectCode);
  return subjectCode;
}
async function refusal(p: Promise<unknown>): Promise<ServiceError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ServiceError);
  return err as ServiceError;
}
async function api(fn: (args: never) => Promise<Response>, method: string, url: string, params: object, body?: object) {
  const res = await fn({
    request: new Request(`http://portal.test${url}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: body ? JSON.stringify(body) : undefined,
    }),
    context: { ctx: t.ctx },
    params,
  } as never);
  return { status: res.status, body: (await res.json()) as any };
}

beforeAll(async () => {
  t = await openTestDatabase();
  t.ctx.env = { ...t.ctx.env, apiRatePerSecond: 100_000 };
  await createStudy(t.ctx, { code: STUDY, title: "Form model", sites: [{ code: "S1", name: "1" }] }, null);
  const u = await createUser(
    t.ctx,
    {
      email: "inv@fr.test",
      fullName: "Ivy Investigator",
      password: PW,
      role: "investigator",
      study: STUDY,
      site: "S1",
    },
    null,
  );
  inv = (await principalForUser(t.ctx, u.id))!;
  await importForm(t.ctx, STUDY, VS, { actorId: null });
  await importForm(t.ctx, STUDY, AE, { actorId: null });
  token = (await createApiToken(t.ctx, { study: STUDY, name: "edc" }, null)).token;
  subject = await newSubject();
});
afterAll(async () => {
  await t?.close();
});

describe(`records on the form model (${engineUnderTest()})`, () => {
  it("seals a v3 payload: identifiers and free text only as salted hashes, the form's hash, calculations", async () => {
    const r = await saveRecord(t.ctx, inv, STUDY, { subject, form: "VS", visit: "V1", data: good() });
    const e = await entry(r.entry.id);
    expect(parsePayload("record.saved", e.p).success).toBe(true);
    for (const clear of [INITIALS, BIRTH, NOTE, "Jane"]) expect(e.text).not.toContain(clear);
    const [form] = (await t.database.execute(`SELECT definition_sha256 FROM forms WHERE code = 'VS'`)) as any[];
    const sha = Buffer.from(form.definition_sha256 as Uint8Array).toString("hex");
    expect(e.p).toMatchObject({
      v: 3,
      form: "VS",
      formVersion: 1,
      formSha256: sha,
      instance: 1,
      values: { sex: "F", pregnant: false, sbp: 120, temp: 36.6, height: 170, weight: 65, visit_date: "2026-03-01" },
      calculated: { bmi: 22.5 },
      missing: {},
      reasonHash: null,
    });
    expect(e.p.hashed).toEqual({
      initials: saltedTextHash(t.ctx.crypto, e.p.salt, INITIALS),
      birth_date: saltedTextHash(t.ctx.crypto, e.p.salt, BIRTH),
      notes: saltedTextHash(t.ctx.crypto, e.p.salt, NOTE),
    });
    // The portal and the exports still hold the values (authorized users), and they match their seal.
    const h = await recordHistory(t.ctx, inv, STUDY, r.id);
    expect(h).toMatchObject({ instance: 1, matchesSeal: true, calculated: { bmi: 22.5 } });
    expect(h.data).toMatchObject({ initials: INITIALS, notes: NOTE });
    const x = (await loadStudyExport(t.ctx, STUDY))!.records.find((rec) => rec.id === r.id)!;
    expect(x.instance).toBe(1);
    expect(x.versions[0]).toMatchObject({ values: { initials: INITIALS }, calculated: { bmi: 22.5 }, missing: {} });
  });

  it("accepts null as no value and a missing-data code with its reason (hashed in the payload)", async () => {
    const r = await saveRecord(t.ctx, inv, STUDY, {
      subject,
      form: "VS",
      visit: "V2",
      data: good({ temp: null, notes: null, height: null }),
      missing: { temp: { code: "NOT_DONE", reason: MISSING_REASON } },
    });
    const e = await entry(r.entry.id);
    expect(e.text).not.toContain("thermometer");
    expect(e.p.missing).toEqual({
      temp: { code: "NOT_DONE", reasonHash: saltedTextHash(t.ctx.crypto, e.p.salt, MISSING_REASON) },
    });
    expect(e.p.values.temp).toBeUndefined();
    expect(e.p.hashed.notes).toBeUndefined();
    expect(e.p.calculated).toEqual({ bmi: null });
    const h = await recordHistory(t.ctx, inv, STUDY, r.id);
    expect(h.missing).toEqual({ temp: { code: "NOT_DONE", reason: MISSING_REASON } });
    expect(h.matchesSeal).toBe(true);
    const x = (await loadStudyExport(t.ctx, STUDY))!.records.find((rec) => rec.id === r.id)!;
    expect(x.versions[0].missing).toEqual({ temp: { code: "NOT_DONE", reason: MISSING_REASON } });
  });

  it("refuses an entry with every problem listed at once (service and HTTP API); nothing is written", async () => {
    const s = await newSubject();
    const bad = { sex: "F", sbp: 300, weight: "heavy", visit_date: "2999-01-01" };
    const before = (await t.database.execute(`SELECT count(*)::int AS n FROM records`))[0].n;
    const err = await refusal(saveRecord(t.ctx, inv, STUDY, { subject: s, form: "VS", visit: "V1", data: bad }));
    expect(err.code).toBe("invalid");
    const fields = err.problems!.map((p) => p.field);
    expect(fields).toEqual(
      expect.arrayContaining(["data.pregnant", "data.sbp", "data.temp", "data.weight", "data.visit_date"]),
    );
    expect(err.field).toBe(err.problems![0].field);
    expect(err.message).toBe(err.problems![0].message);
    expect(err.problems!.find((p) => p.field === "data.temp")!.message).toBe("Temperature is required");
    expect(err.problems!.find((p) => p.field === "data.sbp")!.message).toMatch(
      /Systolic BP must be between 50 and 250/,
    );
    expect(err.problems!.find((p) => p.field === "data.visit_date")!.message).toMatch(/cannot be in the future/);
    const res = await api(
      recordsAction,
      "POST",
      `/api/v1/studies/${STUDY}/records`,
      { code: STUDY },
      {
        subject: s,
        form: "VS",
        visit: "V1",
        data: bad,
      },
    );
    expect(res.status).toBe(422);
    expect(res.body.error.problems.map((p: { field: string }) => p.field)).toEqual(fields);
    expect(res.body.error.field).toBe(fields[0]);
    expect((await t.database.execute(`SELECT count(*)::int AS n FROM records`))[0].n).toBe(before);
  });

  it("a correction that hides a field clears its value, with the same reason for change", async () => {
    const s = await newSubject();
    const r = await saveRecord(t.ctx, inv, STUDY, {
      subject: s,
      form: "VS",
      visit: "V1",
      data: good({ pregnant: true }),
    });
    // Sex corrected to M: Pregnant is hidden, and what is still sent for it is dropped.
    const c = await correctRecord(t.ctx, inv, STUDY, r.id, {
      data: good({ sex: "M", pregnant: true }),
      reason: "sex entered wrongly",
    });
    const e = await entry(c.entry.id);
    expect(e.p.values.sex).toBe("M");
    expect(e.p.values).not.toHaveProperty("pregnant");
    expect(e.p.reasonHash).toBe(saltedTextHash(t.ctx.crypto, e.p.salt, "sex entered wrongly"));
    const h = await recordHistory(t.ctx, inv, STUDY, r.id);
    expect(h.data).not.toHaveProperty("pregnant");
    expect(h.history[1]).toMatchObject({ reason: "sex entered wrongly", matchesSeal: true });
    expect(h.history[1].changes).toEqual(
      expect.arrayContaining([
        { field: "sex", old: "F", new: "M" },
        { field: "pregnant", old: true, new: null },
      ]),
    );
  });

  it("a value outside the expected range asks for confirmation; confirmed, it opens an automatic query", async () => {
    const s = await newSubject();
    const input = { subject: s, form: "VS", visit: "V1", data: good({ sbp: 195 }) };
    const err = await refusal(saveRecord(t.ctx, inv, STUDY, input));
    expect(err.problems).toEqual([
      {
        field: "data.sbp",
        message: expect.stringMatching(/^Systolic BP is outside the expected range/),
        kind: "confirm",
      },
    ]);
    const r = await saveRecord(t.ctx, inv, STUDY, { ...input, confirmed: ["sbp"] });
    expect(r.queries).toHaveLength(1);
    const [q] = (await t.database.execute(`SELECT * FROM queries WHERE record_id = '${r.id}'`)) as any[];
    expect(q).toMatchObject({
      field: "sbp",
      status: "open",
      opened_by: inv.userId,
      text: "Systolic BP 195 mmHg is outside the expected range 90–160 mmHg (confirmed at entry)",
    });
    const [qe] = (await t.database.execute(
      `SELECT payload_text FROM ledger_entries WHERE kind = 'query.opened' AND payload_text LIKE '%${q.id}%'`,
    )) as any[];
    const qp = JSON.parse(qe.payload_text);
    expect(qp).toMatchObject({ record: r.id, field: "sbp", actor: inv.userId });
    expect(qp.textHash).toBe(saltedTextHash(t.ctx.crypto, qp.salt, q.text));
    // A correction of another field keeps the confirmed value without a new confirmation or a second query.
    const c = await correctRecord(t.ctx, inv, STUDY, r.id, { data: good({ sbp: 195, weight: 66 }), reason: "scale" });
    expect(c.queries).toBeUndefined();
    expect((await t.database.execute(`SELECT id FROM queries WHERE record_id = '${r.id}'`)).length).toBe(1);
  });

  it("a repeating form: each save adds a row, each row with its own versions, reason and proofs", async () => {
    const s = await newSubject();
    const ae = (term: string, serious = false) => ({
      subject: s,
      form: "AE",
      visit: "LOG",
      data: { term, serious, onset: "2026-02-01" },
    });
    const a = await saveRecord(t.ctx, inv, STUDY, ae("Headache"));
    const b = await saveRecord(t.ctx, inv, STUDY, ae("Nausea"));
    expect([a.instance, b.instance]).toEqual([1, 2]);
    expect(a.id).not.toBe(b.id);
    // The API's new row too; then a correction of row 2 only.
    const viaApi = await api(recordsAction, "POST", `/api/v1/studies/${STUDY}/records`, { code: STUDY }, ae("Rash"));
    expect(viaApi.status, JSON.stringify(viaApi.body)).toBe(201);
    expect(viaApi.body.instance).toBe(3);
    const put = await api(
      recordPut,
      "PUT",
      `/api/v1/studies/${STUDY}/records/${b.id}`,
      { code: STUDY, id: b.id },
      {
        data: { term: "Nausea", serious: true, onset: "2026-02-01" },
        reason: "hospitalised overnight",
      },
    );
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    expect(put.body).toMatchObject({ version: 2, instance: 2 });
    const got = await api(recordGet, "GET", `/api/v1/studies/${STUDY}/records/${b.id}`, { code: STUDY, id: b.id });
    expect(got.body).toMatchObject({ instance: 2, version: 2, data: { serious: true }, missing: {}, calculated: {} });
    const ha = await recordHistory(t.ctx, inv, STUDY, a.id);
    expect(ha.history).toHaveLength(1);
    // A signature on row 1 covers row 1 only.
    await signRecord(
      t.ctx,
      inv,
      STUDY,
      a.id,
      { meaning: "approved", password: PW },
      { ip: "127.0.0.1", userAgent: "t" },
    );
    const signed = await t.database.execute(
      `SELECT record_id, version FROM signatures WHERE record_id IN ('${a.id}', '${b.id}')`,
    );
    expect(signed).toEqual([{ record_id: a.id, version: 1 }]);
    const pa = (await entry(a.entry.id)).p;
    const pb = (await entry(put.body.entry.id)).p;
    expect([pa.instance, pb.instance, pb.version]).toEqual([1, 2, 2]);
    expect(pb.hashed.term).toBe(saltedTextHash(t.ctx.crypto, pb.salt, "Nausea"));
    expect(JSON.stringify(pb)).not.toContain("Nausea");
    await sealAll(t.ctx);
    const policy = deploymentTrustPolicy(t.ctx);
    for (const id of [a.entry.id, b.entry.id, put.body.entry.id]) {
      const proof = await proofBundle(t.ctx, (await findEntryByRef(t.ctx, id))!);
      if (proof.status !== "sealed") throw new Error(`entry ${id} is not sealed`);
      expect((await verifyBundle(t.ctx.crypto, proof.bundle, policy)).verdict).toBe("valid");
    }
    // Concurrent saves of the same log each get their own row number (assigned under a lock), none is refused.
    const burst = await Promise.all(
      ["Cough", "Fever", "Itch", "Fatigue"].map((x) => saveRecord(t.ctx, inv, STUDY, ae(x))),
    );
    expect(burst.map((x) => x.instance).sort()).toEqual([4, 5, 6, 7]);
    const rows = (await loadStudyExport(t.ctx, STUDY))!.records.filter((r) => r.subject === s && r.instance <= 3);
    expect(rows.map((r) => [r.form, r.instance, r.versions.length])).toEqual([
      ["AE", 1, 1],
      ["AE", 2, 2],
      ["AE", 3, 1],
    ]);
  });

  it("the audit is clean; a stored identifier changed behind the service is named by record", async () => {
    await sealAll(t.ctx);
    const clean = await runIntegrityAudit(t.ctx, { study: STUDY });
    expect(
      clean.findings.filter((f) => f.severity === "tamper"),
      JSON.stringify(clean.findings),
    ).toEqual([]);
    const [rv] = (await t.database.execute(
      `SELECT rv.id, rv.record_id, rv.data_text FROM record_versions rv JOIN records r ON r.id = rv.record_id
       WHERE r.form_code = 'VS' AND rv.data_text LIKE '%${INITIALS}%' ORDER BY rv.created_at LIMIT 1`,
    )) as { id: string; record_id: string; data_text: string }[];
    const changed = canonicalize({ ...JSON.parse(rv.data_text), initials: "ABC" });
    const tamper = (text: string) =>
      t.ctx.db.transaction(async (tx) => {
        await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
        await tx.execute(sql`UPDATE record_versions SET data_text = ${text} WHERE id = ${rv.id}`);
      });
    await tamper(changed);
    try {
      const studyId = (await t.database.execute(`SELECT id FROM studies WHERE code = '${STUDY}'`))[0].id as string;
      expect((await studySealMismatches(t.ctx, studyId)).map((m) => m.record)).toEqual([rv.record_id]);
      const r = await runIntegrityAudit(t.ctx, { study: STUDY });
      const found = r.findings.filter((f) => f.severity === "tamper");
      expect(found).toEqual([
        expect.objectContaining({ code: "DATA_ROW_MISMATCH", table: "record_versions", field: "hashed", id: rv.id }),
      ]);
      expect(found[0].message).toContain(`record ${rv.record_id}`);
      expect(found[0].message).not.toContain("ABC");
    } finally {
      await tamper(rv.data_text);
    }
  });
});
