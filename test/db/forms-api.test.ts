/**
 * Form definitions through the API route handlers (the real loader/action functions with real Requests) and
 * the services, on PGlite and PostgreSQL: import + approval entry, drafts, listing, and every kind of bad input.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createApiToken } from "../../app/accounts/tokens.server.ts";
import { action, loader } from "../../app/routes/api/api.v1.studies.$code.forms.ts";

const VITALS = {
  code: "VITALS",
  title: "Vital signs",
  version: 1,
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
    {
      name: "smoker",
      label: "Smoker",
      type: "choice",
      options: [
        { value: "Y", label: "Yes" },
        { value: "N", label: "No" },
      ],
    },
    {
      name: "symptoms",
      label: "Symptoms",
      type: "multichoice",
      options: [
        { value: "COUGH", label: "Cough" },
        { value: "FEVER", label: "Fever" },
      ],
    },
    { name: "pregnant", label: "Pregnant", type: "boolean" },
    { name: "notes", label: "Notes", type: "text", maxLength: 500 },
  ],
};

let t: TestDb;
let admin: string;
let plain: string;
let foreign: string;
beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(t.ctx, { code: "FRM-1", title: "Forms", sites: [{ code: "A", name: "A" }] }, null);
  await createStudy(t.ctx, { code: "FRM-2", title: "Other", sites: [{ code: "A", name: "A" }] }, null);
  admin = (await createApiToken(t.ctx, { study: "FRM-1", name: "forms", scopes: ["forms.manage"] }, null)).token;
  plain = (await createApiToken(t.ctx, { study: "FRM-1", name: "edc" }, null)).token;
  foreign = (await createApiToken(t.ctx, { study: "FRM-2", name: "other", scopes: ["forms.manage"] }, null)).token;
});
afterAll(async () => {
  await t?.close();
});

const call = async (
  method: "GET" | "POST",
  token: string | null,
  body?: string,
  query = "",
  code = "FRM-1",
  type = "application/json",
) => {
  const request = new Request(`http://portal.test/api/v1/studies/${code}/forms${query}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { "content-type": type } : {}),
    },
    body,
  });
  const args = { request, context: { ctx: t.ctx }, params: { code } } as never;
  const res: Response = method === "GET" ? await loader(args) : await action(args);
  return { status: res.status, body: await res.json() };
};

describe(`form definitions API on ${engineUnderTest()}`, () => {
  it(
    "imports and approves a definition in the issue's format (a ledger entry), lists it, " + "and keeps drafts apart",
    async () => {
      const r = await call("POST", admin, JSON.stringify(VITALS));
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      expect(r.body).toMatchObject({
        code: "VITALS",
        version: 1,
        status: "approved",
        definitionSha256: expect.stringMatching(/^[0-9a-f]{64}$/),
        entry: { id: expect.any(String), status: "pending" },
      });
      const [entry] = await t.database.execute(
        `SELECT kind, payload_text FROM ledger_entries WHERE id = '${r.body.entry.id}'`,
      );
      expect(entry.kind).toBe("form.approved");
      expect(JSON.parse(String(entry.payload_text))).toMatchObject({
        form: "VITALS",
        version: 1,
        definitionSha256: r.body.definitionSha256,
      });
      const draft = await call(
        "POST",
        admin,
        JSON.stringify({ ...VITALS, version: 2, title: "Vital signs v2" }),
        "?draft=true",
      );
      expect(draft.status).toBe(201);
      expect(draft.body).toMatchObject({ version: 2, status: "draft", entry: null });
      const list = await call("GET", plain, undefined);
      expect(list.status).toBe(200);
      expect(list.body.forms.map((f: { version: number; status: string }) => [f.version, f.status])).toEqual([
        [1, "approved"],
        [2, "draft"],
      ]);
      expect(list.body.forms[0].definition).toEqual(VITALS);
    },
  );

  it("refuses bad input with a specific status and the path of the offending field, storing nothing", async () => {
    const before = Number((await t.database.execute(`SELECT count(*)::int AS n FROM forms`))[0].n);
    const entriesBefore = Number((await t.database.execute(`SELECT count(*)::int AS n FROM ledger_entries`))[0].n);
    const bad = (mut: (d: any) => void) => {
      const d = structuredClone(VITALS) as any;
      d.version = 9;
      mut(d);
      return JSON.stringify(d);
    };
    const cases: [string, Promise<{ status: number; body: any }>, number, string | RegExp][] = [
      [
        "unknown type",
        call(
          "POST",
          admin,
          bad((d) => (d.fields[2].type = "colour")),
        ),
        422,
        "fields[2].type",
      ],
      [
        "min > max",
        call(
          "POST",
          admin,
          bad((d) => (d.fields[0].min = 300)),
        ),
        422,
        "fields[0].min",
      ],
      [
        "duplicate field",
        call(
          "POST",
          admin,
          bad((d) => (d.fields[1].name = "sbp")),
        ),
        422,
        "fields[1].name",
      ],
      [
        "empty options",
        call(
          "POST",
          admin,
          bad((d) => (d.fields[3].options = [])),
        ),
        422,
        "fields[3].options",
      ],
      [
        "bad code",
        call(
          "POST",
          admin,
          bad((d) => (d.code = "vitals")),
        ),
        422,
        "code",
      ],
      ["existing version", call("POST", admin, JSON.stringify(VITALS)), 409, "version"],
      ["not JSON", call("POST", admin, "{oops"), 400, "body"],
      ["wrong type", call("POST", admin, JSON.stringify(VITALS), "", "FRM-1", "text/plain"), 415, "body"],
      [
        "bad draft flag",
        call(
          "POST",
          admin,
          bad(() => {}),
          "?draft=maybe",
        ),
        400,
        "draft",
      ],
      [
        "too large",
        call("POST", admin, JSON.stringify({ ...VITALS, version: 10, pad: "x".repeat(300_000) })),
        413,
        "body",
      ],
    ];
    for (const [name, p, status, field] of cases) {
      const r = await p;
      expect(r.status, `${name}: ${JSON.stringify(r.body)}`).toBe(status);
      expect(r.body.error.field, name).toBe(field);
      expect(r.body.error.message, name).not.toMatch(/\n\s+at /); // never a stack trace
    }
    expect(Number((await t.database.execute(`SELECT count(*)::int AS n FROM forms`))[0].n)).toBe(before);
    expect(Number((await t.database.execute(`SELECT count(*)::int AS n FROM ledger_entries`))[0].n)).toBe(
      entriesBefore,
    );
  });

  it("needs a principal with forms.manage in that study; other studies look like nothing", async () => {
    expect((await call("POST", null, JSON.stringify(VITALS))).status).toBe(401);
    expect((await call("POST", "ts_unknown", JSON.stringify(VITALS))).status).toBe(401);
    const noScope = await call("POST", plain, JSON.stringify({ ...VITALS, version: 3 }));
    expect(noScope.status).toBe(403);
    expect(noScope.body.error.code).toBe("forbidden");
    expect((await call("POST", foreign, JSON.stringify({ ...VITALS, version: 3 }))).status).toBe(404);
    expect((await call("GET", foreign, undefined)).status).toBe(404);
    expect((await call("GET", admin, undefined, "", "NOPE-9")).status).toBe(404);
    await expect(createApiToken(t.ctx, { study: "FRM-1", name: "x", scopes: ["users.manage"] }, null)).rejects.toThrow(
      /unknown scope users.manage/,
    );
  });
});
