/**
 * Personal data at rest: AES-256-GCM under DATA_KEY. Stored as version byte || 12-byte IV || ciphertext || tag.
 * The associated data binds a value to its table, column and row, so a ciphertext cannot be moved to another
 * participant or field without failing to decrypt.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

const VERSION = 1;

export function encryptField(key: Uint8Array, plaintext: string, aad: string): Uint8Array {
  if (key.length !== 32) throw new Error("DATA_KEY must be 32 bytes");
  const iv = randomBytes(12);
  const c = createCipheriv("aes-256-gcm", key, iv);
  c.setAAD(Buffer.from(aad, "utf8"));
  const body = Buffer.concat([c.update(plaintext, "utf8"), c.final()]);
  return new Uint8Array(Buffer.concat([Buffer.from([VERSION]), iv, body, c.getAuthTag()]));
}

export function decryptField(key: Uint8Array, blob: Uint8Array, aad: string): string {
  if (blob.length < 1 + 12 + 16 || blob[0] !== VERSION) throw new Error("not an encrypted field of a known version");
  const b = Buffer.from(blob);
  const d = createDecipheriv("aes-256-gcm", key, b.subarray(1, 13));
  d.setAAD(Buffer.from(aad, "utf8"));
  d.setAuthTag(b.subarray(b.length - 16));
  return Buffer.concat([d.update(b.subarray(13, b.length - 16)), d.final()]).toString("utf8");
}
