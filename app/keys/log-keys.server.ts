/**
 * The log's Ed25519 signing key ring, generated on first start into <DATA_DIR>/keys (outside the database), and the
 * trust policy.
 */
import { fromHex, toHex } from "../../anchoring/log/bytes.ts";
import { ringSigner, type RingKey } from "./key-ring.server.ts";
import type { Crypto, Signer } from "../../anchoring/log/crypto.ts";
import { vkeyString } from "../../anchoring/log/checkpoint.ts";
import type { TrustPolicy } from "../../anchoring/verifier/trust-policy.ts";
import type { LedgerPolicy } from "../../anchoring/ledgers/receipt.ts";
import type { LedgerTimePolicy } from "../../anchoring/ledgers/ledger-time.ts";

export { loadOrCreateSeed } from "./key-ring.server.ts";

/** The log's signer: always the current key of the log key ring (app/keys/key-ring.server.ts). */
export function logSigner(dataDir: string): Signer {
  return ringSigner(dataDir, "log");
}

/**
 * The deployment's trust policy (published at /.well-known/trialseal.json). `ledgerTime` (per-type overrides of
 * a ledger's time resolution and drift) is written only when some override is configured: without one the
 * policy's bytes, and so the SHA-256 verifiers pinned, stay those of policies published before the key existed.
 */
export function trustPolicy(
  crypto: Crypto,
  origin: string,
  signer: Signer,
  ledgers: Record<string, LedgerPolicy> = {},
  ring?: RingKey[],
  ledgerTime: LedgerTimePolicy = {},
): TrustPolicy {
  // With the key ring: every key with its window (rotated and revoked ones too, so old checkpoints verify).
  const logKeys = ring?.some((k) => k.publicKey === toHex(signer.publicKey))
    ? ring.map((k) => ({
        vkey: vkeyString(crypto, origin, fromHex(k.publicKey)),
        fromSize: k.fromSize,
        untilSize: k.untilSize,
        notBefore: k.notBefore,
        notAfter: k.notAfter,
      }))
    : [
        {
          vkey: vkeyString(crypto, origin, signer.publicKey),
          fromSize: 0,
          untilSize: null,
          notBefore: null,
          notAfter: null,
        },
      ];
  return {
    format: "trialseal-trust/v1",
    origin,
    logKeys,
    ledgers,
    maxSkewMs: 300_000,
    ...(Object.keys(ledgerTime).length > 0 ? { ledgerTime } : {}),
  };
}
