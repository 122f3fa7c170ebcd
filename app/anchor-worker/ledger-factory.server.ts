/**
 * The one place where anchoring ledgers are built from configuration (see docs/ledgers.md):
 * local (on by default), evm (EVM_RPC_URL ...), rfc3161 (TSA_URL ...). Ledger names are their types.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import type { Crypto } from "../../anchoring/log/crypto.ts";
import type { Ledger } from "../../anchoring/ledgers/ledger.ts";
import type { LedgerPolicy } from "../../anchoring/ledgers/receipt.ts";
import { LocalLedger } from "../../anchoring/adapters/local-ledger-file.ts";
import { EvmLedger } from "../../anchoring/adapters/evm-ledger.ts";
import { logIdOf } from "../../anchoring/ledgers/evm-event.ts";
import { Rfc3161Ledger, certificatesFromPem } from "../../anchoring/adapters/rfc3161-ledger.ts";
import { ConfigError, type Env } from "../platform/env.server.ts";
import { ringKeysReader, ringSigner } from "../keys/key-ring.server.ts";

export interface ConfiguredLedger {
  ledger: Ledger;
  /** This ledger's own cadence: every interval it anchors the latest checkpoint. */
  intervalMs: number;
}

export function buildLedgers(env: Env, crypto: Crypto): ConfiguredLedger[] {
  const a = env.anchoring;
  const out: ConfiguredLedger[] = [];
  if (a.local) {
    // The ledger's key ring: the current key signs; every key of the ring, each in its window, verifies.
    const signer = ringSigner(env.dataDir, "ledger-local");
    out.push({
      ledger: new LocalLedger({
        name: "local",
        ledgerId: a.local.id,
        dir: path.join(env.dataDir, "ledger"),
        signer,
        trustedKeys: ringKeysReader(env.dataDir, "ledger-local"),
        crypto,
      }),
      intervalMs: a.local.intervalMs,
    });
  }
  if (a.evm) {
    out.push({
      ledger: new EvmLedger({
        name: "evm",
        rpcUrl: a.evm.rpcUrl,
        chainId: a.evm.chainId,
        contract: a.evm.contract,
        privateKey: a.evm.privateKey,
        confirmations: a.evm.confirmations,
        logId: logIdOf(crypto, env.logOrigin) as `0x${string}`,
        receiptTimeoutMs: a.evm.receiptTimeoutMs,
      }),
      intervalMs: a.evm.intervalMs,
    });
  }
  if (a.rfc3161) {
    let trusted: Uint8Array[];
    try {
      trusted = certificatesFromPem(readFileSync(a.rfc3161.certsFile, "utf8"));
    } catch (err) {
      throw new ConfigError(
        `invalid TSA_CERTS: cannot read ${a.rfc3161.certsFile}: ` +
          `${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
    if (trusted.length === 0)
      throw new ConfigError(`invalid TSA_CERTS: ${a.rfc3161.certsFile} holds no PEM certificate`);
    out.push({
      ledger: new Rfc3161Ledger({
        name: "rfc3161",
        url: a.rfc3161.url,
        trusted,
        timeoutMs: a.rfc3161.timeoutMs,
        randomBytes: (n) => new Uint8Array(randomBytes(n)),
      }),
      intervalMs: a.rfc3161.intervalMs,
    });
  }
  return out;
}

/** Each ledger's verification data, for the trust policy. */
export function ledgerPolicies(ledgers: ConfiguredLedger[]): Record<string, LedgerPolicy> {
  return Object.fromEntries(ledgers.map((l) => [l.ledger.name, l.ledger.policy()]));
}
