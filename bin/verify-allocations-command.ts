/**
 * `trialseal verify-allocations FILE (--pin SHA256 | --trust POLICY.json) [--json]`: checks a study's allocations
 * file (`trialseal export --format allocations`) offline (anchoring/randomization/verify-allocations.ts). Exit 0
 * valid; 1 invalid, one line per problem naming its slot (also a file claiming the format but missing a field, and
 * a file whose trust policy is not the pinned one, as `verify-package` does); 2 unreadable (not a file, too large,
 * not UTF-8 JSON, not an allocations file, or a trust policy that cannot be read) or bad usage. No database.
 * A warning (the commitment not anchored before the first allocation) is a `WARNING [CODE]` line on stdout and
 * leaves the exit code as it is.
 */
import { readFileSync, statSync } from "node:fs";
import { nodeCrypto } from "../anchoring/adapters/crypto-node.ts";
import {
  type AllocationsReport,
  countOf,
  emptyAllocationsReport,
  parseAllocationsFile,
  pinnedPolicyText,
  problemLine,
  readAllocationsText,
  verifyAllocations,
} from "../anchoring/randomization/verify-allocations.ts";
import { parseTrustPolicy, type TrustPolicy } from "../anchoring/verifier/trust-policy.ts";

const err = (m: string) => process.stderr.write(`trialseal: ${m}\n`);

/** About the longest string node holds; a real study's file is a few kilobytes per allocation (its bundle). */
export const MAX_ALLOCATIONS_BYTES = 512 * 1024 * 1024;

/** Read FILE as text within MAX_ALLOCATIONS_BYTES; a reason when it cannot be. */
function readText(file: string): { text: string } | { unreadable: string } {
  try {
    const st = statSync(file);
    if (!st.isFile()) return { unreadable: "not a file" };
    if (st.size > MAX_ALLOCATIONS_BYTES)
      return { unreadable: `${st.size} bytes, larger than any allocations file (at most ${MAX_ALLOCATIONS_BYTES})` };
    return { text: new TextDecoder("utf-8", { fatal: true }).decode(readFileSync(file)) };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { unreadable: code ? `cannot read it (${code})` : "not UTF-8 text" };
  }
}

export async function runVerifyAllocations(
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
  const value = "text" in read ? readAllocationsText(read.text) : read;
  if ("unreadable" in value) {
    err(`${file}: unreadable: ${value.unreadable}`);
    return 2;
  }
  const parsed = parseAllocationsFile(value.value);
  if ("problem" in parsed) return invalid(file, o, [parsed.problem]);
  let policyText: string;
  if (o.trust) {
    try {
      policyText = readFileSync(o.trust, "utf8");
    } catch (e) {
      err(`cannot read ${o.trust}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      return 2;
    }
  } else {
    const notPinned = pinnedPolicyText(nodeCrypto, parsed.file, pin!);
    if (notPinned) return invalid(file, o, [notPinned]);
    policyText = parsed.file.trustPolicyText;
  }
  let policy: TrustPolicy;
  try {
    policy = parseTrustPolicy(JSON.parse(policyText));
  } catch (e) {
    err(`the trust policy is not valid: ${(e as Error).message}`);
    return 2;
  }
  const report = await verifyAllocations(nodeCrypto, parsed.file, policy);
  if (o.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else {
    const c = report.checked;
    process.stdout.write(
      `${file}: ${report.valid ? "VALID" : "INVALID"} (study ${report.study ?? "?"}; ` +
        `${countOf(c.strata, "stratum", "strata")}, ${countOf(c.slots, "slot")}, ` +
        `${countOf(c.allocations, "allocation")}, ${countOf(c.emergencyUnblindings, "emergency unblinding")}, ` +
        `${countOf(c.bundles, "bundle")}${c.seed ? ", every slot regenerated from the seed" : ""})\n`,
    );
    for (const s of report.strata)
      process.stdout.write(
        `  ${s.key}: ${s.allocated} of ${s.size} slots allocated (` +
          `${Object.entries(s.arms)
            .map(([arm, n]) => `${arm}: ${n.allocated} of ${n.slots} allocated`)
            .join(", ")})\n`,
      );
    const t = report.timing;
    const e = t.commitmentExistedBy;
    if (report.list !== null)
      process.stdout.write(
        `  commitment: ${
          e ? `existed by ${e.time} (anchored in ledger ${e.ledger} at ${e.attested})` : "no verified anchor"
        }${
          t.firstAllocationAt === null
            ? "; no allocation"
            : `${e && !report.warnings.length ? ", before the" : ";"} first allocation at ${t.firstAllocationAt}`
        }\n`,
      );
    for (const w of report.warnings) process.stdout.write(`  WARNING [${w.code}]: ${w.message}\n`);
    for (const p of report.problems) process.stdout.write(`  FAIL ${problemLine(p)}\n`);
    if (report.problemsNotListed)
      process.stdout.write(`  … and ${countOf(report.problemsNotListed, "more problem")}\n`);
  }
  if (!report.valid) for (const p of report.problems) err(`${file}: invalid: ${problemLine(p)}`);
  return report.valid ? 0 : 1;
}

/** Invalid before the check could start (the file's shape, or its policy not the pinned one). */
function invalid(file: string, o: { json?: boolean }, problems: AllocationsReport["problems"]): number {
  if (o.json) {
    const report: AllocationsReport = emptyAllocationsReport(problems);
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  }
  for (const p of problems) err(`${file}: invalid: ${problemLine(p)}`);
  return 1;
}
