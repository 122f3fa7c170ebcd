/**
 * `trialseal verify-package FILE (--trust POLICY.json | --pin SHA256)`: checks an evidence package offline
 * (anchoring/verifier/verify-package.ts). Exit 0 valid, 1 invalid (each problem names its file, FILE_TOO_LARGE for a
 * file inflating past the size its manifest declares), 2 unreadable (ARCHIVE_INVALID, or ARCHIVE_TOO_LARGE beyond
 * the reader's limits: app/exports/package-reader.server.ts) or bad usage.
 */
import { closeSync, openSync, readFileSync } from "node:fs";
import { nodeCrypto } from "../anchoring/adapters/crypto-node.ts";
import { toHex } from "../anchoring/log/bytes.ts";
import { parseTrustPolicy, type TrustPolicy } from "../anchoring/verifier/trust-policy.ts";
import {
  type PackageFiles,
  type PackageProblem,
  type PackageReport,
  verifyEvidence,
} from "../anchoring/verifier/verify-package.ts";
import { odmItems, payloadOdmValue } from "../app/exports/study-exports.server.ts";
import { fileSource, PackageUnreadable, readPackageBounded } from "../app/exports/package-reader.server.ts";

const err = (m: string) => process.stderr.write(`trialseal: ${m}\n`);
const NOTHING_CHECKED: PackageReport["checked"] = {
  files: 0,
  checkpoints: 0,
  envelopes: 0,
  batches: 0,
  bundles: 0,
  odmValues: 0,
  csvRows: 0,
  fhirResources: 0,
  documents: 0,
};

export async function runVerifyPackage(
  file: string,
  o: { trust?: string; pin?: string; json?: boolean },
): Promise<number> {
  if (!o.trust === !o.pin) {
    err("give exactly one of --trust POLICY.json or --pin SHA256 (the trust policy's SHA-256)");
    return 2;
  }
  let fd: number | undefined;
  try {
    return await verifyPackageFile(file, o, (opened) => (fd = opened));
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The check itself; the package stays open (read by position, file by file) until it is done. */
async function verifyPackageFile(
  file: string,
  o: { trust?: string; pin?: string; json?: boolean },
  opened: (fd: number) => void,
): Promise<number> {
  let files: PackageFiles;
  let readProblems: PackageProblem[];
  try {
    // Bounded (issue 16 item 6): nothing inflates past the size the manifest declares, nor past the total cap;
    // files are inflated one at a time when the verifier reads them.
    const fd = openSync(file, "r");
    opened(fd);
    ({ files, problems: readProblems } = readPackageBounded(fileSource(fd)));
  } catch (e) {
    if (e instanceof PackageUnreadable) err(`cannot read ${file} [${e.code}]: ${e.message}`);
    else err(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
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
      const tooLarge = readProblems.find((p) => p.file === "trust-policy.json");
      err(`${file}: invalid: trust-policy.json ${tooLarge ? `[${tooLarge.code}]: ${tooLarge.message}` : "is missing"}`);
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
  // A file that inflated past its declared size was not kept: the package is invalid, naming it, unchecked further.
  const report: PackageReport = readProblems.length
    ? { valid: false, study: null, checked: { ...NOTHING_CHECKED }, problems: readProblems }
    : await verifyEvidence(nodeCrypto, files, policy, { odmItems, odmValue: payloadOdmValue });
  if (o.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else {
    const c = report.checked;
    process.stdout.write(
      `${file}: ${report.valid ? "VALID" : "INVALID"} (study ${report.study ?? "?"}; ` +
        `${c.files} files, ${c.checkpoints} checkpoints, ${c.batches} batches, ` +
        `${c.envelopes} envelopes, ${c.bundles} bundles, ${c.odmValues} ODM values, ${c.csvRows} CSV rows, ` +
        `${c.fhirResources} FHIR resources, ${c.documents} PDFs checked)\n`,
    );
    for (const p of report.problems) process.stdout.write(`  FAIL ${p.file} [${p.code}]: ${p.message}\n`);
  }
  if (!report.valid)
    err(`${file}: invalid: ${report.problems[0].file} [${report.problems[0].code}]: ${report.problems[0].message}`);
  return report.valid ? 0 : 1;
}
