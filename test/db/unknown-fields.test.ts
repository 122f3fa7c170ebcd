/**
 * Issue 16 item 10: the records API silently dropped unknown top-level fields (a `savedAt` was ignored and the
 * server's time used) while the participants API refused them. Every API body refuses unknown fields: 422 naming
 * the field, and nothing is stored.
 */
import { randomUUID } from "node:crypto";
import { count } from "drizzle-orm";
import { recordVersions } from "../../db/schema/index.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createApiToken } from "../../app/accounts/tokens.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { action as participantsAction } from "../../app/routes/api/api.v1.studies.$code.participants.ts";
import { action as recordsAction } from "../../app/routes/api/api.v1.studies.$code.records.ts";
import { action as recordPut } from "../../app/routes/api/api.v1.studies.$code.records_.$id.ts";

let t: TestDb;
let token: string;
beforeAll(async () => {
  t = await openTestDatabase();
  t.ctx.env = { ...t.ctx.env, apiRatePerSecond: 100_000 };
  await createStudy(t.ctx, { code: "UNK-1", title: "Unknown fields", sites: [{ code: "S1", name: "1" }] }, null);
  await importForm(
    t.ctx,
    "UNK-1",
    {
      code: "VITALS",
      title: "Vital signs",
      version: 1,
      visits: ["SCREENING"],
      fields: [{ name: "sbp", label: "Systolic BP", type: "number", integer: true, min: 50, max: 250 }],
    },
    { actorId: null },
  );
  token = (await createApiToken(t.ctx, { study: "UNK-1", name: "edc" }, null)).token;
});
afterAll(async () => {
  await t?.close();
});

async function call(fn: (args: never) => Promise<Response>, method: string, url: string, p: object, body: unknown) {
  const res = await fn({
    request: new Request(`http://portal.test${url}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    }),
    context: { ctx: t.ctx },
    params: p,
  } as never);
  return { status: res.status, body: (await res.json()) as { error?: { field?: string; message?: string } } };
}

const versions = async () => (await t.ctx.db.select({ n: count() }).from(recordVersions))[0].n;

describe(`API bodies refuse unknown fields on ${engineUnderTest()} (item 10)`, () => {
  it("a new record with savedAt is refused, naming savedAt; nothing is stored", async () => {
    const enrolled = await call(
      participantsAction,
      "POST",
      "/api/v1/studies/UNK-1/participants",
      { code: "UNK-1" },
      {
        site: "S1",
      },
    );
    expect(enrolled.status).toBe(201);
    const before = await versions();
    const r = await call(
      recordsAction,
      "POST",
      "/api/v1/studies/UNK-1/records",
      { code: "UNK-1" },
      {
        subject: "S1-001",
        form: "VITALS",
        visit: "SCREENING",
        data: { sbp: 120 },
        savedAt: "2020-01-01T00:00:00Z",
      },
    );
    expect(r.status).toBe(422);
    expect(r.body.error?.field).toBe("savedAt");
    expect(r.body.error?.message).toMatch(/unknown field savedAt/);
    expect(await versions()).toBe(before);
  });

  it("a correction with an unknown field is refused, naming it", async () => {
    const id = randomUUID();
    const r = await call(
      recordPut,
      "PUT",
      `/api/v1/studies/UNK-1/records/${id}`,
      { code: "UNK-1", id },
      {
        data: { sbp: 121 },
        reason: "typo",
        correctedBy: "someone else",
      },
    );
    expect(r.status).toBe(422);
    expect(r.body.error?.field).toBe("correctedBy");
    expect(r.body.error?.message).toMatch(/unknown field correctedBy/);
  });

  it("enrolment keeps refusing unknown fields, naming them", async () => {
    const r = await call(
      participantsAction,
      "POST",
      "/api/v1/studies/UNK-1/participants",
      { code: "UNK-1" },
      {
        site: "S1",
        consentedAt: "2020-01-01",
      },
    );
    expect(r.status).toBe(422);
    expect(r.body.error?.field).toBe("consentedAt");
  });
});
