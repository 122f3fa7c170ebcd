/** `trialseal verify`: offline verification of bundles with a pinned trust policy. No database. */
import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { nodeCrypto } from "../anchoring/adapters/crypto-node.ts";
import { parseTrustPolicy, PolicyError, type TrustPolicy } from "../anchoring/verifier/trust-policy.ts";
import { verifyBundle, type Report, type VerifyOptions } from "../anchoring/verifier/verify-bundle.ts";

const err = (m: string) => process.stderr.write(`trialseal: ${m}\n`);

async function loadPolicy(o: { trust?: string; trustUrl?: string; pin?: string }): Promise<TrustPolicy | null> {
  let bytes: Buffer;
  if (o.trust) {
    try {
      bytes = readFileSync(o.trust);
    } catch (e) {
      err(`cannot read trust policy ${o.trust}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      return null;
    }
  } else if (o.trustUrl) {
    if (!o.pin || !/^[0-9a-f]{64}$/.test(o.pin)) {
      err(
        "--trust-url needs --pin with the policy's SHA-256 (64 lowercase hex characters): " +
          "a policy fetched from the deployment you check is not trusted unpinned",
      );
      return null;
    }
    try {
      const res = await fetch(o.trustUrl, { signal: AbortSignal.timeout(15_000) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      bytes = Buffer.from(await res.arrayBuffer());
    } catch (e) {
      err(`cannot fetch trust policy from ${o.trustUrl}: ${(e as Error).message}`);
      return null;
    }
    const got = createHash("sha256").update(bytes).digest("hex");
    if (got !== o.pin) {
      err(`trust policy from ${o.trustUrl} has SHA-256 ${got}, not the pinned ${o.pin}`);
      return null;
    }
  } else {
    err("no trust policy: give --trust FILE, or --trust-url URL --pin SHA256");
    return null;
  }
  try {
    return parseTrustPolicy(JSON.parse(bytes.toString("utf8")));
  } catch (e) {
    err(e instanceof PolicyError ? e.message : `trust policy is not JSON: ${(e as Error).message}`);
    return null;
  }
}

/** Far above any real bundle (one entry, its proofs, a few checkpoints and receipts: kilobytes). */
export const MAX_BUNDLE_BYTES = 16 * 1024 * 1024;

/**
 * Read a file as a proof bundle. Unreadable (exit 2): not a file, larger than MAX_BUNDLE_BYTES (refused before it
 * is read), not UTF-8 JSON, or not an object carrying a `trialseal-proof/...` format marker. Anything that claims
 * the format is handed to the verifier, so a bundle missing a field is invalid, never merely unreadable.
 */
export function readBundle(file: string): { bundle: unknown } | { unreadable: string } {
  let size: number;
  try {
    const st = statSync(file);
    if (!st.isFile()) return { unreadable: "not a file" };
    size = st.size;
  } catch (e) {
    return { unreadable: `cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` };
  }
  if (size > MAX_BUNDLE_BYTES)
    return { unreadable: `${size} bytes, larger than any proof bundle (at most ${MAX_BUNDLE_BYTES} bytes)` };
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(readFileSync(file));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { unreadable: code ? `cannot read it (${code})` : "not UTF-8 text" };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    // A RangeError is nesting too deep for this machine's stack: still not something we can check.
    return { unreadable: e instanceof RangeError ? "JSON nested too deeply to read" : "not JSON" };
  }
  const format =
    value !== null && typeof value === "object" && !Array.isArray(value)
      ? (value as Record<string, unknown>).format
      : undefined;
  if (typeof format !== "string" || !format.startsWith("trialseal-proof/"))
    return { unreadable: 'not a proof bundle (a JSON object with "format": "trialseal-proof/v1")' };
  return { bundle: value };
}

export async function runVerify(
  files: string[],
  o: { trust?: string; trustUrl?: string; pin?: string; json?: boolean; rpc?: string; require?: string },
): Promise<number> {
  const policy = await loadPolicy(o);
  if (!policy) return 2;
  const require = (o.require ?? "")
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean);
  const known = new Set(["local", "evm", "rfc3161", ...Object.keys(policy.ledgers)]);
  const unknownReq = require.filter((r) => !known.has(r));
  if (unknownReq.length) {
    err(`--require: unknown ledger ${unknownReq.join(", ")} (use local, evm, rfc3161 or a ledger name of the policy)`);
    return 2;
  }
  let opts: VerifyOptions = { require };
  if (o.rpc) {
    if (!/^https?:\/\/\S+$/.test(o.rpc)) {
      err(`--rpc: ${o.rpc} is not an http(s) URL`);
      return 2;
    }
    // Network code only when asked for: the offline verifier itself never touches the network.
    const { createPublicClient, http } = await import("viem");
    const { viemReader } = await import("../anchoring/adapters/evm-reader.ts");
    const reader = viemReader(
      createPublicClient({ transport: http(o.rpc, { timeout: 15_000, retryCount: 1 }) }) as never,
    );
    opts = { ...opts, evm: () => reader };
  }
  const reports: { file: string; report: Report }[] = [];
  for (const file of files) {
    const read = readBundle(file);
    if ("unreadable" in read) {
      err(`${file}: unreadable: ${read.unreadable}`);
      return 2;
    }
    const bundle = read.bundle;
    reports.push({ file, report: await verifyBundle(nodeCrypto, bundle, policy, opts) });
  }
  if (o.json) process.stdout.write(`${JSON.stringify(reports, null, 2)}\n`);
  else {
    for (const { file, report } of reports) {
      const entry = report.entry
        ? ` (seq ${report.entry.seq}, ${report.entry.kind}, study ${report.entry.study}, batch ${report.entry.batch})`
        : "";
      process.stdout.write(`${file}: ${report.verdict.toUpperCase()}${entry}\n`);
      // "existed by" is a claim of a valid bundle only: an invalid one proves nothing.
      if (report.verdict === "valid" && report.existedBy)
        process.stdout.write(`  existed by ${report.existedBy.time} (${report.existedBy.ledger})\n`);
      for (const s of report.steps) {
        const mark = s.status === "ok" ? "ok  " : s.status === "failed" ? "FAIL" : "--  ";
        process.stdout.write(`  ${mark} ${s.step}${s.code ? ` [${s.code}]` : ""}: ${s.message}\n`);
      }
    }
  }
  const failed = reports.filter((r) => r.report.verdict !== "valid");
  for (const f of failed) {
    const s = f.report.steps.find((x) => x.status === "failed");
    err(`${f.file}: invalid: ${s ? `${s.step} [${s.code}]: ${s.message}` : "no step could be checked"}`);
  }
  return failed.length > 0 ? 1 : 0;
}
