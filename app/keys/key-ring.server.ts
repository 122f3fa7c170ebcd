/**
 * Key rings: the log key and the local ledger key, each with its history, so keys can be rotated and revoked
 * while every old checkpoint and ledger record stays verifiable. A ring is a JSON file beside the keys in
 * <DATA_DIR>/keys (never in the database): each key's seed file and its validity window, the same windows the
 * trust policy publishes. Exactly one key is current (open-ended); it is the one that signs.
 *
 * - log ring (log-keys.json): windows by tree size ([fromSize, untilSize)) and by entry time
 *   ([notBefore, notAfter)). Rotation at checkpoint size S closes the old key at S + 1 and opens the new one
 *   there. Revocation of a compromised key from size N (and/or from a time) shrinks its window: a checkpoint
 *   it signs at N or beyond is refused by every verifier holding the new policy.
 * - local ledger ring (ledger-local-keys.json): windows by record time. Rotation at time T closes the old key
 *   at T and opens the new one at T.
 *
 * Without a ring file the single legacy key file is the whole, open-ended ring (deployments from before
 * rotation keep working unchanged). Processes notice a rotation made by another process (the CLI) at their
 * next signature: the ring file is re-read when it changes.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { nodeSigner } from "../../anchoring/adapters/crypto-node.ts";
import type { Signer } from "../../anchoring/log/crypto.ts";
import { utcMillis } from "../../anchoring/log/envelope.ts";
import { toHex } from "../../anchoring/log/bytes.ts";
import { ServiceError } from "../platform/errors.server.ts";

const nat = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const RingKey = z.strictObject({
  file: z.string().regex(/^[A-Za-z0-9._-]+$/),
  publicKey: z.string().regex(/^[0-9a-f]{64}$/),
  fromSize: nat.default(0),
  untilSize: nat.nullable().default(null),
  notBefore: utcMillis.nullable().default(null),
  notAfter: utcMillis.nullable().default(null),
  createdAt: utcMillis,
  /** Why the window was cut short (rotation, or revocation with a reason). */
  note: z.string().max(500).nullable().default(null),
});
const RingFile = z.strictObject({ format: z.literal("trialseal-key-ring/v1"), keys: z.array(RingKey).min(1) });
export type RingKey = z.infer<typeof RingKey>;

export type RingName = "log" | "ledger-local";
const LEGACY: Record<RingName, string> = { log: "log-ed25519.key", "ledger-local": "ledger-local-ed25519.key" };

function keysDir(dataDir: string) {
  return path.join(dataDir, "keys");
}
export function ringFile(dataDir: string, name: RingName) {
  return path.join(keysDir(dataDir), `${name}-keys.json`);
}

/** Whether the ring (or its legacy single key) exists in DATA_DIR/keys, without creating anything. */
export function ringExists(dataDir: string, name: RingName): boolean {
  return existsSync(ringFile(dataDir, name)) || existsSync(path.join(keysDir(dataDir), LEGACY[name]));
}

export function loadOrCreateSeed(file: string): Uint8Array {
  if (existsSync(file)) {
    const hex = readFileSync(file, "utf8").trim();
    if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`${file} is not a 32-byte hex key`);
    return new Uint8Array(Buffer.from(hex, "hex"));
  }
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const seed = randomBytes(32);
  writeFileSync(file, `${seed.toString("hex")}\n`, { mode: 0o600, flag: "wx" });
  return new Uint8Array(seed);
}

/** The ring's keys, oldest first (the legacy single key when there is no ring file yet). */
export function readRing(dataDir: string, name: RingName): RingKey[] {
  const file = ringFile(dataDir, name);
  if (!existsSync(file)) {
    const seed = loadOrCreateSeed(path.join(keysDir(dataDir), LEGACY[name]));
    return [
      {
        file: LEGACY[name],
        publicKey: toHex(nodeSigner(seed).publicKey),
        fromSize: 0,
        untilSize: null,
        notBefore: null,
        notAfter: null,
        createdAt: new Date(0).toISOString(),
        note: null,
      },
    ];
  }
  const r = RingFile.safeParse(JSON.parse(readFileSync(file, "utf8")));
  if (!r.success)
    throw new Error(`${file}: not a key ring (${r.error.issues[0].path.join(".")}: ${r.error.issues[0].message})`);
  return r.data.keys;
}

function writeRing(dataDir: string, name: RingName, keys: RingKey[]) {
  const file = ringFile(dataDir, name);
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify({ format: "trialseal-key-ring/v1", keys }, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, file); // atomic: a reader sees the old ring or the new one
}

function currentOf(keys: RingKey[], file: string): RingKey {
  const open = keys.filter((k) => k.untilSize === null && k.notAfter === null);
  if (open.length !== 1)
    throw new Error(`${file}: expected exactly one current (open-ended) key, found ${open.length}`);
  return open[0];
}

/** Changes whenever the ring file is rewritten (or appears): readers reload only then. */
function ringStamp(file: string): string {
  if (!existsSync(file)) return "legacy";
  const st = statSync(file);
  return `${st.mtimeMs}:${st.size}`;
}

/**
 * A Signer that always signs with the ring's current key, re-reading the ring when its file changes (a
 * rotation made by the CLI in another process takes effect at this process's next signature).
 */
export function ringSigner(dataDir: string, name: RingName): Signer {
  const file = ringFile(dataDir, name);
  let stamp = "";
  let signer: Signer | null = null;
  const load = () => {
    const s = ringStamp(file);
    if (signer && s === stamp) return signer;
    const cur = currentOf(readRing(dataDir, name), file);
    signer = nodeSigner(loadOrCreateSeed(path.join(keysDir(dataDir), cur.file)));
    if (toHex(signer.publicKey) !== cur.publicKey)
      throw new Error(`${file}: key file ${cur.file} does not hold public key ${cur.publicKey}`);
    stamp = s;
    return signer;
  };
  load();
  return {
    get publicKey() {
      return load().publicKey;
    },
    sign: (m) => load().sign(m),
  };
}

/** Rotate: a new current key; the old one's window closes at `at` (log: a tree size; local ledger: a time). */
export function rotateRing(
  dataDir: string,
  name: RingName,
  at: { size?: number; time?: string },
  note = "rotated",
): { old: RingKey; current: RingKey } {
  const keys = readRing(dataDir, name);
  const old = currentOf(keys, ringFile(dataDir, name));
  const seed = randomBytes(32);
  const fileName =
    `${name}-ed25519-${new Date().toISOString().replace(/[:.]/g, "")}-` + `${seed.subarray(0, 3).toString("hex")}.key`;
  writeFileSync(path.join(keysDir(dataDir), fileName), `${seed.toString("hex")}\n`, { mode: 0o600, flag: "wx" });
  const now = new Date().toISOString();
  const fresh: RingKey = {
    file: fileName,
    publicKey: toHex(nodeSigner(new Uint8Array(seed)).publicKey),
    fromSize: 0,
    untilSize: null,
    notBefore: null,
    notAfter: null,
    createdAt: now,
    note: null,
  };
  if (name === "log") {
    if (at.size === undefined) throw new Error("a log key rotates at a tree size");
    old.untilSize = at.size;
    fresh.fromSize = at.size;
  } else {
    const t = at.time ?? now;
    old.notAfter = t;
    fresh.notBefore = t;
  }
  old.note = note;
  writeRing(dataDir, name, [...keys, fresh]);
  return { old, current: fresh };
}

/**
 * Revoke a (compromised) key from a point on: its window ends at `fromSize` (log) and/or `fromTime`. Whatever
 * it signs there or later is refused by verifiers holding the new policy. The current key cannot be revoked
 * without a new one: rotate first (the revoke command does).
 */
export function revokeInRing(
  dataDir: string,
  name: RingName,
  publicKey: string,
  from: { size?: number; time?: string },
  reason: string,
): RingKey {
  const keys = readRing(dataDir, name);
  const k = keys.find((x) => x.publicKey === publicKey.toLowerCase());
  if (!k)
    throw new ServiceError("not_found", `no ${name} key ${publicKey} in the ring (see \`trialseal keys list\`)`, "key");
  if (k.untilSize === null && k.notAfter === null)
    throw new ServiceError(
      "conflict",
      `key ${publicKey.slice(0, 16)}… is the current ${name} key: rotate first`,
      "key",
    );
  if (from.size !== undefined) {
    if (name !== "log")
      throw new ServiceError("invalid", "the local ledger's keys have time windows: give --from-time", "from-size");
    if (from.size < k.fromSize)
      throw new ServiceError(
        "invalid",
        `--from-size ${from.size} is before the key's first size ${k.fromSize}`,
        "from-size",
      );
    k.untilSize = k.untilSize === null ? from.size : Math.min(k.untilSize, from.size);
  }
  if (from.time !== undefined) k.notAfter = k.notAfter === null || from.time < k.notAfter ? from.time : k.notAfter;
  if (from.size === undefined && from.time === undefined)
    throw new ServiceError(
      "invalid",
      "give the point from which the key is revoked (--from-size or --from-time)",
      "from",
    );
  k.note = `revoked: ${reason}`.slice(0, 500);
  writeRing(dataDir, name, keys);
  return k;
}

/** The ring's keys as a ledger needs them (public key bytes and time window), re-read only when the ring changes. */
export function ringKeysReader(
  dataDir: string,
  name: RingName,
): () => { publicKey: Uint8Array; notBefore: string | null; notAfter: string | null }[] {
  const file = ringFile(dataDir, name);
  let stamp = "";
  let keys: { publicKey: Uint8Array; notBefore: string | null; notAfter: string | null }[] = [];
  return () => {
    const s = ringStamp(file);
    if (s !== stamp || !keys.length) {
      keys = readRing(dataDir, name).map((k) => ({
        publicKey: new Uint8Array(Buffer.from(k.publicKey, "hex")),
        notBefore: k.notBefore,
        notAfter: k.notAfter,
      }));
      stamp = s;
    }
    return keys;
  };
}
