/** The proof bundle format `trialseal-proof/v1` (see docs/proof-format.md). */
import { z } from "zod";

const hex32 = z.string().regex(/^[0-9a-f]{64}$/, "expected 32 bytes as lowercase hex");
const nat = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const path = z.array(hex32).max(64);

export const BundleCheckpointSchema = z.strictObject({
  note: z.string().min(1).max(100_000),
  log: z.strictObject({ index: nat, treeSize: nat, inclusion: path }),
  anchors: z.array(z.unknown()).max(64).default([]),
});

/** Outer shape only: payload, envelope and header are checked by their own steps of the verifier. */
export const BundleSchema = z.strictObject({
  format: z.literal("trialseal-proof/v1"),
  payload: z.record(z.string(), z.unknown()),
  envelope: z.record(z.string(), z.unknown()),
  batch: z.strictObject({ header: z.record(z.string(), z.unknown()), leafIndex: nat, inclusion: path }),
  checkpoints: z.array(BundleCheckpointSchema).min(1).max(16),
  /**
   * For a record.saved entry of version 3 on: the form version's definition, exactly its stored canonical text
   * (its SHA-256 is the payload's `formSha256`), so the verifier can recompute the calculated fields and check
   * branching (ADR 0028). Optional: bundles made before it, and bundles of other kinds, have none.
   */
  form: z.strictObject({ definition: z.string().min(1).max(2_000_000) }).optional(),
});

export type Bundle = z.infer<typeof BundleSchema>;
export type BundleCheckpoint = z.infer<typeof BundleCheckpointSchema>;
