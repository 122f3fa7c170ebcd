/**
 * `trialseal monitor --url URL --trust POLICY.json --state DIR`: a sponsor's or regulator's watch on a
 * deployment's log (like a transparency-log monitor). It keeps the last checkpoint it accepted in DIR, fetches
 * the latest one, checks its signature against the pinned trust policy, proves the log only grew since (RFC 9162
 * consistency proof; a smaller log or another root at the same size is a fork), checks the anchors of the new
 * checkpoint (local and RFC 3161 offline, EVM with --rpc), and alarms when the log has not advanced for longer
 * than --max-age-hours. Exit 0 all good, 1 alarm (one clear line per problem on stderr), 2 could not check.
 * Run it from cron; the state directory is the monitor's memory and must stay private to it.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import { nodeCrypto } from "../anchoring/adapters/crypto-node.ts";
import { fromHex, toHex } from "../anchoring/log/bytes.ts";
import { parseTrustPolicy, type TrustPolicy } from "../anchoring/verifier/trust-policy.ts";
import { noteSignedBy, parseCheckpoint, parseNote, parseVkey } from "../anchoring/log/checkpoint.ts";
import { verifyConsistency } from "../anchoring/log/merkle.ts";
import { verifyAnchor, type AnchorVerifyOptions } from "../anchoring/verifier/verify-anchor.ts";

interface State {
  treeSize: number;
  root: string;
  note: string;
  checkedAt: string;
  /** When the log was last seen to grow (or first seen). */
  advancedAt: string;
}

const say = (m: string) => process.stdout.write(`${m}\n`);
const alarm = (m: string) => process.stderr.write(`trialseal monitor: ALARM: ${m}\n`);
const cannot = (m: string) => {
  process.stderr.write(`trialseal monitor: cannot check: ${m}\n`);
  return 2;
};

async function get(url: string): Promise<Response> {
  return fetch(url, { signal: AbortSignal.timeout(15_000), headers: { accept: "application/json, text/plain" } });
}

export async function runMonitor(o: {
  url?: string;
  trust?: string;
  state?: string;
  rpc?: string;
  maxAgeHours?: string;
}): Promise<number> {
  if (!o.url || !/^https?:\/\/\S+$/.test(o.url)) return cannot("--url must be the portal's http(s) address");
  if (!o.trust) return cannot("--trust POLICY.json is required (the trust policy you pinned)");
  if (!o.state) return cannot("--state DIR is required (where the monitor keeps the last checkpoint it accepted)");
  const maxAgeHours = o.maxAgeHours === undefined ? 24 : Number(o.maxAgeHours);
  if (!Number.isFinite(maxAgeHours) || maxAgeHours <= 0) return cannot("--max-age-hours must be a positive number");
  const base = o.url.replace(/\/+$/, "");
  let policy: TrustPolicy;
  try {
    policy = parseTrustPolicy(JSON.parse(readFileSync(o.trust, "utf8")));
  } catch (e) {
    return cannot(`the trust policy ${o.trust} is not readable: ${(e as Error).message}`);
  }
  const stateFile = path.join(o.state, "state.json");
  let prev: State | null = null;
  try {
    prev = JSON.parse(readFileSync(stateFile, "utf8")) as State;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT")
      return cannot(`the state file ${stateFile} is unreadable: ${(e as Error).message}`);
  }

  // The latest checkpoint, signed by a key of the pinned policy.
  let noteText: string;
  try {
    const res = await get(`${base}/api/v1/checkpoint`);
    if (!res.ok) return cannot(`${base}/api/v1/checkpoint answered HTTP ${res.status}`);
    noteText = await res.text();
  } catch (e) {
    return cannot(`${base} is unreachable: ${(e as Error).message}`);
  }
  const problems: string[] = [];
  let cp: ReturnType<typeof parseCheckpoint>;
  try {
    const note = parseNote(noteText);
    cp = parseCheckpoint(note.text);
    const keys = policy.logKeys.filter(
      (k) => k.fromSize <= cp.treeSize && (k.untilSize === null || cp.treeSize < k.untilSize),
    );
    if (!keys.some((k) => noteSignedBy(nodeCrypto, note, parseVkey(nodeCrypto, k.vkey))))
      problems.push(`the checkpoint of size ${cp.treeSize} is not signed by a log key of the trust policy`);
    if (cp.origin !== policy.origin) problems.push(`the checkpoint is of log ${cp.origin}, not ${policy.origin}`);
  } catch (e) {
    alarm(`the served checkpoint is malformed: ${(e as Error).message}`);
    return 1;
  }
  const root = toHex(cp.root);
  const now = new Date();

  // The log only grew since the last accepted checkpoint.
  if (prev && problems.length === 0) {
    if (cp.treeSize < prev.treeSize)
      problems.push(`the log shrank from ${prev.treeSize} to ${cp.treeSize} batches (rolled back or forked)`);
    else if (cp.treeSize === prev.treeSize && root !== prev.root)
      problems.push(
        `two different roots for log size ${cp.treeSize}: a fork (was ${prev.root.slice(0, 16)}…, ` +
          `now ${root.slice(0, 16)}…)`,
      );
    else if (cp.treeSize > prev.treeSize) {
      try {
        const res = await get(`${base}/api/v1/consistency?from=${prev.treeSize}&to=${cp.treeSize}`);
        if (!res.ok) problems.push(`no consistency proof from ${prev.treeSize} to ${cp.treeSize} (HTTP ${res.status})`);
        else {
          const proof = ((await res.json()) as { proof: string[] }).proof.map(fromHex);
          verifyConsistency(nodeCrypto, prev.treeSize, cp.treeSize, proof, fromHex(prev.root), cp.root);
        }
      } catch (e) {
        problems.push(
          `the log of size ${cp.treeSize} is not an extension of the accepted log of size ` +
            `${prev.treeSize}: ${(e as Error).message}`,
        );
      }
    }
  }

  // The new checkpoint's anchors.
  let anchorsChecked = 0;
  if (problems.length === 0) {
    let opts: AnchorVerifyOptions = {};
    if (o.rpc) {
      const { createPublicClient, http } = await import("viem");
      const { viemReader } = await import("../anchoring/adapters/evm-reader.ts");
      const reader = viemReader(
        createPublicClient({ transport: http(o.rpc, { timeout: 15_000, retryCount: 1 }) }) as never,
      );
      opts = { evm: () => reader };
    }
    try {
      const res = await get(`${base}/api/v1/checkpoints/${cp.treeSize}/anchors`);
      if (res.ok) {
        const body = (await res.json()) as { note: string; anchors: unknown[] };
        if (body.note !== noteText) problems.push(`the anchors endpoint serves another note for size ${cp.treeSize}`);
        for (const a of body.anchors) {
          const r = await verifyAnchor(
            nodeCrypto,
            a,
            { note: noteText, treeSize: cp.treeSize, origin: policy.origin },
            policy.ledgers,
            opts,
          );
          if (r.status === "failed")
            problems.push(`anchor on ${r.ledger} of checkpoint ${cp.treeSize}: ${r.code}: ${r.message}`);
          else if (r.status === "ok") anchorsChecked++;
        }
      }
    } catch (e) {
      return cannot(`reading the anchors of checkpoint ${cp.treeSize}: ${(e as Error).message}`);
    }
  }

  // A log that stops advancing.
  const advancedAt = !prev || cp.treeSize > prev.treeSize ? now.toISOString() : prev.advancedAt;
  const stale = now.getTime() - Date.parse(advancedAt) > maxAgeHours * 3600_000;
  if (stale && problems.length === 0)
    problems.push(
      `the log has not advanced since ${advancedAt} (more than ${maxAgeHours} h): ` +
        `the sealer or the portal may have stopped`,
    );

  if (problems.length) {
    for (const p of problems) alarm(p);
    // The accepted state stays as it was: the next run compares with the last good checkpoint again.
    if (stale && prev) writeState(o.state, stateFile, { ...prev, checkedAt: now.toISOString() });
    return 1;
  }
  writeState(o.state, stateFile, {
    treeSize: cp.treeSize,
    root,
    note: noteText,
    checkedAt: now.toISOString(),
    advancedAt,
  });
  const growth = prev
    ? cp.treeSize > prev.treeSize
      ? ` (grew from ${prev.treeSize}, consistent)`
      : " (unchanged)"
    : " (first check)";
  say(
    `${policy.origin}: OK at log size ${cp.treeSize}${growth}; ` +
      `${anchorsChecked} anchor${anchorsChecked === 1 ? "" : "s"} verified`,
  );
  return 0;
}

function writeState(dir: string, file: string, s: State) {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(`${file}.tmp`, `${JSON.stringify(s, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}
