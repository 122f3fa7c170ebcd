/**
 * Source addresses in audit.event payloads (ADR 0016, version 2): HMAC-SHA-256 of the address under a
 * per-deployment key derived from DATA_KEY (HKDF-SHA-256, its own label). A bundle holder cannot enumerate the
 * address space against it (an IPv4 address has only 2^32 values, so a hash salted with the payload's own salt
 * would give it away); the deployment, which holds DATA_KEY, recomputes it from the row in the integrity audit.
 */
import { createHmac, hkdfSync } from "node:crypto";

const LABEL = "trialseal audit-address v1";
const keys = new WeakMap<Uint8Array, Buffer>();

function addressKey(dataKey: Uint8Array): Buffer {
  let k = keys.get(dataKey);
  if (!k) {
    k = Buffer.from(hkdfSync("sha256", dataKey, Buffer.alloc(0), LABEL, 32));
    keys.set(dataKey, k);
  }
  return k;
}

/** HMAC-SHA-256 (hex) of `address` under the deployment's audit-address key derived from `dataKey`. */
export function addressHmac(dataKey: Uint8Array, address: string): string {
  return createHmac("sha256", addressKey(dataKey)).update(address).digest("hex");
}

/**
 * The DATA_KEY of this process's deployment, for writing audit events (callers pass only a database handle).
 * Set whenever an application context is built (one deployment per process).
 */
let deploymentKey: Uint8Array | null = null;

export function setDeploymentDataKey(dataKey: Uint8Array): void {
  deploymentKey = dataKey;
}

export function deploymentDataKey(): Uint8Array {
  if (!deploymentKey) throw new Error("audit trail: no application context built yet (DATA_KEY unknown)");
  return deploymentKey;
}
