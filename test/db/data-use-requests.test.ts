/**
 * Data-use requests and the committee's decisions (issue 22, ADR 0068, 0069) on PGlite and PostgreSQL: bad input
 * named by its field, the request sealed with its free text as salted hashes, a researcher sees only their own
 * requests (another's is not found), the committee decides once, never their own request, and the researcher is told.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import { decideDataUseRequest } from "../../app/data-sharing/decisions.server.ts";
import {
  getDataUseRequest,
  listDataUseRequests,
  submitDataUseRequest,
} from "../../app/data-sharing/requests.server.ts";
import { ServiceError } from "../../app/platform/errors.server.ts";
import { inviteStaff } from "../../app/studies/staff.server.ts";
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

const payloadOf = async (entryId: string) => {
  const [row] = await t.database.execute(`SELECT payload_text FROM ledger_entries WHERE id = '${entryId}'`);
  return JSON.parse(String(row.payload_text)) as Record<string, unknown>;
};

describe(`data-use requests on ${engineUnderTest()}`, () => {
  it("names the field of bad input, in words", async () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ purpose: "FUN" }, "purpose", /choose a purpose from the list/],
      [{ fields: ["VITALS.nope"] }, "fields", /VITALS\.nope is not a field of an approved form/],
      [{ fields: ["LABS.sbp"] }, "fields", /LABS\.sbp is not a field/],
      [{ fields: [] }, "fields", /at least one field/],
      [{ fields: ["VITALS.note"] }, "fields", /VITALS\.note \(Note\) holds identifying or free text/],
      [{ fields: ["VITALS.initials"] }, "fields", /VITALS\.initials/],
      [{ periodFrom: "2026-05-01", periodTo: "2026-04-30" }, "periodTo", /ends before it starts/],
      [{ periodFrom: "2026-02-30" }, "periodFrom", /not a real date/],
      [{ institution: "  " }, "institution", /name your institution/],
      [{ institution: "x".repeat(201) }, "institution", /under 200 characters/],
      [{ justification: "" }, "justification", /say why/],
      [{ justification: "y".repeat(4001) }, "justification", /under 4000 characters/],
    ];
    for (const [over, field, message] of cases) {
      const err = await refusal(submitDataUseRequest(t.ctx, s.p.res, STUDY, requestBody(over)));
      expect(err.code, JSON.stringify(over)).toBe("invalid");
      expect(err.status).toBe(422);
      expect(err.field, JSON.stringify(over)).toBe(field);
      expect(err.message).toMatch(message);
    }
    // Limits are inclusive: 200 and 4000 characters are accepted; fields may come as one line of text.
    const ok = await submitDataUseRequest(
      t.ctx,
      s.p.res2,
      STUDY,
      requestBody({ institution: "i".repeat(200), justification: "j".repeat(4000), fields: "VITALS.sbp, VITALS.dbp" }),
    );
    expect(ok.id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("only an external researcher of the study asks; staff, the committee and the sponsor are refused", async () => {
    for (const k of ["inv", "dac", "reg", "admin"]) {
      const err = await refusal(submitDataUseRequest(t.ctx, s.p[k], STUDY, requestBody()));
      expect(err.code, k).toBe("forbidden");
    }
  });

  it("seals the request with institution and justification as salted hashes, and an audit event", async () => {
    const body = requestBody({ fields: ["VITALS.dbp", "VITALS.sbp", "VITALS.sbp"] });
    const r = await submitDataUseRequest(t.ctx, s.p.res, STUDY, body);
    const payload = await payloadOf(r.entryId);
    expect(payload).toMatchObject({
      request: r.id,
      purpose: "HRESCH",
      fields: ["VITALS.dbp", "VITALS.sbp"],
      periodFrom: "2020-01-01",
      periodTo: "2099-12-31",
      actor: s.ids.res,
    });
    const salt = String(payload.salt);
    expect(payload.institutionHash).toBe(saltedTextHash(t.ctx.crypto, salt, body.institution));
    expect(payload.justificationHash).toBe(saltedTextHash(t.ctx.crypto, salt, body.justification));
    expect(JSON.stringify(payload)).not.toContain("Institute of Examples");
    const events = await t.database.execute(
      `SELECT detail FROM audit_events WHERE action = 'data_use.requested' AND actor_user_id = '${s.ids.res}'`,
    );
    expect(events.some((e) => (e.detail as { request?: string }).request === r.id)).toBe(true);
  });

  it("a researcher sees only their own requests (another's: not found); the committee, regulator see all", async () => {
    const mine = await submitDataUseRequest(t.ctx, s.p.res, STUDY, requestBody({ justification: "mine" }));
    const theirs = await submitDataUseRequest(t.ctx, s.p.res2, STUDY, requestBody({ justification: "theirs" }));
    const own = await listDataUseRequests(t.ctx, s.p.res, STUDY);
    expect(own.map((r) => r.id)).toContain(mine.id);
    expect(own.every((r) => r.requester.id === s.ids.res)).toBe(true);
    expect(own.map((r) => r.id)).not.toContain(theirs.id);
    const err = await refusal(getDataUseRequest(t.ctx, s.p.res, STUDY, theirs.id));
    expect(err.code).toBe("not_found");
    expect(err.status).toBe(404);
    expect((await getDataUseRequest(t.ctx, s.p.res, STUDY, mine.id)).request.justification).toBe("mine");
    for (const k of ["dac", "reg", "admin"]) {
      const all = (await listDataUseRequests(t.ctx, s.p[k], STUDY)).map((r) => r.id);
      expect(all, k).toEqual(expect.arrayContaining([mine.id, theirs.id]));
      expect((await getDataUseRequest(t.ctx, s.p[k], STUDY, theirs.id)).request.id).toBe(theirs.id);
    }
    expect((await refusal(listDataUseRequests(t.ctx, s.p.inv, STUDY))).code).toBe("forbidden");
    expect((await refusal(getDataUseRequest(t.ctx, s.p.res, STUDY, "not-a-uuid"))).code).toBe("not_found");
  });
});

describe(`the committee's decision on ${engineUnderTest()}`, () => {
  it("names bad input: no reason, no or out-of-range days, no outcome", async () => {
    const r = await submitDataUseRequest(t.ctx, s.p.res, STUDY, requestBody());
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ outcome: "approved", reason: " ", expiresInDays: 30 }, "reason", /give the reason/],
      [{ outcome: "declined" }, "reason", /give the reason/],
      [{ outcome: "approved", reason: "fine" }, "expiresInDays", /1 to 365/],
      [{ outcome: "approved", reason: "fine", expiresInDays: 0 }, "expiresInDays", /at least 1 day/],
      [{ outcome: "approved", reason: "fine", expiresInDays: 366 }, "expiresInDays", /at most 365/],
      [{ reason: "fine" }, "outcome", /approve or decline/],
    ];
    for (const [input, field, message] of cases) {
      const err = await refusal(decideDataUseRequest(t.ctx, s.p.dac, STUDY, r.id, input));
      expect(err.code, JSON.stringify(input)).toBe("invalid");
      expect(err.field, JSON.stringify(input)).toBe(field);
      expect(err.message).toMatch(message);
    }
  });

  it("decides once: a second decision is refused; the decision is sealed and the researcher is told", async () => {
    const r = await submitDataUseRequest(t.ctx, s.p.res, STUDY, requestBody());
    const d = await decideDataUseRequest(t.ctx, s.p.dac, STUDY, r.id, {
      outcome: "approved",
      reason: "sound science",
      expiresInDays: "30",
    });
    const payload = await payloadOf(d.entryId);
    expect(payload).toMatchObject({ request: r.id, outcome: "approved", expiresInDays: 30, actor: s.ids.dac });
    expect(payload.reasonHash).toBe(saltedTextHash(t.ctx.crypto, String(payload.salt), "sound science"));
    const again = await refusal(
      decideDataUseRequest(t.ctx, s.p.both, STUDY, r.id, { outcome: "declined", reason: "changed my mind" }),
    );
    expect(again.code).toBe("conflict");
    expect(again.message).toMatch(/already been decided/);
    const detail = await getDataUseRequest(t.ctx, s.p.res, STUDY, r.id);
    expect(detail.decision).toMatchObject({ outcome: "approved", reason: "sound science", expiresInDays: 30 });
    expect(detail.request.state).toBe("approved");
    const mail = await t.database.execute(
      "SELECT subject, body FROM outbox WHERE to_address = 'res@du.test' AND kind = 'data_use_decided'",
    );
    expect(mail.some((m) => /approved/.test(String(m.subject)) && /sound science/.test(String(m.body)))).toBe(true);
  });

  it("two members deciding at once: one decision, the other told it is already decided", async () => {
    const r = await submitDataUseRequest(t.ctx, s.p.res, STUDY, requestBody());
    const results = await Promise.allSettled([
      decideDataUseRequest(t.ctx, s.p.dac, STUDY, r.id, { outcome: "declined", reason: "no" }),
      decideDataUseRequest(t.ctx, s.p.both, STUDY, r.id, { outcome: "approved", reason: "yes", expiresInDays: 5 }),
    ]);
    expect(results.filter((x) => x.status === "fulfilled")).toHaveLength(1);
    const rejected = results.find((x) => x.status === "rejected") as PromiseRejectedResult;
    expect(rejected.reason).toBeInstanceOf(ServiceError);
    expect((rejected.reason as ServiceError).code).toBe("conflict");
    const [n] = await t.database.execute(
      `SELECT count(*)::int AS n FROM data_use_decisions WHERE request_id = '${r.id}'`,
    );
    expect(Number(n.n)).toBe(1);
  });

  it("an external researcher holds no other role of the study: either grant is refused, naming the role", async () => {
    const grant = (email: string, role: string, site?: string) =>
      inviteStaff(t.ctx, s.p.admin, { study: STUDY, email, fullName: "x", role, site }, "http://portal.test");
    // A member of the committee (a sponsor role) cannot also be a researcher of the study...
    const asResearcher = await refusal(grant("both@du.test", "external_researcher"));
    expect(asResearcher.status).toBe(409);
    expect(asResearcher.field).toBe("role");
    expect(asResearcher.message).toMatch(/^role: an external researcher works outside the study team/);
    // ...nor is a researcher given a study role (the committee's, a site's or the sponsor's).
    for (const [role, site] of [["data_access_committee"], ["investigator", "S1"], ["monitor"]] as const) {
      const err = await refusal(grant("res@du.test", role, site));
      expect(err.status, role).toBe(409);
      expect(err.field, role).toBe("role");
      expect(err.message, role).toMatch(/is an external researcher of this study/);
    }
    // The committee may hold another sponsor role.
    await grant("dac@du.test", "monitor");
    const [n] = await t.database.execute(
      `SELECT count(*)::int AS n FROM memberships WHERE user_id = '${s.ids.res}' AND revoked_at IS NULL`,
    );
    expect(Number(n.n)).toBe(1);
  });

  it("only the data access committee decides (not researchers, staff, regulators or a platform admin)", async () => {
    const r = await submitDataUseRequest(t.ctx, s.p.res, STUDY, requestBody());
    for (const k of ["res2", "inv", "reg", "admin"]) {
      const err = await refusal(decideDataUseRequest(t.ctx, s.p[k], STUDY, r.id, { outcome: "declined", reason: "x" }));
      expect(err.code, k).toBe("forbidden");
    }
  });
});
