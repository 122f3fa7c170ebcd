/**
 * The allocations file (`trialseal export --study CODE --format allocations`, after unblinding; ADR 0055): the
 * revealed randomization list with the sealed entries that committed and used it, for `trialseal verify-allocations`
 * and the browser verifier. Every entry comes as a proof bundle (anchoring/verifier/bundle.ts), so the file is
 * checked offline against a trust policy: the deployment's policy travels in the file as its exact text, which
 * `--pin SHA256` pins (or `--trust policy.json` replaces). Browser-safe.
 */
import { z } from "zod";
import { BundleSchema } from "../verifier/bundle.ts";

export const ALLOCATIONS_FORMAT = "trialseal-allocations/1";
const hex32 = z.string().regex(/^[0-9a-f]{64}$/, "expected 32 bytes as lowercase hex");
const salt = z.string().regex(/^[A-Za-z0-9_-]{22}$/, "expected 16 bytes as base64url");

export const AllocationsFileSchema = z.strictObject({
  format: z.literal(ALLOCATIONS_FORMAT),
  study: z.string().min(1).max(64),
  exportedAt: z.string().max(64),
  /** The deployment's trust policy, as the exact text whose SHA-256 `--pin` names. */
  trustPolicyText: z.string().max(1_000_000),
  /** The `randomization.committed` entry and what it sealed by hash: the design's canonical JSON text. */
  commitment: z.strictObject({
    bundle: BundleSchema,
    designText: z.string().max(1_000_000),
    /** The list's secret design nonce (32 bytes, base64url): designHash = SHA-256(nonce, "\n", designText). */
    designNonce: z.string().regex(/^[A-Za-z0-9_-]{43}$/, "expected 32 bytes as base64url"),
    /** A generated list's seed (hex, 32 bytes): with the design it regenerates every slot; null for an upload. */
    seed: hex32.nullable(),
  }),
  /** Every stratum's revealed slots, in seq order (slot i at index i). */
  strata: z
    .array(
      z.strictObject({
        key: z.string().min(1).max(300),
        position: z.number().int().positive(),
        slots: z
          .array(
            z.strictObject({
              seq: z.number().int().min(0),
              arm: z.string().min(1).max(32),
              kitType: z.string().min(1).max(32),
              salt,
            }),
          )
          .max(100_000),
      }),
    )
    .max(2000),
  /** Each `randomization.allocated` entry, in log order, with the inclusion proof of its slot in its stratum's tree. */
  allocations: z.array(z.strictObject({ bundle: BundleSchema, inclusion: z.array(hex32).max(64) })).max(1_000_000),
  /** The `randomization.unblinded` entry and each `randomization.emergency_unblinded` entry. */
  unblinding: z.strictObject({ bundle: BundleSchema }),
  emergencyUnblindings: z.array(z.strictObject({ bundle: BundleSchema })).max(100_000),
});
export type AllocationsFile = z.infer<typeof AllocationsFileSchema>;
