/**
 * The integration API fuzzed over HTTP (property-based, bounded, fixed seed; `npm run test:long` explores more):
 * hostile JSON bodies (prototype-pollution keys, lone surrogates, huge and tiny numbers, deep nesting, wrong
 * types), mutations of valid bodies, and raw bytes that are not UTF-8 or not JSON, sent to every write route.
 * Every answer is a typed one: 2xx, or 4xx with a JSON {"error":{code,message}}; never a 500, never a dropped
 * connection; the portal logs no server error; what was refused changed nothing, and the audit stays clean.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { cli, cliAsync, startPortal, type Portal, ROOT } from "../helpers/portal.ts";
import { demoClone } from "../helpers/demo-snapshot.ts";
import { RUNS, mutate, nastyKey, nastyValue } from "../helpers/fuzz.ts";
import { readFileSync } from "node:fs";
import path from "node:path";

const N = Math.min(RUNS, 120);
let portal: Portal;
let env: Record<string, string>;
let token: string;
let subject: string;
let recordId: string;
const statuses = new Map<number, number>();

async function send(method: string, p: string, body: string | Uint8Array, type = "application/json") {
  const res = await fetch(portal.url + p, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": type },
    body: body as unknown as BodyInit,
  });
  statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
  const text = await res.text();
  if (res.status >= 500 || (res.status >= 300 && res.status < 400))
    throw new Error(`${method} ${p} answered ${res.status}: ${text.slice(0, 300)} for ${String(body).slice(0, 300)}`);
  if (res.status >= 400) {
    const j = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    expect(typeof j.error?.code, text).toBe("string");
    expect(typeof j.error?.message, text).toBe("string");
  }
  return res.status;
}

const mutated = (base: Record<string, unknown>) =>
  fc.tuple(fc.array(fc.nat(), { minLength: 1, maxLength: 3 }), nastyValue).map(([p, v]) => mutate(base, p, v));
const withExtraKey = (base: Record<string, unknown>) =>
  fc
    .tuple(nastyKey, nastyValue)
    .map(([k, v]) => JSON.stringify(base).replace(/^\{/, `{${JSON.stringify(k)}:${JSON.stringify(v) ?? "null"},`));
const json = (arb: fc.Arbitrary<unknown>) => arb.map((v) => JSON.stringify(v) ?? "null");
const raw = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.constantFrom(
    new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]),
    new TextEncoder().encode("[".repeat(5000)),
    new TextEncoder().encode('{"a":1e999999}'),
    new TextEncoder().encode('{"site":"SITE-01"'),
  ),
);

beforeAll(async () => {
  env = { DATA_DIR: (await demoClone("pglite")).dataDir, API_RATE_PER_SECOND: "100000" };
  portal = await startPortal(env);
  token = cli(
    ["tokens", "create", "--study", "DEMO-001", "--name", "fuzz", "--scope", "forms.manage"],
    env,
  ).stdout.trim();
  // The API is fuzzed, not consent: its subject has none, so VITALS is allowed before consent (ADR 0021).
  const set = cli(["studies", "set", "--study", "DEMO-001", "--forms-before-consent", "DEMOG,VITALS"], env);
  expect(set.code, set.stderr).toBe(0);
  const e = await fetch(`${portal.url}/api/v1/studies/DEMO-001/participants`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: '{"site":"SITE-01"}',
  });
  subject = ((await e.json()) as { subject: string }).subject;
  const r = await fetch(`${portal.url}/api/v1/studies/DEMO-001/records`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({
      subject,
      form: "VITALS",
      visit: "SCREENING",
      data: { sbp: 120, dbp: 80, visit_date: "2026-03-01" },
    }),
  });
  expect(r.status).toBe(201);
  recordId = ((await r.json()) as { id: string }).id;
});
afterAll(async () => {
  await portal?.stop();
});

describe("API bodies fuzzed over HTTP", () => {
  it(
    "every write route answers every hostile body with a typed error (never a 500), " + "and the audit stays clean",
    async () => {
      const record = {
        subject: "",
        form: "VITALS",
        visit: "WEEK4",
        data: { sbp: 120, dbp: 80, visit_date: "2026-03-29", notes: "ok" },
      };
      const form = JSON.parse(
        readFileSync(path.join(ROOT, "app", "studies", "demo", "vitals.form.json"), "utf8"),
      ) as Record<string, unknown>;
      const routes: [string, string, Record<string, unknown>][] = [
        ["POST", "/api/v1/studies/DEMO-001/records", { ...record, subject }],
        [
          "POST",
          "/api/v1/studies/DEMO-001/participants",
          { site: "SITE-01", personal: { fullName: "Ann Example", email: "ann@example.test" } },
        ],
        [
          "PUT",
          `/api/v1/studies/DEMO-001/records/${recordId}`,
          { data: { sbp: 121, dbp: 80, visit_date: "2026-03-01" }, reason: "typo" },
        ],
        ["POST", "/api/v1/studies/DEMO-001/forms", { ...form, code: "FUZZ", version: 1 }],
      ];
      // Known-nasty bodies first: a lone surrogate where a string is stored and hashed (no UTF-8, no canonical
      // form) is refused at the edge as invalid Unicode, naming where it is.
      const lone = [
        [
          routes[0],
          { ...routes[0][2], data: { sbp: 120, dbp: 80, visit_date: "2026-03-29", notes: "a\ud800b" } },
          "data.notes",
        ],
        [routes[1], { site: "SITE-01", personal: { fullName: "\udc00Ann" } }, "personal.fullName"],
        [routes[2], { ...routes[2][2], reason: "\ud83d" }, "reason"],
        [routes[3], { ...routes[3][2], title: "V\ud800" }, "title"],
      ] as const;
      for (const [[method, p], body, field] of lone) {
        const res = await fetch(portal.url + p, {
          method,
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify(body),
        });
        expect(res.status, `${method} ${p}`).toBe(400);
        expect(((await res.json()) as { error: { field: string } }).error.field).toBe(field);
      }
      for (const [method, p, base] of routes) {
        await fc.assert(
          fc.asyncProperty(fc.oneof(json(nastyValue), json(mutated(base)), withExtraKey(base), raw), async (body) => {
            await send(method, p, body);
          }),
          { numRuns: N },
        );
        // Wrong content types are refused before the body is read.
        expect(await send(method, p, JSON.stringify(base), "text/plain")).toBe(415);
      }
      console.log(`api fuzz statuses: ${JSON.stringify(Object.fromEntries(statuses))}`);
      expect([...statuses.keys()].every((s) => s < 500)).toBe(true);
      expect(portal.proc.exitCode).toBeNull();
      expect(portal.output()).not.toMatch(/portal error:/);
      expect(Object.prototype).not.toHaveProperty("polluted");
      const audit = await cliAsync(["audit", "--json"], env);
      expect(audit.code, audit.stdout.slice(0, 1500) + audit.stderr).toBe(0);
    },
  );
});
