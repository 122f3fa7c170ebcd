/** The log's Ed25519 signing key, generated on first start into <DATA_DIR>/keys (outside the database). */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { nodeSigner } from "../../anchoring/crypto-node.ts";
import type { Crypto, Signer } from "../../anchoring/crypto.ts";
import { vkeyString } from "../../anchoring/note.ts";
import type { TrustPolicy } from "../../anchoring/policy.ts";
import type { LedgerPolicy } from "../../anchoring/ledgers/receipt.ts";

export function loadOrCreateSeed(file: string): Uint8Array {
  if (existsSync(file)) {
    const hex = readFileSync(file, "utf8").trim();
    if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`${file} is not a 32-byte hex key`);
    return new Uint8Array(Buffer.from(hex, "hex"));
  }
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const seed = randomBytes(32);
  writeFileSync(file, seed.toString("hex") + "\n", { mode: 0o600, flag: "wx" });
  return new Uint8Array(seed);
}

export function logSigner(dataDir: string): Signer {
  return nodeSigner(loadOrCreateSeed(path.join(dataDir, "keys", "log-ed25519.key")));
}

/** The deployment's trust policy (published at /.well-known/trialseal.json). */
export function trustPolicy(crypto: Crypto, origin: string, signer: Signer, ledgers: Record<string, LedgerPolicy> = {}): TrustPolicy {
  return {
    format: "trialseal-trust/v1",
    origin,
    logKeys: [{ vkey: vkeyString(crypto, origin, signer.publicKey), fromSize: 0, untilSize: null, notBefore: null, notAfter: null }],
    ledgers,
    maxSkewMs: 300_000,
  };
}
