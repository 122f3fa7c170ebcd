/**
 * Issue 17 (ADR 0028): the offline verifier recomputes a record's calculated fields from the sealed form definition
 * its bundle carries, and checks branching. The named vectors (test/vectors/bundles/forms.ts) are genuine sealed
 * entries: `valid-calculation` verifies with the calculation step passed, `calculation-changed` (BMI sealed 31.2,
 * its values give 24.7) fails with CALCULATION_MISMATCH naming the field, in the verifier and in `trialseal verify`.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { nodeCrypto } from "../../anchoring/adapters/crypto-node.ts";
import { nobleCrypto } from "../../anchoring/log/crypto-noble.ts";
import { canonicalize } from "../../anchoring/log/canonical.ts";
import { toHex, utf8 } from "../../anchoring/log/bytes.ts";
import { verifyBundle } from "../../anchoring/verifier/verify-bundle.ts";
import { verifyFormSteps } from "../../anchoring/verifier/verify-form.ts";
import { runVerify } from "../../bin/verify-command.ts";
import { formVectors, VITALS_V2 } from "../vectors/bundles/forms.ts";

const vectors = formVectors();
const step = <S extends { step: string }>(steps: S[], name: string) => steps.find((s) => s.step === name);

afterEach(() => vi.restoreAllMocks());

describe("the verifier recomputes calculated fields (Node, both crypto providers)", () => {
  for (const crypto of [nodeCrypto, nobleCrypto]) {
    const which = crypto === nodeCrypto ? "node" : "noble";
    it(`valid-calculation verifies with the calculation recomputed (${which})`, async () => {
      const v = vectors["valid-calculation"];
      const r = await verifyBundle(crypto, v.bundle, v.policy);
      expect(r.verdict).toBe("valid");
      expect(step(r.steps, "form.definition")).toMatchObject({ status: "ok" });
      expect(step(r.steps, "form.calculations")).toMatchObject({ status: "ok" });
      expect(step(r.steps, "form.calculations")?.message).toMatch(/BMI \(bmi\) = 24\.7/);
      expect(step(r.steps, "form.visibility")).toMatchObject({ status: "ok" });
    });

    it(`calculation-changed fails only at the calculation, naming the field (${which})`, async () => {
      const v = vectors["calculation-changed"];
      const r = await verifyBundle(crypto, v.bundle, v.policy);
      expect(r.verdict).toBe("invalid");
      const failed = r.steps.filter((s) => s.status === "failed");
      expect(failed).toEqual([
        {
          step: "form.calculations",
          status: "failed",
          code: "CALCULATION_MISMATCH",
          message: "BMI (bmi): sealed 31.2, recomputed 24.7",
        },
      ]);
      // Everything else about the entry holds: it is genuinely sealed.
      for (const s of ["payload.hash", "batch.inclusion", "checkpoint[0].signature", "form.definition"])
        expect(step(r.steps, s)?.status, s).toBe("ok");
      expect(r.existedBy).toBeUndefined();
    });
  }

  // `form` sits outside the signed payload: deleting it must not turn a failure into "not checked".
  for (const name of ["form-definition-removed", "calculation-changed-form-removed"])
    it(`${name}: a v3 record bundle without its definition fails with FORM_DEFINITION_MISSING`, async () => {
      const v = vectors[name];
      const r = await verifyBundle(nodeCrypto, v.bundle, v.policy);
      expect(r.verdict).toBe("invalid");
      expect(r.steps.filter((s) => s.status === "failed")).toEqual([
        {
          step: "form.definition",
          status: "failed",
          code: "FORM_DEFINITION_MISSING",
          message:
            "the bundle carries no form definition, but its payload seals one (formSha256) for form VITALS " +
            "version 2: without it the calculations and branching cannot be checked",
        },
      ]);
      expect(r.steps.filter((s) => s.step.startsWith("form.") && s.status !== "failed")).toEqual([]);
    });

  it("a sealed definition that does not parse fails with FORM_DEFINITION_INVALID, naming the problem", async () => {
    const v = vectors["form-definition-invalid"];
    const r = await verifyBundle(nodeCrypto, v.bundle, v.policy);
    expect(r.verdict).toBe("invalid");
    const failed = r.steps.filter((s) => s.status === "failed");
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ step: "form.definition", code: "FORM_DEFINITION_INVALID" });
    expect(failed[0].message).toMatch(/^the sealed definition of form VITALS version 2 is not a valid form definition/);
    expect(failed[0].message).toMatch(/fields\[5\]/);
    expect(r.steps.filter((s) => s.step.startsWith("form.") && s.status !== "failed")).toEqual([]);
  });

  it("a definition that is not the sealed one fails with FORM_DEFINITION_MISMATCH", async () => {
    const v = vectors["form-definition-edited"];
    const r = await verifyBundle(nodeCrypto, v.bundle, v.policy);
    expect(r.steps.find((s) => s.status === "failed")).toMatchObject({
      step: "form.definition",
      code: "FORM_DEFINITION_MISMATCH",
    });
  });

  it("a value for a field hidden by branching fails with VISIBILITY_MISMATCH, naming the condition", async () => {
    const v = vectors["hidden-field-holds-value"];
    const r = await verifyBundle(nodeCrypto, v.bundle, v.policy);
    expect(r.steps.find((s) => s.status === "failed")).toEqual({
      step: "form.visibility",
      status: "failed",
      code: "VISIBILITY_MISMATCH",
      message: "Pregnant (pregnant) holds a value, but the form hides it (shown only when [sex] = 'F')",
    });
  });
});

describe("verifyFormSteps on payloads (no sealing: the step alone)", () => {
  const text = canonicalize(VITALS_V2);
  const sha = toHex(nodeCrypto.sha256(utf8(text)));
  const base = {
    v: 3,
    form: "VITALS",
    formVersion: 2,
    formSha256: sha,
    values: { sex: "F", pregnant: false, height: 160, weight: 64 },
    hashed: {},
    calculated: { bmi: 25 },
    missing: {},
  };
  const run = (p: Record<string, unknown>, def: Record<string, unknown> = VITALS_V2) => {
    const t = canonicalize(def);
    return verifyFormSteps(
      nodeCrypto,
      "record.saved",
      { ...p, formSha256: toHex(nodeCrypto.sha256(utf8(t))) },
      {
        definition: t,
      },
    );
  };

  it("older record payloads (no formSha256) and other kinds get no form step", () => {
    expect(verifyFormSteps(nodeCrypto, "record.saved", { v: 2, values: {} }, undefined)).toEqual([]);
    expect(verifyFormSteps(nodeCrypto, "form.approved", base, { definition: text })).toEqual([]);
  });

  it("a calculation that is empty because an input is empty is sealed as null", () => {
    const steps = run({ ...base, values: { sex: "M", height: 160 }, calculated: { bmi: null } });
    expect(
      steps.every((s) => s.status === "ok"),
      JSON.stringify(steps),
    ).toBe(true);
    expect(run({ ...base, values: { sex: "M", height: 160 }, calculated: { bmi: 0 } }).find((s) => s.code)).toEqual(
      expect.objectContaining({ code: "CALCULATION_MISMATCH", message: "BMI (bmi): sealed 0, recomputed empty" }),
    );
  });

  it("a calculated value left out, or sealed for a field hidden by its section, is a mismatch", () => {
    expect(run({ ...base, calculated: {} }).find((s) => s.code)?.message).toBe(
      "BMI (bmi): sealed no value (hidden), recomputed 25",
    );
    const def = {
      ...VITALS_V2,
      sections: [{ name: "body", title: "Body measurements", showIf: "[sex] = 'F'" }],
    };
    const steps = run({ ...base, values: { sex: "M" }, calculated: { bmi: null } }, def);
    expect(steps.find((s) => s.code)?.message).toBe("BMI (bmi): sealed empty, recomputed no value (hidden)");
  });

  it("branching on a field sealed only as a hash is named as not checked, not failed", () => {
    // A calculation may not read an identifier or free text (the definition refuses it); a condition may.
    const def = {
      ...VITALS_V2,
      fields: [
        ...VITALS_V2.fields,
        { name: "note_read", label: "Note read back", type: "boolean", showIf: "[notes] <> ''" },
      ],
    };
    const steps = run(
      { ...base, values: { ...base.values, note_read: true }, hashed: { notes: "ab".repeat(32) } },
      def,
    );
    expect(steps.filter((s) => s.status === "failed")).toEqual([]);
    expect(step(steps, "form.visibility")?.message).toMatch(/not checked .*Note read back \(note_read\)/);
  });

  it("fields held against their class, unknown fields and codes a field does not accept are named", () => {
    const steps = run({
      ...base,
      values: { ...base.values, initials: "JD", extra: 1 },
      missing: { height: { code: "UNK", reasonHash: "ab".repeat(32) } },
    });
    const fields = step(steps, "form.fields");
    expect(fields?.status).toBe("failed");
    expect(fields?.message).toMatch(/Initials \(initials\) is identifier, sealed in clear/);
    expect(fields?.message).toMatch(/extra \(in values\) is not a field/);
    expect(fields?.message).toMatch(/Height \(height\) missing-data code UNK is not one the field accepts/);
  });

  it("a sealed definition that is not JSON fails with FORM_DEFINITION_INVALID", () => {
    const t = "{not json";
    const p = { ...base, formSha256: toHex(nodeCrypto.sha256(utf8(t))) };
    expect(verifyFormSteps(nodeCrypto, "record.saved", p, { definition: t })).toEqual([
      {
        step: "form.definition",
        status: "failed",
        code: "FORM_DEFINITION_INVALID",
        message: "the sealed definition of form VITALS version 2 is not a valid form definition: it is not JSON",
      },
    ]);
  });

  it("a definition of another form or version, even hashing right, is not the payload's", () => {
    const steps = run(base, { ...VITALS_V2, version: 3 });
    expect(steps[0]).toMatchObject({ step: "form.definition", code: "FORM_DEFINITION_MISMATCH" });
  });
});

describe("trialseal verify shows the calculation step", () => {
  it("names the field of a changed calculation, exit 1; the valid bundle exits 0 with the step ok", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "ts-verify-form-"));
    const policy = path.join(dir, "policy.json");
    writeFileSync(policy, JSON.stringify(vectors["valid-calculation"].policy));
    const files = ["valid-calculation", "calculation-changed"].map((n) => {
      const f = path.join(dir, `${n}.json`);
      writeFileSync(f, JSON.stringify(vectors[n].bundle));
      return f;
    });
    const out: string[] = [];
    const err: string[] = [];
    vi.spyOn(process.stdout, "write").mockImplementation((s) => out.push(String(s)) > 0);
    vi.spyOn(process.stderr, "write").mockImplementation((s) => err.push(String(s)) > 0);
    expect(await runVerify([files[0]], { trust: policy })).toBe(0);
    expect(out.join("")).toMatch(/ok {3}form\.calculations: recomputed from the sealed values, equal to .*: BMI/);
    out.length = 0;
    expect(await runVerify([files[1]], { trust: policy })).toBe(1);
    expect(out.join("")).toContain(
      "FAIL form.calculations [CALCULATION_MISMATCH]: BMI (bmi): sealed 31.2, recomputed 24.7",
    );
    expect(err.join("")).toMatch(/calculation-changed\.json: invalid: form\.calculations \[CALCULATION_MISMATCH\]/);
  });
});
