/**
 * The chain-of-custody verifier (ADR 0061) on real files built without a database (test/helpers/custody-file.ts): a
 * kit's faithful life is valid (with its disclosure checked, on node and noble crypto); a tampered payload, another
 * kit's bundle, a missing step, an impossible order, a witness who is the recorder and a wrong disclosure are each
 * named with their code.
 */
import { describe, expect, it } from "vitest";
import {
  buildCustodyFile,
  DISCLOSURE,
  IDS,
  KIT,
  life,
  POLICY,
  POLICY_SHA256,
  type Step,
} from "../../test/helpers/custody-file.ts";
import { nodeCrypto as c } from "../adapters/crypto-node.ts";
import { nobleCrypto } from "../log/crypto-noble.ts";
import { CUSTODY_SCOPE, pinnedCustodyPolicy, readCustodyText, verifyCustody } from "./verify-custody.ts";

const verify = (file: unknown) => verifyCustody(file, POLICY, c);
const codes = async (file: unknown) => (await verify(file)).errors.map((e) => e.code);
const without = (kind: string) => life().filter((s) => s.kind !== kind);

describe("a kit's custody file", () => {
  it("is valid for the kit's whole life, with the disclosure recomputing both blindHashes", async () => {
    for (const crypto of [c, nobleCrypto]) {
      const r = await verifyCustody(buildCustodyFile(), POLICY, crypto);
      expect(r.errors).toEqual([]);
      expect(r).toMatchObject({ ok: true, kit: KIT, disclosure: { kitType: "KIT-A", lotChecked: true } });
      expect(r.steps.map((s) => s.kind)).toEqual(life().map((s) => s.kind));
      expect(r.steps.every((s) => s.ok)).toBe(true);
    }
  });

  it("is valid without the lot's entries and the disclosure (what a blinded role downloads)", async () => {
    const blinded = life().filter((s) => !s.kind.startsWith("supply.lot_"));
    const r = await verify(buildCustodyFile(blinded, { disclosure: false }));
    expect(r).toMatchObject({ ok: true, disclosure: null });
  });

  it("names a tampered payload as a bundle failing its proof", async () => {
    const file = buildCustodyFile();
    (file.bundles[6] as { payload: Record<string, unknown> }).payload.subject = "S1-002";
    const r = await verify(file);
    expect(r.ok).toBe(false);
    // The dispensing then proves nothing, so the return that presupposes it is named too.
    expect(r.errors.map((e) => e.code)).toEqual(["BUNDLE_INVALID", "STEP_MISSING"]);
    expect(r.errors[0]).toMatchObject({ code: "BUNDLE_INVALID", seq: 6 });
    expect(r.errors[0].message).toContain("PAYLOAD_HASH_MISMATCH");
    expect(r.steps[6]).toMatchObject({ kind: "supply.kit_dispensed", ok: false, code: "BUNDLE_INVALID" });
  });

  it("names another kit's bundle", async () => {
    const steps: Step[] = life();
    const d = steps.find((s) => s.kind === "supply.kit_dispensed")!;
    d.fields = { ...d.fields, kit: IDS.destruction, number: "999999" };
    expect(await codes(buildCustodyFile(steps))).toContain("FOREIGN_BUNDLE");
    // and a foreign bundle spliced into a faithful file
    const file = buildCustodyFile();
    const other = buildCustodyFile(steps).bundles[6];
    const withOther = { ...file, bundles: [...file.bundles.slice(0, 6), other, ...file.bundles.slice(7)] };
    expect(await codes(withOther)).toEqual(expect.arrayContaining(["FOREIGN_BUNDLE", "STEP_MISSING"]));
  });

  it("names a missing step", async () => {
    const file = buildCustodyFile();
    const r = await verify({ ...file, bundles: file.bundles.filter((_, i) => i !== 4) }); // the receipt
    expect(r.errors.map((e) => e.code)).toEqual(["STEP_MISSING", "STEP_MISSING"]);
    expect(r.errors[0].message).toContain("supply.shipment_received");
    expect(await codes(buildCustodyFile(without("supply.kit_registered")))).toContain("STEP_MISSING");
    expect(await codes(buildCustodyFile(without("supply.kit_dispensed")))).toEqual(["STEP_MISSING"]);
  });

  it("names an impossible order, a witness who recorded the destruction, a wrong disclosure", async () => {
    const steps = life();
    const [dispensed] = steps.splice(6, 1);
    steps.splice(3, 0, dispensed); // dispensed before it was shipped
    expect(await codes(buildCustodyFile(steps))).toContain("ORDER_IMPOSSIBLE");
    const afterDestruction = life();
    const [ret] = afterDestruction.splice(7, 1);
    afterDestruction.push(ret);
    expect(await codes(buildCustodyFile(afterDestruction))).toEqual(["ORDER_IMPOSSIBLE"]); // returned after it
    const same = life();
    same[9].fields = { ...same[9].fields, actor: IDS.recorder };
    expect(await codes(buildCustodyFile(same))).toEqual(["WITNESS_IS_RECORDER"]);
    const file = buildCustodyFile();
    // The kit's commitment fails, so nothing ties the lot's bundles to the kit either.
    expect(await codes({ ...file, disclosure: { ...file.disclosure!, kitType: "KIT-B" } })).toEqual([
      "LOT_UNPROVEN",
      "LOT_UNPROVEN",
      "DISCLOSURE_MISMATCH",
    ]);
  });

  it("accepts the lot's bundles only with a disclosure that ties that lot to the kit", async () => {
    const r = await verify(buildCustodyFile(life(), { disclosure: false }));
    expect(r.errors.map((e) => e.code)).toEqual(["LOT_UNPROVEN", "LOT_UNPROVEN"]);
    expect(r.errors[0]).toMatchObject({ seq: 0 });
    expect(r.steps[0]).toMatchObject({ kind: "supply.lot_registered", ok: false, code: "LOT_UNPROVEN" });
    // A disclosure of another lot does not recompute the kit's commitment: the lot stays unproven.
    const file = buildCustodyFile();
    const other = { ...file, disclosure: { ...DISCLOSURE, lot: IDS.shipment } };
    expect(await codes(other)).toEqual(["LOT_UNPROVEN", "LOT_UNPROVEN", "DISCLOSURE_MISMATCH"]);
  });

  it("warns of a destruction not witnessed, and says it proves the steps present", async () => {
    const r = await verify(buildCustodyFile(without("supply.destruction_witnessed")));
    expect(r).toMatchObject({ ok: true, errors: [], scope: CUSTODY_SCOPE });
    expect(r.warnings.map((w) => w.code)).toEqual(["NOT_WITNESSED"]);
    expect(r.steps.find((s) => s.kind === "supply.destruction_recorded")).toMatchObject({
      ok: true,
      warning: "NOT_WITNESSED",
    });
    expect(r.scope).toContain("integrity audit");
    expect((await verify(buildCustodyFile())).warnings).toEqual([]);
  });

  it("names a dispensing at another site than the shipment's, and a receipt without its shipment", async () => {
    const steps = life();
    const d = steps.find((s) => s.kind === "supply.kit_dispensed")!;
    d.fields = { ...d.fields, site: "S2" };
    expect(await codes(buildCustodyFile(steps))).toEqual(["SITE_MISMATCH"]);
    const unshipped = await codes(buildCustodyFile(without("supply.shipment_sent")));
    expect(unshipped).not.toContain("FOREIGN_BUNDLE");
    expect(unshipped.slice(0, 2)).toEqual(["STEP_MISSING", "STEP_MISSING"]); // the receipt, the decision
    const witnessOnly = await codes(buildCustodyFile(without("supply.destruction_recorded")));
    expect(witnessOnly).toEqual(["STEP_MISSING"]);
  });

  it("reads, pins and refuses what is not a custody file", async () => {
    expect(readCustodyText("{")).toEqual({ unreadable: "not JSON" });
    expect("unreadable" in readCustodyText('{"format":"trialseal-proof/v1"}')).toBe(true);
    const file = buildCustodyFile();
    expect(pinnedCustodyPolicy(c, file, POLICY_SHA256)).toEqual({ text: file.trustPolicyText });
    expect("problem" in pinnedCustodyPolicy(c, file, "0".repeat(64))).toBe(true);
    expect(await codes({ ...file, bundles: [] })).toEqual(["FILE_MALFORMED"]);
  });
});
