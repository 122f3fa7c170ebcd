/**
 * How exactly each ledger type's time is known (pure; see docs/ledgers.md "Time window"). An anchor's time T
 * proves its checkpoint existed by T + resolution + drift at the latest:
 *
 * - resolution: how coarse the ledger writes time (an EVM block timestamp is whole seconds, so a block stamped
 *   14:03:22 may have been made at 14:03:22.999);
 * - drift: how far the ledger's clock may lag true time (an EVM chain accepts block timestamps within about 15 s
 *   of its nodes' clocks; a TSA states its accuracy in the token).
 *
 * The verifier uses these defaults unless the trust policy's `ledgerTime` overrides them per ledger type.
 */
import { z } from "zod";

export type LedgerType = "local" | "evm" | "rfc3161";

export interface LedgerTime {
  /** How coarse the ledger's time is, in ms (1: millisecond timestamps; 1000: whole seconds). */
  resolutionMs: number;
  /** How far the ledger's clock may lag true time, in ms. */
  driftMs: number;
}

export const LEDGER_TIME_DEFAULTS: Readonly<Record<LedgerType, Readonly<LedgerTime>>> = {
  // The record time is the deployment's own clock (the same clock that stamps the entries), in milliseconds.
  local: { resolutionMs: 1, driftMs: 0 },
  // Block timestamps are whole seconds; consensus accepts a timestamp up to 15 s off the nodes' clocks.
  evm: { resolutionMs: 1_000, driftMs: 15_000 },
  // genTime is read as whole seconds (fractions are optional in RFC 3161); drift is the token's own `accuracy`
  // when it states one, else 1 s (the accuracy ETSI EN 319 421 requires of a time-stamping unit's clock).
  rfc3161: { resolutionMs: 1_000, driftMs: 1_000 },
};

const ms = z.number().int().min(0).max(86_400_000);

/** One ledger type's override in the trust policy: either value may be given alone. */
export const LedgerTimeOverrideSchema = z.strictObject({
  resolutionMs: ms.optional(),
  driftMs: ms.optional(),
});

/** The trust policy's optional `ledgerTime` key: overrides per ledger type (local, evm, rfc3161). */
export const LedgerTimePolicySchema = z.strictObject({
  local: LedgerTimeOverrideSchema.optional(),
  evm: LedgerTimeOverrideSchema.optional(),
  rfc3161: LedgerTimeOverrideSchema.optional(),
});
export type LedgerTimeOverride = z.infer<typeof LedgerTimeOverrideSchema>;
export type LedgerTimePolicy = z.infer<typeof LedgerTimePolicySchema>;

const isType = (t: string): t is LedgerType => Object.hasOwn(LEDGER_TIME_DEFAULTS, t);

/**
 * The resolution and drift to apply to an anchor of `type`: the policy's override when it gives one, else
 * what the receipt itself states (an RFC 3161 token's accuracy), else the type's default.
 */
export function ledgerTime(type: string, policy?: LedgerTimePolicy, stated: { driftMs?: number } = {}): LedgerTime {
  if (!isType(type)) return { resolutionMs: 0, driftMs: 0 };
  const d = LEDGER_TIME_DEFAULTS[type];
  const o = policy?.[type];
  return {
    resolutionMs: o?.resolutionMs ?? d.resolutionMs,
    driftMs: o?.driftMs ?? stated.driftMs ?? d.driftMs,
  };
}

/** The latest moment (ms since the epoch) an anchor at `time` proves its checkpoint existed by. */
export function latestProven(time: string, t: LedgerTime): number {
  return Date.parse(time) + t.resolutionMs + t.driftMs;
}
