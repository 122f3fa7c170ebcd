/**
 * Key rotation and revocation on PGlite and PostgreSQL: the log key and the local ledger key are rotated; every
 * checkpoint and ledger record made before stays verifiable under the new trust policy, new ones are signed by
 * the new keys; a pinned old policy does not accept the new key (it must be re-published); a checkpoint forged
 * with the retired key beyond its window is refused; revoking a compromised key from a size on refuses what it
 * signed there, and proofs of the entries it covered are served with a checkpoint of the current key instead.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { findEntryByRef, proofBundle } from "../../app/log/proofs.server.ts";
import { anchorOnce, deploymentTrustPolicy } from "../../app/anchor-worker/anchor-worker.server.ts";
import { listKeys, revokeKey, rotateKey } from "../../app/keys/key-rotation.server.ts";
import { buildLedgers } from "../../app/anchor-worker/ledger-factory.server.ts";
import { runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import { verifyBundle } from "../../anchoring/verifier/verify-bundle.ts";
import { nodeSigner } from "../../anchoring/adapters/crypto-node.ts";
import { parseNote, signNote } from "../../anchoring/log/checkpoint.ts";
import type { Bundle } from "../../anchoring/verifier/bundle.ts";

let t: TestDb;
beforeAll(async () => {
  t = await openTestDatabase();
});
afterAll(async () => {
  await t?.close();
});

async function newEntry(code: string): Promise<string> {
  const r = await createStudy(t.ctx, { code, title: code, sites: [{ code: "A", name: "A" }] }, null);
  await sealAll(t.ctx);
  await anchorOnce(t.ctx, { ledgers: ["local"] });
  const [row] = await t.database.execute(
    `SELECT id FROM ledger_entries WHERE kind = 'study.registered' AND payload_text LIKE '%"${code}"%'`,
  );
  expect(row, code).toBeDefined();
  void r;
  return String(row.id);
}
async function bundleOf(id: string): Promise<Bundle> {
  const r = await proofBundle(t.ctx, (await findEntryByRef(t.ctx, id))!);
  if (r.status !== "sealed") throw new Error("not sealed");
  return r.bundle;
}
const failedCodes = (r: Awaited<ReturnType<typeof verifyBundle>>) =>
  r.steps.filter((s) => s.status === "failed").map((s) => s.code);

describe(`key rotation and revocation on ${engineUnderTest()}`, () => {
  it(
    "rotates both keys; old and new proofs verify under the new policy; " +
      "a retired or revoked key's signatures beyond its window are refused",
    async () => {
      const e1 = await newEntry("KR-1");
      const oldPolicy = deploymentTrustPolicy(t.ctx);
      const b1 = await bundleOf(e1);
      const size1 = b1.checkpoints[0].log.treeSize;
      expect((await verifyBundle(t.ctx.crypto, b1, oldPolicy, { require: ["local"] })).verdict).toBe("valid");
      const before = listKeys(t.ctx);
      expect(before.log).toHaveLength(1);
      const oldLogSeed = new Uint8Array(
        Buffer.from(readFileSync(path.join(t.ctx.env.dataDir, "keys", before.log[0].file), "utf8").trim(), "hex"),
      );

      // Rotate both keys.
      const log = await rotateKey(t.ctx, "log");
      expect(log.old.untilSize).toBe(size1 + 1);
      expect(log.current.fromSize).toBe(size1 + 1);
      const local = await rotateKey(t.ctx, "local");
      expect(local.current.notBefore).toBe(local.old.notAfter);
      // The running signer follows the ring.
      expect(Buffer.from(t.ctx.signer.publicKey).toString("hex")).toBe(log.current.publicKey);

      const e2 = await newEntry("KR-2");
      const b2 = await bundleOf(e2);
      const size2 = b2.checkpoints[0].log.treeSize;
      expect(size2).toBeGreaterThan(size1);
      const policy = deploymentTrustPolicy(t.ctx);
      expect(policy.logKeys.map((k) => [k.fromSize, k.untilSize])).toEqual([
        [0, size1 + 1],
        [size1 + 1, null],
      ]);
      expect((policy.ledgers.local as { keys: unknown[] }).keys).toHaveLength(2);
      for (const b of [b1, await bundleOf(e1), b2]) {
        const r = await verifyBundle(t.ctx.crypto, b, policy, { require: ["local"] });
        expect(r.verdict, JSON.stringify(r.steps.filter((s) => s.status === "failed"))).toBe("valid");
      }
      // The whole-log audit (every checkpoint signature against the ring's windows) stays clean across the rotation.
      const audit = await runIntegrityAudit(t.ctx);
      expect(audit.findings, JSON.stringify(audit.findings)).toEqual([]);
      // A verifier still pinning the old policy does not know the new key: the new proof fails until it updates.
      expect(failedCodes(await verifyBundle(t.ctx.crypto, b2, oldPolicy))).toContain("SIGNATURE_INVALID");
      // The local ledger file, with records under both keys, opens and verifies as a whole.
      const reopened = buildLedgers(t.ctx.env, t.ctx.crypto).find((l) => l.ledger.name === "local")!
        .ledger as unknown as { store: { all(): { pos: number }[] } };
      expect(reopened.store.all().length).toBeGreaterThanOrEqual(2);

      // Whoever stole the retired log key signs a checkpoint of the current size: refused (outside its window).
      const forged = structuredClone(b2);
      const text = parseNote(b2.checkpoints[0].note).text;
      forged.checkpoints[0].note = signNote(t.ctx.crypto, text, t.ctx.env.logOrigin, nodeSigner(oldLogSeed));
      forged.checkpoints[0].anchors = [];
      // A good signature by that key...
      expect((await verifyBundle(t.ctx.crypto, forged, oldPolicy)).verdict).toBe("valid");
      // ...outside its window.
      expect(failedCodes(await verifyBundle(t.ctx.crypto, forged, policy))).toEqual(["SIGNATURE_INVALID"]);

      // The old key turns out to have been compromised from size1 on: revoke it from there.
      await expect(
        revokeKey(t.ctx, "log", { key: log.current.publicKey, fromSize: 0, reason: "test" }),
      ).rejects.toMatchObject({ code: "conflict" }); // the current key: rotate first
      const revoked = await revokeKey(t.ctx, "log", {
        key: log.old.publicKey,
        fromSize: size1,
        reason: "key file leaked",
      });
      expect(revoked.untilSize).toBe(size1);
      const after = deploymentTrustPolicy(t.ctx);
      // What it signed at size1 is no longer trusted...
      expect(failedCodes(await verifyBundle(t.ctx.crypto, b1, after))).toContain("NO_VALID_KEY");
      // ...and the entry's proof, fetched again, is served with the current key's checkpoint, and verifies.
      const again = await bundleOf(e1);
      expect(again.checkpoints.every((c) => c.log.treeSize > size1)).toBe(true);
      const r = await verifyBundle(t.ctx.crypto, again, after);
      expect(r.verdict, JSON.stringify(r.steps.filter((s) => s.status === "failed"))).toBe("valid");
      // The audit names the checkpoint the revoked key signed inside its revoked range.
      const audit2 = await runIntegrityAudit(t.ctx);
      expect(audit2.findings.length).toBeGreaterThan(0);
      expect(JSON.stringify(audit2.findings)).toContain(String(size1));
      expect(listKeys(t.ctx).log.find((k) => k.publicKey === log.old.publicKey)!.note).toBe("revoked: key file leaked");
      // Bad requests are refused with the field named.
      await expect(revokeKey(t.ctx, "log", { key: "zz", fromSize: 1, reason: "x" })).rejects.toMatchObject({
        field: "key",
      });
      await expect(
        revokeKey(t.ctx, "local", { key: local.old.publicKey, fromSize: 1, reason: "x" }),
      ).rejects.toMatchObject({ field: "from-size" });
      await expect(
        revokeKey(t.ctx, "local", { key: local.old.publicKey, fromTime: "yesterday-ish", reason: "x" }),
      ).rejects.toMatchObject({ field: "from-time" });
    },
  );
});
