/**
 * An automatic query opened by a write made with a study API token names that token (id and name) in its sealed
 * `query.opened` payload (v3), as the record version it was opened with does: every write names who made it. The
 * integrity audit of the study stays clean. On PGlite and PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { sealedEntriesOf } from "../helpers/sealed-entries.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createApiToken } from "../../app/accounts/tokens.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import { parsePayload } from "../../anchoring/log/payloads.ts";
import { action as participantsAction } from "../../app/routes/api/api.v1.studies.$code.participants.ts";
import { action as recordsAction } from "../../app/routes/api/api.v1.studies.$code.records.ts";

const STUDY = "AQT-1";
const FORM = {
  code: "VITALS",
  title: "Vital signs",
  version: 1,
  visits: ["SCREENING"],
  fields: [
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
  ],
};

let t: TestDb;
let token: string;
let tokenId: string;

async function call(fn: (args: never) => Promise<Response>, url: string, params: object, body: unknown) {
  const res = await fn({
    request: new Request(`http://portal.test${url}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    }),
    context: { ctx: t.ctx },
    params,
  } as never);
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

beforeAll(async () => {
  t = await openTestDatabase();
  t.ctx.env = { ...t.ctx.env, apiRatePerSecond: 100_000 };
  await createStudy(t.ctx, { code: STUDY, title: "Token queries", sites: [{ code: "S1", name: "1" }] }, null);
  await importForm(t.ctx, STUDY, FORM, { actorId: null });
  const created = await createApiToken(t.ctx, { study: STUDY, name: "EDC bridge" }, null);
  token = created.token;
  tokenId = created.id;
});
afterAll(async () => {
  await t?.close();
});

describe(`automatic query opened with an API token (${engineUnderTest()})`, () => {
  it("names the token (id and name) in the sealed query.opened payload; the integrity audit stays clean", async () => {
    const p = await call(participantsAction, `/api/v1/studies/${STUDY}/participants`, { code: STUDY }, { site: "S1" });
    expect(p.status, JSON.stringify(p.body)).toBe(201);
    await giveCompleteConsent(t.ctx, STUDY, p.body.subject);
    const r = await call(
      recordsAction,
      `/api/v1/studies/${STUDY}/records`,
      { code: STUDY },
      { subject: p.body.subject, form: "VITALS", visit: "SCREENING", data: { sbp: 195 }, confirmed: ["sbp"] },
    );
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    expect(r.body.queries).toHaveLength(1);

    await sealAll(t.ctx);
    const sealed = [...(await sealedEntriesOf(t.ctx, STUDY)).values()];
    const opened = sealed.filter((e) => e.kind === "query.opened");
    expect(opened).toHaveLength(1);
    const payload = opened[0].payload;
    expect(payload).toMatchObject({
      v: 3,
      query: r.body.queries[0],
      record: r.body.id,
      field: "sbp",
      actor: null,
      token: { id: tokenId, name: "EDC bridge" },
    });
    expect(parsePayload("query.opened", payload).success).toBe(true);

    const audit = await runIntegrityAudit(t.ctx, { study: STUDY });
    expect(
      audit.findings.filter((f) => f.severity === "tamper"),
      JSON.stringify(audit.findings),
    ).toEqual([]);
  });
});
