/** Envelope and batch header: strict schemas and their canonical forms and leaf hashes. */
import { z } from "zod";
import { canonicalize } from "./canonical.ts";
import type { Crypto } from "./crypto.ts";
import { utf8 } from "./bytes.ts";
import { leafHash } from "./merkle.ts";

const hex32 = z.string().regex(/^[0-9a-f]{64}$/);
/**
 * Text that has a UTF-8 form: a lone surrogate (possible in a JS string, not in UTF-8 or JCS) is refused here, at
 * the edge.
 */
const text = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((v) => v.isWellFormed(), "not well-formed Unicode (lone surrogate)");
const nat = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
/** UTC RFC 3339 with milliseconds, as written by Date.prototype.toISOString. */
export const utcMillis = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/, "expected UTC time with milliseconds");

/**
 * The envelope `study` of entries that belong to no study (audit-trail events such as sign-ins, ADR 0016).
 * Lowercase, so no study code (capitals, digits, - and _) can take it.
 */
export const DEPLOYMENT_SCOPE = "deployment";

export const EnvelopeSchema = z.strictObject({
  v: z.literal(1),
  log: text(255),
  seq: nat,
  studySeq: nat,
  at: utcMillis,
  study: text(64),
  kind: text(64),
  payloadHash: hex32,
});
export type Envelope = z.infer<typeof EnvelopeSchema>;

export const BatchHeaderSchema = z.strictObject({
  v: z.literal(1),
  log: text(255),
  batch: nat,
  first: nat,
  size: z.number().int().min(1).max(10_000_000),
  root: hex32,
  sealedAt: utcMillis,
});
export type BatchHeader = z.infer<typeof BatchHeaderSchema>;

export function envelopeLeaf(c: Crypto, envelope: Envelope): { text: string; leaf: Uint8Array } {
  const text = canonicalize(envelope);
  return { text, leaf: leafHash(c, utf8(text)) };
}

export function headerLeaf(c: Crypto, header: BatchHeader): { text: string; leaf: Uint8Array } {
  const text = canonicalize(header);
  return { text, leaf: leafHash(c, utf8(text)) };
}
