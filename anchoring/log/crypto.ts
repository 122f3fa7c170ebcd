/**
 * Cryptographic primitives the core needs, injected so that the same code runs on the server
 * (node:crypto, see crypto-node.ts) and in the browser (@noble, see crypto-noble.ts).
 */
export interface Crypto {
  sha256(data: Uint8Array): Uint8Array;
  /** Ed25519 verification of `signature` over `message` by the 32-byte raw `publicKey`. */
  ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
}

/** A signer holds a private key (server side only). */
export interface Signer {
  publicKey: Uint8Array;
  sign(message: Uint8Array): Uint8Array;
}
