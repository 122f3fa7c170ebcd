/** Browser-safe crypto provider built on @noble (pure JS, no node: imports). */
import { sha256 } from "@noble/hashes/sha2.js";
import { ed25519 } from "@noble/curves/ed25519.js";
import type { Crypto, Signer } from "./crypto.ts";

export const nobleCrypto: Crypto = {
  sha256: (data) => sha256(data),
  ed25519Verify(publicKey, message, signature) {
    try {
      return ed25519.verify(signature, message, publicKey, { zip215: false });
    } catch {
      return false;
    }
  },
};

export function nobleSigner(seed: Uint8Array): Signer {
  return { publicKey: ed25519.getPublicKey(seed), sign: (m) => ed25519.sign(m, seed) };
}
