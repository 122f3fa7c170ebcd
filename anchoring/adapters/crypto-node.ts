/** Server/CLI crypto provider on node:crypto (much faster Ed25519 verification than pure JS). */
import {
  createPrivateKey,
  createPublicKey,
  hash,
  sign as nodeSign,
  verify as nodeVerify,
  type KeyObject,
} from "node:crypto";
import type { Crypto, Signer } from "../log/crypto.ts";

const ED25519_SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");
const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

const keyCache = new Map<string, KeyObject>();

function publicKeyObject(raw: Uint8Array): KeyObject {
  const id = Buffer.from(raw).toString("hex");
  let k = keyCache.get(id);
  if (!k) {
    k = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: "der", type: "spki" });
    if (keyCache.size > 256) keyCache.clear();
    keyCache.set(id, k);
  }
  return k;
}

export const nodeCrypto: Crypto = {
  // A Buffer is a Uint8Array; returning it as is saves an object per hash (Merkle builds are per-call bound).
  sha256: (data) => hash("sha256", data, "buffer") as unknown as Uint8Array,
  ed25519Verify(publicKey, message, signature) {
    if (publicKey.length !== 32 || signature.length !== 64) return false;
    try {
      return nodeVerify(null, message, publicKeyObject(publicKey), signature);
    } catch {
      return false;
    }
  },
};

/** An Ed25519 signer from a 32-byte seed. */
export function nodeSigner(seed: Uint8Array): Signer {
  if (seed.length !== 32) throw new Error("an Ed25519 seed is 32 bytes");
  const priv = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: "der", type: "pkcs8" });
  const spki = createPublicKey(priv).export({ format: "der", type: "spki" });
  const publicKey = new Uint8Array(spki.subarray(spki.length - 32));
  return { publicKey, sign: (m) => new Uint8Array(nodeSign(null, m, priv)) };
}
