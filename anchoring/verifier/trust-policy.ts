/**
 * The trust policy (versioned JSON): the log origin, the log's verifier keys each with a validity window
 * (by tree size and by time, so keys can be rotated and revoked), and per-ledger verification data.
 * A verifier never trusts a policy fetched from the deployment it checks unless it is pinned by SHA-256.
 */
import { z } from "zod";
import { utcMillis } from "../log/envelope.ts";
import { LedgerTimePolicySchema } from "../ledgers/ledger-time.ts";

const nat = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const LogKeySchema = z.strictObject({
  vkey: z.string().min(1).max(1000),
  /** The key signs checkpoints with fromSize <= tree size < untilSize (untilSize null: open-ended). */
  fromSize: nat.default(0),
  untilSize: nat.nullable().default(null),
  /** Entries written (envelope `at`) outside [notBefore, notAfter) are not covered by this key. */
  notBefore: utcMillis.nullable().default(null),
  notAfter: utcMillis.nullable().default(null),
});

export const TrustPolicySchema = z.strictObject({
  format: z.literal("trialseal-trust/v1"),
  origin: z.string().min(1).max(255),
  logKeys: z.array(LogKeySchema).min(1),
  /** Per-ledger verification data, added by the anchoring ledgers. */
  ledgers: z.record(z.string(), z.unknown()).default({}),
  /**
   * Allowed skew of the deployment's clock (which stamps entries) when comparing an entry's time with anchor
   * times; each ledger's own resolution and drift (ledgerTime) come on top of it.
   */
  maxSkewMs: nat.default(300_000),
  /**
   * Optional overrides of each ledger type's time resolution and drift (anchoring/ledgers/ledger-time.ts has the
   * defaults). Absent from policies that do not configure it, so policies published before it keep their bytes.
   */
  ledgerTime: LedgerTimePolicySchema.optional(),
});

export type TrustPolicy = z.infer<typeof TrustPolicySchema>;
export type LogKey = z.infer<typeof LogKeySchema>;

export class PolicyError extends Error {
  readonly code = "POLICY_INVALID";
}

export function parseTrustPolicy(input: unknown): TrustPolicy {
  const r = TrustPolicySchema.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new PolicyError(`trust policy: ${i.path.join(".") || "policy"}: ${i.message}`);
  }
  return r.data;
}
