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
 * Set whenever an application context is built (one deployment per process). Kept on the process's global object
 * under a registered symbol, not in a module variable: the portal's Remix build bundles its own copy of this
 * module, which must see the key the server set when it built the context.
 */
const SLOT = Symbol.for("trialseal.audit-trail.deployment-data-key");
type Slot = { [SLOT]?: Uint8Array };

export function setDeploymentDataKey(dataKey: Uint8Array): void {
  (globalThis as Slot)[SLOT] = dataKey;
}

export function deploymentDataKey(): Uint8Array {
  const key = (globalThis as Slot)[SLOT];
  if (!key) throw new Error("audit trail: no application context built yet (DATA_KEY unknown)");
  return key;
}
