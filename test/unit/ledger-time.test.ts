/**
 * Each ledger type's time resolution and drift (anchoring/ledgers/ledger-time.ts): the defaults, the trust policy's
 * optional `ledgerTime` overrides (policies without it keep their bytes), the EVM rule through the verifier against a
 * recorded chain, and "existed by" only ever on a valid report.
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { nodeCrypto, nodeSigner } from "../../anchoring/adapters/crypto-node.ts";
import { LEDGER_TIME_DEFAULTS, ledgerTime } from "../../anchoring/ledgers/ledger-time.ts";
import { parseTrustPolicy, PolicyError } from "../../anchoring/verifier/trust-policy.ts";
import { verifyBundle } from "../../anchoring/verifier/verify-bundle.ts";
import { trustPolicy } from "../../app/keys/log-keys.server.ts";
import { chainReader, generateVectors, type ChainSnapshot, type Vector } from "../vectors/bundles/generate.ts";

const vectors = generateVectors();
const evmVector = vectors["valid-evm-entry-within-drift"];

/** Verify the EVM vector's bundle with its block stamped `secondsBefore` the entry's time (09:00:04.000Z). */
async function withBlockTime(secondsBefore: number, v: Vector = evmVector, policy = v.policy) {
  const chain = structuredClone(v.chain!) as ChainSnapshot;
  chain.blocks[0].timestamp = Date.parse("2026-03-01T09:00:04.000Z") / 1000 - secondsBefore;
  return verifyBundle(nodeCrypto, v.bundle, policy, { evm: () => chainReader(chain) });
}

describe("ledger time resolution and drift", () => {
  it("has defaults per ledger type; the policy overrides them; an RFC 3161 token's accuracy is its drift", () => {
    expect(LEDGER_TIME_DEFAULTS).toEqual({
      local: { resolutionMs: 1, driftMs: 0 },
      evm: { resolutionMs: 1000, driftMs: 15_000 },
      rfc3161: { resolutionMs: 1000, driftMs: 1000 },
    });
    expect(ledgerTime("evm")).toEqual({ resolutionMs: 1000, driftMs: 15_000 });
    expect(ledgerTime("evm", { evm: { driftMs: 60_000 } })).toEqual({ resolutionMs: 1000, driftMs: 60_000 });
    expect(ledgerTime("evm", { local: { driftMs: 60_000 } })).toEqual({ resolutionMs: 1000, driftMs: 15_000 });
    expect(ledgerTime("rfc3161", undefined, { driftMs: 250 })).toEqual({ resolutionMs: 1000, driftMs: 250 });
    expect(ledgerTime("rfc3161", { rfc3161: { driftMs: 5000 } }, { driftMs: 250 })).toEqual({
      resolutionMs: 1000,
      driftMs: 5000,
    });
    expect(ledgerTime("local", { local: { resolutionMs: 1000 } })).toEqual({ resolutionMs: 1000, driftMs: 0 });
  });

  it("EVM: an entry up to 1 s + 15 s after its block time verifies; later is ENTRY_AFTER_ANCHOR", async () => {
    // The policy allows no deployment clock skew (maxSkewMs 0): only the block time's own resolution and drift.
    expect(evmVector.policy.maxSkewMs).toBe(0);
    for (const s of [0, 1, 2, 15, 16]) {
      const r = await withBlockTime(s);
      expect(r.verdict, `${s} s: ${JSON.stringify(r.steps.filter((x) => x.status === "failed"))}`).toBe("valid");
      expect(r.anchors[0]).toMatchObject({ ledger: "evm", status: "ok", resolutionMs: 1000, driftMs: 15_000 });
      expect(r.existedBy?.ledger).toBe("evm");
      // "existed by" is what the anchor proves (block time + 1 s + 15 s), never before the entry's own time.
      expect(r.existedBy?.attested).toBe(r.anchors[0].time);
      expect(Date.parse(r.existedBy!.time)).toBe(Date.parse(r.anchors[0].time!) + 16_000);
    }
    const late = await withBlockTime(17);
    expect(late.verdict).toBe("invalid");
    expect(late.steps.find((x) => x.status === "failed")).toMatchObject({
      step: "anchors.time",
      code: "ENTRY_AFTER_ANCHOR",
    });
    expect(late.steps.find((x) => x.status === "failed")?.message).toMatch(/still 1000 ms late \(allowed skew 0 ms\)/);
    // maxSkewMs (the deployment clock's skew) comes on top of the ledger's own resolution and drift.
    const skewed = { ...evmVector.policy, maxSkewMs: 300_000 };
    expect((await withBlockTime(316, evmVector, skewed)).verdict).toBe("valid");
    expect((await withBlockTime(317, evmVector, skewed)).verdict).toBe("invalid");
    // The policy's ledgerTime narrows (or widens) what EVM time is allowed.
    const noDrift = { ...evmVector.policy, ledgerTime: { evm: { driftMs: 0 } } };
    expect((await withBlockTime(1, evmVector, noDrift)).verdict).toBe("valid");
    expect((await withBlockTime(2, evmVector, noDrift)).verdict).toBe("invalid");
    const wide = { ...evmVector.policy, ledgerTime: { evm: { resolutionMs: 1000, driftMs: 60_000 } } };
    expect((await withBlockTime(61, evmVector, wide)).verdict).toBe("valid");
  });

  it("an invalid report never says when the entry existed", async () => {
    const late = await withBlockTime(120);
    expect(late.verdict).toBe("invalid");
    expect(late.existedBy).toBeUndefined();
    const tampered = structuredClone(evmVector);
    (tampered.bundle as { payload: { values: { sbp: number } } }).payload.values.sbp = 121;
    const r = await withBlockTime(2, tampered);
    expect(r.verdict).toBe("invalid");
    expect(r.anchors[0].status).toBe("ok"); // the anchor itself still holds ...
    expect(r.existedBy).toBeUndefined(); // ... but an invalid bundle proves nothing
    for (const report of [late, r]) expect(JSON.stringify(report.steps)).not.toMatch(/existed by/i);
  });

  it("the trust policy format accepts policies with and without ledgerTime, and refuses malformed overrides", () => {
    const published = { ...evmVector.policy, maxSkewMs: 300_000 };
    const parsed = parseTrustPolicy(JSON.parse(JSON.stringify(published)));
    expect("ledgerTime" in parsed).toBe(false);
    expect(parseTrustPolicy({ ...published, ledgerTime: { evm: { driftMs: 30_000 } } }).ledgerTime).toEqual({
      evm: { driftMs: 30_000 },
    });
    for (const bad of [{ evm: { driftMs: -1 } }, { evm: { skew: 1 } }, { tsa: { driftMs: 1 } }, { evm: 5 }])
      expect(() => parseTrustPolicy({ ...published, ledgerTime: bad })).toThrow(PolicyError);
  });

  it("the app's policy builder writes ledgerTime only when configured: unconfigured output keeps its bytes", () => {
    const signer = nodeSigner(new Uint8Array(32).fill(9));
    const json = (p: unknown) => `${JSON.stringify(p, null, 2)}\n`;
    const sha = (s: string) => createHash("sha256").update(s).digest("hex");
    const plain = json(trustPolicy(nodeCrypto, "example.test/log", signer));
    // The SHA-256 of the same policy as built before ledgerTime existed.
    expect(sha(plain)).toBe("bf4045e3224e07dd21b05d86dbededb76f3bb15ced30020309da3bfaafa03a4c");
    expect(json(trustPolicy(nodeCrypto, "example.test/log", signer, {}, undefined, {}))).toBe(plain);
    const configured = trustPolicy(nodeCrypto, "example.test/log", signer, {}, undefined, { evm: { driftMs: 30_000 } });
    expect(Object.keys(configured).at(-1)).toBe("ledgerTime");
    expect(parseTrustPolicy(JSON.parse(json(configured))).ledgerTime).toEqual({ evm: { driftMs: 30_000 } });
  });
});
