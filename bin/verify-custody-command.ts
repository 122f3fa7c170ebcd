/**
 * `trialseal verify-custody FILE (--trust POLICY.json | --pin SHA256) [--json]`: checks a kit's chain-of-custody file
 * (the kit page's download, `trialseal-kit-custody/1`) offline (anchoring/verifier/verify-custody.ts). Exit 0 valid;
 * 1 invalid, one line per problem naming its code and the entry (seq); 2 unreadable (not a file, too large, not UTF-8
 * JSON, not a custody file, a trust policy that cannot be read) or bad usage. No database.
 */
import { readFileSync, statSync } from "node:fs";
import { nodeCrypto } from "../anchoring/adapters/crypto-node.ts";
import { parseTrustPolicy, type TrustPolicy } from "../anchoring/verifier/trust-policy.ts";
import {
  CUSTODY_SCOPE,
  type CustodyReport,
  pinnedCustodyPolicy,
  readCustodyText,
  verifyCustody,
} from "../anchoring/verifier/verify-custody.ts";

const err = (m: string) => process.stderr.write(`trialseal: ${m}\n`);

/** Far above any kit's file (a dozen bundles of a few kilobytes each). */
export const MAX_CUSTODY_BYTES = 64 * 1024 * 1024;

function readText(file: string): { text: string } | { unreadable: string } {
  try {
    const st = statSync(file);
    if (!st.isFile()) return { unreadable: "not a file" };
    if (st.size > MAX_CUSTODY_BYTES)
      return { unreadable: `${st.size} bytes, larger than any custody file (at most ${MAX_CUSTODY_BYTES})` };
    return { text: new TextDecoder("utf-8", { fatal: true }).decode(readFileSync(file)) };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { unreadable: code ? `cannot read it (${code})` : "not UTF-8 text" };
  }
}

export async function runVerifyCustody(
  file: string,
  o: { trust?: string; pin?: string; json?: boolean },
): Promise<number> {
  if (!o.trust === !o.pin) {
    err("give exactly one of --trust POLICY.json or --pin SHA256 (the trust policy's SHA-256)");
    return 2;
  }
  const pin = o.pin?.trim().toLowerCase();
  if (pin !== undefined && !/^[0-9a-f]{64}$/.test(pin)) {
    err("--pin takes the trust policy's SHA-256 as 64 hex characters");
    return 2;
  }
  const read = readText(file);
  const value = "text" in read ? readCustodyText(read.text) : read;
  if ("unreadable" in value) {
    err(`${file}: unreadable: ${value.unreadable}`);
    return 2;
  }
  let policyText: string;
  if (o.trust) {
    try {
      policyText = readFileSync(o.trust, "utf8");
    } catch (e) {
      err(`cannot read ${o.trust}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      return 2;
    }
  } else {
    const pinned = pinnedCustodyPolicy(nodeCrypto, value.value, pin!);
    if ("problem" in pinned) {
      const report: CustodyReport = {
        ok: false,
        kit: null,
        study: null,
        steps: [],
        errors: [{ code: "POLICY_NOT_PINNED", message: pinned.problem }],
        warnings: [],
        scope: CUSTODY_SCOPE,
        disclosure: null,
      };
      return print(file, o, report);
    }
    policyText = pinned.text;
  }
  let policy: TrustPolicy;
  try {
    policy = parseTrustPolicy(JSON.parse(policyText));
  } catch (e) {
    err(`the trust policy is not valid: ${(e as Error).message}`);
    return 2;
  }
  return print(file, o, await verifyCustody(value.value, policy, nodeCrypto));
}

function print(file: string, o: { json?: boolean }, report: CustodyReport): number {
  if (o.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else {
    process.stdout.write(
      `${file}: ${report.ok ? "VALID" : "INVALID"} (kit ${report.kit ?? "?"} of study ${report.study ?? "?"}; ` +
        `${report.steps.length} ${report.steps.length === 1 ? "entry" : "entries"}` +
        `${report.disclosure ? `; kit type ${report.disclosure.kitType} disclosed and checked` : ""})\n`,
    );
    for (const s of report.steps)
      process.stdout.write(
        `  ${s.ok ? (s.warning ? "WARN" : "ok  ") : "FAIL"} seq ${s.seq ?? "?"} ${s.kind}` +
          `${s.code ? ` [${s.code}]` : s.warning ? ` [${s.warning}]` : ""}\n`,
      );
    for (const w of report.warnings) process.stdout.write(`  WARN [${w.code}] ${w.message}\n`);
    for (const e of report.errors) process.stdout.write(`  FAIL [${e.code}] ${e.message}\n`);
    if (report.ok) process.stdout.write(`  This ${report.scope}.\n`);
  }
  for (const e of report.errors) err(`${file}: invalid: [${e.code}] ${e.message}`);
  return report.ok ? 0 : 1;
}
