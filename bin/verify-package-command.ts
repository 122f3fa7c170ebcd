/**
 * `trialseal verify-package FILE (--trust POLICY.json | --pin SHA256)`: checks an evidence package offline
 * (anchoring/verifier/verify-package.ts). Exit 0 valid, 1 invalid (each problem names its file), 2 unreadable or
 * bad usage.
 */
import { readFileSync } from "node:fs";
import { nodeCrypto } from "../anchoring/adapters/crypto-node.ts";
import { toHex } from "../anchoring/log/bytes.ts";
import { parseTrustPolicy, type TrustPolicy } from "../anchoring/verifier/trust-policy.ts";
import { verifyEvidence } from "../anchoring/verifier/verify-package.ts";
import { odmItems, payloadOdmValue, readPackage } from "../app/exports/study-exports.server.ts";

const err = (m: string) => process.stderr.write(`trialseal: ${m}\n`);

export async function runVerifyPackage(
  file: string,
  o: { trust?: string; pin?: string; json?: boolean },
): Promise<number> {
  if (!o.trust === !o.pin) {
    err("give exactly one of --trust POLICY.json or --pin SHA256 (the trust policy's SHA-256)");
    return 2;
  }
  let files: Map<string, Uint8Array>;
  try {
    files = readPackage(new Uint8Array(readFileSync(file)));
  } catch (e) {
    err(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    return 2;
  }
  let policyBytes: Uint8Array | undefined;
  if (o.trust) {
    try {
      policyBytes = new Uint8Array(readFileSync(o.trust));
    } catch (e) {
      err(`cannot read ${o.trust}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      return 2;
    }
  } else {
    const pin = o.pin!.trim().toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(pin)) {
      err("--pin takes the trust policy's SHA-256 as 64 hex characters");
      return 2;
    }
    policyBytes = files.get("trust-policy.json");
    if (!policyBytes) {
      err(`${file}: invalid: trust-policy.json is missing from the package`);
      return 1;
    }
    const got = toHex(nodeCrypto.sha256(policyBytes));
    if (got !== pin) {
      err(`${file}: invalid: trust-policy.json has SHA-256 ${got}, not the pinned ${pin}`);
      return 1;
    }
  }
  let policy: TrustPolicy;
  try {
    policy = parseTrustPolicy(JSON.parse(new TextDecoder().decode(policyBytes)));
  } catch (e) {
    err(`the trust policy is not valid: ${(e as Error).message}`);
    return 2;
  }
  const report = await verifyEvidence(nodeCrypto, files, policy, { odmItems, odmValue: payloadOdmValue });
  if (o.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else {
    const c = report.checked;
    process.stdout.write(
      `${file}: ${report.valid ? "VALID" : "INVALID"} (study ${report.study ?? "?"}; ` +
        `${c.files} files, ${c.checkpoints} checkpoints, ${c.batches} batches, ` +
        `${c.envelopes} envelopes, ${c.bundles} bundles, ${c.odmValues} ODM values checked)\n`,
    );
    for (const p of report.problems) process.stdout.write(`  FAIL ${p.file} [${p.code}]: ${p.message}\n`);
  }
  if (!report.valid)
    err(`${file}: invalid: ${report.problems[0].file} [${report.problems[0].code}]: ${report.problems[0].message}`);
  return report.valid ? 0 : 1;
}
