/**
 * A correction refused for several reasons lists every problem at once: a missing reason for change (in plain
 * words, field "reason") together with each wrong value, in one refusal (service and HTTP API); nothing is stored.
 * On PGlite and PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { createApiToken } from "../../app/accounts/tokens.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { correctRecord, saveRecord } from "../../app/records/records.server.ts";
import { ServiceError } from "../../app/platform/errors.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import { action as recordPut } from "../../app/routes/api/api.v1.studies.$code.records_.$id.ts";

const STUDY = "CRP-1";
const FORM = {
  code: "VITALS",
  title: "Vital signs",
  version: 1,
  visits: ["SCREENING"],
  fields: [
    { name: "sbp", label: "Systolic BP", type: "number", integer: true, min: 50, max: 250, required: true },
    { name: "visit_date", label: "Visit date", type: "date", required: true },
  ],
};
const GOOD = { sbp: 120, visit_date: "2026-03-01" };
const REASON = { field: "reason", message: "Give a reason for the change" };

let t: TestDb;
let inv: Principal;
let token: string;

async function refusal(p: Promise<unknown>): Promise<ServiceError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ServiceError);
  return err as ServiceError;
}
const stored = async (recordId: string) =>
  (
    await t.database.execute(
      `SELECT (SELECT count(*)::int FROM record_versions WHERE record_id = '${recordId}') AS versions,
              (SELECT count(*)::int FROM ledger_entries WHERE kind = 'record.saved') AS entries`,
    )
  )[0];

beforeAll(async () => {
  t = await openTestDatabase();
  t.ctx.env = { ...t.ctx.env, apiRatePerSecond: 100_000 };
  await createStudy(t.ctx, { code: STUDY, title: "Corrections", sites: [{ code: "S1", name: "1" }] }, null);
  const u = await createUser(
    t.ctx,
    {
      email: "inv@crp.test",
      fullName: "Ivy Investigator",
      password: "amber otter winter forty-two",
      role: "investigator",
      study: STUDY,
      site: "S1",
    },
    null,
  );
  inv = (await principalForUser(t.ctx, u.id))!;
  await importForm(t.ctx, STUDY, FORM, { actorId: null });
  token = (await createApiToken(t.ctx, { study: STUDY, name: "edc" }, null)).token;
});
afterAll(async () => {
  await t?.close();
});

describe(`a correction refused for several reasons (${engineUnderTest()})`, () => {
  it("lists the missing reason and every wrong value in one refusal; nothing is stored", async () => {
    const { subjectCode } = await enrollParticipant(t.ctx, inv, { study: STUDY, site: "S1" });
    await giveCompleteConsent(t.ctx, STUDY, subjectCode);
    const r = await saveRecord(t.ctx, inv, STUDY, {
      subject: subjectCode,
      form: "VITALS",
      visit: "SCREENING",
      data: GOOD,
    });
    const before = await stored(r.id);

    const err = await refusal(correctRecord(t.ctx, inv, STUDY, r.id, { data: { ...GOOD, sbp: 300 } }));
    expect(err.code).toBe("invalid");
    expect(err.problems).toEqual([
      { field: "data.sbp", message: expect.stringMatching(/^Systolic BP must be between 50 and 250/), kind: "error" },
      REASON,
    ]);
    expect(err.field).toBe("data.sbp");
    expect(await stored(r.id)).toEqual(before);

    // An empty reason is no reason; a reason alone missing is one problem, in the same words.
    const empty = await refusal(correctRecord(t.ctx, inv, STUDY, r.id, { data: { sbp: 300 }, reason: "  " }));
    expect(empty.problems?.map((p) => p.field)).toEqual(["data.sbp", "data.visit_date", "reason"]);
    const onlyReason = await refusal(correctRecord(t.ctx, inv, STUDY, r.id, { data: { ...GOOD, sbp: 121 } }));
    expect(onlyReason.problems).toEqual([REASON]);
    expect({ field: onlyReason.field, message: onlyReason.message }).toEqual(REASON);

    const res = await recordPut({
      request: new Request(`http://portal.test/api/v1/studies/${STUDY}/records/${r.id}`, {
        method: "PUT",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ data: { ...GOOD, sbp: 300 } }),
      }),
      context: { ctx: t.ctx },
      params: { code: STUDY, id: r.id },
    } as never);
    expect(res.status).toBe(422);
    const body = (await res.json()) as { error: { problems: { field: string; message: string }[] } };
    expect(body.error.problems.map((p) => p.field)).toEqual(["data.sbp", "reason"]);
    expect(body.error.problems[1].message).toBe(REASON.message);
    expect(await stored(r.id)).toEqual(before);
  });
});
