/**
 * Hostile input, property-based (fast-check, bounded runs so CI stays fast): form definitions, record values,
 * API bodies and proof bundles. Whatever comes in, nothing throws an untyped error, nothing hangs, every refusal
 * is typed (a path and message, a ServiceError with a field, an HTTP 400/413/415 JSON error, a verifier step
 * code), and prototype-pollution keys never reach Object.prototype.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { parseFormDefinition, type FormDefinition } from "../../anchoring/forms/definition.ts";
import { validateValues } from "../../app/records/records.server.ts";
import { ServiceError } from "../../app/platform/errors.server.ts";
import { readJsonBody } from "../../app/platform/api.server.ts";
import { verifyBundle } from "../../anchoring/verifier/verify-bundle.ts";
import { nodeCrypto } from "../../anchoring/adapters/crypto-node.ts";
import { parseTrustPolicy } from "../../anchoring/verifier/trust-policy.ts";
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { ROOT } from "../helpers/portal.ts";

import { RUNS, mutate, nastyKey, nastyValue } from "../helpers/fuzz.ts";

const VALID: FormDefinition = {
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
    { name: "at", label: "At", type: "datetime" },
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
        { value: "A", label: "A" },
        { value: "B", label: "B" },
      ],
    },
    { name: "pregnant", label: "Pregnant", type: "boolean" },
    { name: "notes", label: "Notes", type: "text", maxLength: 500 },
  ],
} as FormDefinition;

/** Set `value` at a random path of a JSON-like object (a mutation of a valid input). */
const polluted = () => ({}) as Record<string, unknown>;

describe("hostile input (property-based)", () => {
  it(
    "form definitions: anything, or a valid one with any part replaced, " + "gives a definition or a path and message",
    () => {
      expect(parseFormDefinition(VALID).ok).toBe(true);
      fc.assert(
        fc.property(
          fc.oneof(
            nastyValue,
            fc
              .tuple(fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), nastyValue)
              .map(([p, v]) => mutate(VALID, p, v)),
          ),
          (input) => {
            const r = parseFormDefinition(input);
            if (!r.ok) {
              expect(typeof r.path).toBe("string");
              expect(r.message.length).toBeGreaterThan(0);
            }
          },
        ),
        { numRuns: RUNS },
      );
      expect(polluted().polluted).toBeUndefined();
    },
  );

  it("record values: anything is either valid for the form or a ServiceError naming data.<field>", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          nastyValue,
          fc.dictionary(nastyKey, nastyValue, { maxKeys: 6 }),
          fc
            .tuple(fc.array(fc.nat(), { minLength: 1, maxLength: 2 }), nastyValue)
            .map(([p, v]) => mutate({ sbp: 120, visit_date: "2026-03-01" }, p, v)),
        ),
        (data) => {
          try {
            validateValues(VALID, data);
          } catch (err) {
            expect(err).toBeInstanceOf(ServiceError);
            expect((err as ServiceError).code).toBe("invalid");
            expect((err as ServiceError).field).toMatch(/^data(\.|$)/);
          }
        },
      ),
      { numRuns: RUNS },
    );
    // Prototype-pollution keys are unknown fields, refused by name; nothing leaks into Object.prototype.
    const body = JSON.parse('{"sbp":120,"visit_date":"2026-03-01","__proto__":{"polluted":1}}');
    expect(() => validateValues(VALID, body)).toThrow(/unknown field __proto__/);
    expect(() =>
      validateValues(
        VALID,
        JSON.parse('{"sbp":120,"visit_date":"2026-03-01","constructor":{"prototype":{"polluted":1}}}'),
      ),
    ).toThrow(/unknown field constructor/);
    expect(polluted().polluted).toBeUndefined();
  });

  it(
    "API bodies: any bytes (invalid UTF-8, deep nesting, huge numbers, oversize) " +
      "give a value or a 400/413/415 JSON error",
    async () => {
      const post = (body: Uint8Array | string, type = "application/json") =>
        new Request("http://x/api", {
          method: "POST",
          headers: { "content-type": type },
          body: typeof body === "string" ? body : new Uint8Array(body),
        });
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            fc.uint8Array({ maxLength: 64 }),
            fc.string({ maxLength: 64 }).map((s) => new TextEncoder().encode(s)),
            fc.json().map((s) => new TextEncoder().encode(s)),
          ),
          async (bytes) => {
            const r = await readJsonBody(post(bytes), 1024);
            if (!r.ok) {
              expect([400, 413, 415]).toContain(r.response.status);
              const j = (await r.response.json()) as { error: { code: string; field: string } };
              expect(j.error.field).toBe("body");
            }
          },
        ),
        { numRuns: RUNS },
      );
      const deep = "[".repeat(200_000) + "]".repeat(200_000);
      const d = await readJsonBody(post(deep), 1_000_000);
      if (!d.ok) expect(d.response.status).toBe(400);
      expect((await readJsonBody(post(deep), 1000)) as { ok: boolean }).toMatchObject({ ok: false });
      const huge = await readJsonBody(post('{"n": 1e999999, "m": 123456789012345678901234567890}'), 1000);
      expect(huge.ok && (huge.value as { n: number }).n).toBe(Infinity);
      expect(() => validateValues(VALID, { sbp: Infinity, visit_date: "2026-03-01" })).toThrow(ServiceError);
      expect((await readJsonBody(post(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), 100)).ok).toBe(false);
      const wrongType = await readJsonBody(post("{}", "text/plain"), 100);
      expect(wrongType.ok === false && wrongType.response.status).toBe(415);
    },
  );

  it("proof bundles: any JSON value is refused with a failed step and a code, never a throw", async () => {
    const vectors = path.join(ROOT, "test", "vectors", "bundles");
    const vector = JSON.parse(
      readFileSync(
        path.join(vectors, readdirSync(vectors).find((f) => f.startsWith("valid") && f.endsWith(".json"))!),
        "utf8",
      ),
    );
    const policy = parseTrustPolicy(vector.policy);
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          nastyValue,
          fc
            .tuple(fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), nastyValue)
            .map(([p, v]) => mutate(vector.bundle, p, v)),
        ),
        async (input) => {
          const r = await verifyBundle(nodeCrypto, input, policy);
          if (r.verdict !== "valid") {
            const failed = r.steps.find((s) => s.status === "failed");
            expect(failed?.code).toMatch(/^[A-Z0-9_]+$/);
          }
        },
      ),
      { numRuns: RUNS },
    );
  });
});
