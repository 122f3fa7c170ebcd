import {
  appendFileSync,
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { nodeCrypto, nodeSigner } from "../../anchoring/adapters/crypto-node.ts";
import { nobleCrypto } from "../../anchoring/log/crypto-noble.ts";
import { toHex, utf8 } from "../../anchoring/log/bytes.ts";
import { LedgerError } from "../../anchoring/ledgers/ledger.ts";
import { LocalLedger, LocalLedgerCorrupt } from "../../anchoring/adapters/local-ledger-file.ts";
import { verifyAnchor } from "../../anchoring/verifier/verify-anchor.ts";
import { cp, hashOf, req } from "../helpers/checkpoints.ts";

const signer = nodeSigner(new Uint8Array(32).fill(3));
const other = nodeSigner(new Uint8Array(32).fill(4));

function ledgerIn(dir: string, s = signer) {
  return new LocalLedger({ name: "local", ledgerId: "trialseal.test/local", dir, signer: s, crypto: nodeCrypto });
}

describe("local ledger (signed, hash-chained file)", () => {
  it(
    "appends chained, signed records; is idempotent per checkpoint; " + "its receipts verify with only its public key",
    async () => {
      const dir = mkdtempSync(path.join(tmpdir(), "ts-ledger-"));
      const l = ledgerIn(dir);
      const a = await l.anchor(req(1));
      const b = await l.anchor(req(2));
      const again = await l.anchor(req(1));
      expect(again.receipt).toEqual(a.receipt);
      expect(a.status).toBe("final");
      if (a.receipt.type !== "local" || b.receipt.type !== "local") throw new Error("local receipts expected");
      expect(a.receipt.record.pos).toBe(0);
      expect(a.receipt.record.prev).toBe("0".repeat(64));
      expect(b.receipt.record.prev).toBe(
        toHex(nodeCrypto.sha256(utf8(readFileSync(l.store.file, "utf8").split("\n")[0]))),
      );
      expect(readFileSync(l.store.file, "utf8").trim().split("\n")).toHaveLength(2);
      const ledgers = { local: l.policy() };
      for (const c of [nodeCrypto, nobleCrypto]) {
        const r = await verifyAnchor(c, { ledger: "local", receipt: b.receipt }, cp(2), ledgers);
        expect(r, JSON.stringify(r)).toMatchObject({ status: "ok", time: b.receipt.record.time });
      }
      // A receipt for a different checkpoint, a forged signature, an unknown ledger, a key outside its window.
      const wrong = await verifyAnchor(nodeCrypto, { ledger: "local", receipt: a.receipt }, cp(2), ledgers);
      expect(wrong.code).toBe("ANCHOR_CHECKPOINT_MISMATCH");
      const forged = structuredClone(b.receipt);
      forged.record.time = "2020-01-01T00:00:00.000Z";
      expect((await verifyAnchor(nodeCrypto, { ledger: "local", receipt: forged }, cp(2), ledgers)).code).toBe(
        "LOCAL_SIGNATURE_INVALID",
      );
      const otherKey = {
        local: { ...l.policy(), keys: [{ publicKey: toHex(other.publicKey), notBefore: null, notAfter: null }] },
      };
      expect((await verifyAnchor(nodeCrypto, { ledger: "local", receipt: b.receipt }, cp(2), otherKey)).code).toBe(
        "LOCAL_SIGNATURE_INVALID",
      );
      const expired = {
        local: {
          ...l.policy(),
          keys: [{ publicKey: toHex(signer.publicKey), notBefore: null, notAfter: "2020-01-01T00:00:00.000Z" }],
        },
      };
      expect((await verifyAnchor(nodeCrypto, { ledger: "local", receipt: b.receipt }, cp(2), expired)).code).toBe(
        "LOCAL_NO_VALID_KEY",
      );
      expect((await verifyAnchor(nodeCrypto, { ledger: "nope", receipt: b.receipt }, cp(2), ledgers)).code).toBe(
        "ANCHOR_UNKNOWN_LEDGER",
      );
      expect(
        (await verifyAnchor(nodeCrypto, { ledger: "local", receipt: { type: "local" } }, cp(2), ledgers)).code,
      ).toBe("ANCHOR_MALFORMED");
      // A tree size that does not grow is refused for good.
      await expect(l.anchor({ ...req(1), checkpointHash: hashOf(99) })).rejects.toMatchObject({ retryable: false });
    },
  );

  it("re-verifies the whole file on open: an edited, reordered or foreign-signed line refuses to open", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "ts-ledger-"));
    const l = ledgerIn(dir);
    for (const n of [1, 2, 3]) await l.anchor(req(n));
    const good = readFileSync(l.store.file, "utf8");
    expect(ledgerIn(dir).store.size).toBe(3);
    const lines = good.trim().split("\n");
    const edits: [string, string][] = [
      ["edited tree size", good.replace('"treeSize":2', '"treeSize":7')],
      ["dropped record", `${[lines[0], lines[2]].join("\n")}\n`],
      ["swapped records", `${[lines[1], lines[0], lines[2]].join("\n")}\n`],
      ["not JSON", good.replace(lines[1], "{oops")],
    ];
    for (const [what, text] of edits) {
      writeFileSync(l.store.file, text);
      expect(() => ledgerIn(dir), what).toThrow(LocalLedgerCorrupt);
    }
    writeFileSync(l.store.file, good);
    expect(() => ledgerIn(dir, other)).toThrow(/signature does not verify/);
  });

  it("cuts an unfinished last line (a crash mid-write) and keeps every complete record", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "ts-ledger-"));
    const l = ledgerIn(dir);
    await l.anchor(req(1));
    appendFileSync(l.store.file, '{"format":"trialseal-local-ledger/v1","ledger":"tri');
    const reopened = ledgerIn(dir);
    expect(reopened.store.size).toBe(1);
    const r = await reopened.anchor(req(2));
    if (r.receipt.type !== "local") throw new Error();
    expect(r.receipt.record.pos).toBe(1);
    const lines = readFileSync(l.store.file, "utf8").split("\n");
    expect(lines).toHaveLength(3);
    expect(lines[2]).toBe("");
    expect(ledgerIn(dir).store.size).toBe(2);
  });

  it("two writers sharing the directory keep one chain (each reads the other's appends under the lock)", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "ts-ledger-"));
    const a = ledgerIn(dir);
    const b = ledgerIn(dir);
    await a.anchor(req(1));
    await b.anchor(req(2));
    await a.anchor(req(3));
    const c = ledgerIn(dir);
    expect(c.store.all().map((r) => [r.pos, r.treeSize])).toEqual([
      [0, 1],
      [1, 2],
      [2, 3],
    ]);
  });

  it("a full disk gives a clear, retryable error, returns no receipt, and the ledger stays usable", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "ts-ledger-"));
    const l = ledgerIn(dir);
    await l.anchor(req(1));
    const good = readFileSync(l.store.file);
    // Point the ledger file at /dev/full (every write fails with ENOSPC), as root and non-root alike.
    renameSync(l.store.file, `${l.store.file}.saved`);
    symlinkSync("/dev/full", l.store.file);
    const full = ledgerIn(dir);
    const err = await full.anchor(req(2)).catch((e) => e);
    expect(err).toBeInstanceOf(LedgerError);
    expect(err.message).toMatch(/cannot write the local ledger .*: the disk is full \(ENOSPC\)/);
    expect(err.retryable).toBe(true);
    expect(full.store.size).toBe(0);
    // Space comes back: the saved file is intact and the next append continues its chain.
    unlinkSync(l.store.file);
    renameSync(`${l.store.file}.saved`, l.store.file);
    expect(readFileSync(l.store.file)).toEqual(good);
    const again = ledgerIn(dir);
    const r = await again.anchor(req(2));
    if (r.receipt.type !== "local") throw new Error();
    expect(r.receipt.record.pos).toBe(1);
  });

  it(
    "a read-only data directory gives a clear, retryable error; " +
      "the ledger file is untouched and usable once writable",
    async () => {
      // A real read-only file system (a tmpfs remounted ro) as root, where permission bits do not bind;
      // otherwise the permission bits.
      const base = mkdtempSync(path.join(tmpdir(), "ts-ledger-ro-"));
      const asRoot = process.getuid?.() === 0;
      if (asRoot) execFileSync("mount", ["-t", "tmpfs", "-o", "size=4m", "trialseal-ro-test", base]);
      const dir = path.join(base, "ledger");
      mkdirSync(dir);
      const setReadOnly = (ro: boolean) => {
        if (asRoot) execFileSync("mount", ["-o", `remount,${ro ? "ro" : "rw"}`, base]);
        else chmodSync(dir, ro ? 0o555 : 0o755);
      };
      try {
        const l = ledgerIn(dir);
        await l.anchor(req(1));
        const good = readFileSync(l.store.file);
        setReadOnly(true);
        if (!asRoot) chmodSync(l.store.file, 0o444);
        const err = await ledgerIn(dir)
          .anchor(req(2))
          .catch((e) => e);
        expect(err).toBeInstanceOf(LedgerError);
        expect(err.message).toMatch(
          /cannot write the local ledger .*: the ledger directory is not writable \((EROFS|EACCES|EPERM)\)/,
        );
        expect(err.retryable).toBe(true);
        expect(readFileSync(l.store.file)).toEqual(good);
        setReadOnly(false);
        if (!asRoot) chmodSync(l.store.file, 0o644);
        const r = await ledgerIn(dir).anchor(req(2));
        if (r.receipt.type !== "local") throw new Error();
        expect(r.receipt.record.pos).toBe(1);
        expect(
          ledgerIn(dir)
            .store.all()
            .map((x) => x.treeSize),
        ).toEqual([1, 2]);
      } finally {
        if (asRoot) execFileSync("umount", [base]);
      }
    },
  );
});
