/**
 * The offline proof-bundle verifier. Pure: no node: imports, no network; crypto is injected. It recomputes,
 * then compares, and reports every step as ok / failed / not_checked with a stable code.
 */
import { canonicalize } from "../log/canonical.ts";
import type { Crypto } from "../log/crypto.ts";
import { bytesEqual, fromHex, toHex, utf8 } from "../log/bytes.ts";
import { BundleSchema, type Bundle } from "./bundle.ts";
import { rootFromInclusionProof, MerkleError } from "../log/merkle.ts";
import {
  NoteError,
  noteSignedBy,
  parseCheckpoint,
  parseNote,
  parseVkey,
  type Checkpoint,
  type ParsedNote,
} from "../log/checkpoint.ts";
import { parsePayload } from "../log/payloads.ts";
import type { TrustPolicy } from "./trust-policy.ts";
import {
  BatchHeaderSchema,
  EnvelopeSchema,
  envelopeLeaf,
  headerLeaf,
  type BatchHeader,
  type Envelope,
} from "../log/envelope.ts";
import { verifyAnchor, type AnchorCheck, type AnchorErrorCode, type AnchorVerifyOptions } from "./verify-anchor.ts";
import { latestProven, ledgerTime, type LedgerTime } from "../ledgers/ledger-time.ts";
import { FORM_ERROR_CODES, verifyFormSteps } from "./verify-form.ts";

export type StepStatus = "ok" | "failed" | "not_checked";

export const ERROR_CODES = [
  "BUNDLE_MALFORMED",
  "PAYLOAD_SCHEMA",
  "PAYLOAD_HASH_MISMATCH",
  "ENVELOPE_SCHEMA",
  "HEADER_SCHEMA",
  "ORIGIN_MISMATCH",
  "LEAF_INDEX_OUT_OF_RANGE",
  "SEQ_MISMATCH",
  "BATCH_INCLUSION_FAILED",
  "CHECKPOINT_MALFORMED",
  "LOG_INDEX_MISMATCH",
  "TREE_SIZE_MISMATCH",
  "LOG_INCLUSION_FAILED",
  "SIGNATURE_INVALID",
  "NO_VALID_KEY",
  "ANCHOR_REQUIRED",
  "ENTRY_AFTER_ANCHOR",
  "ANCHOR_MALFORMED",
  "ANCHOR_UNKNOWN_LEDGER",
  "ANCHOR_CHECKPOINT_MISMATCH",
  "LOCAL_SIGNATURE_INVALID",
  "LOCAL_NO_VALID_KEY",
  "EVM_WRONG_CHAIN",
  "EVM_WRONG_CONTRACT",
  "EVM_TX_NOT_FOUND",
  "EVM_TX_FAILED",
  "EVM_WRONG_SENDER",
  "EVM_BLOCK_MISMATCH",
  "EVM_EVENT_MISMATCH",
  "EVM_NOT_FINAL",
  "EVM_UNREACHABLE",
  "TSA_RESPONSE_MALFORMED",
  "TSA_REJECTED",
  "TSA_TOKEN_MALFORMED",
  "TSA_IMPRINT_MISMATCH",
  "TSA_NONCE_MISMATCH",
  "TSA_SIGNATURE_INVALID",
  "TSA_UNTRUSTED",
  "TSA_NOT_TIMESTAMPING_CERT",
  ...FORM_ERROR_CODES,
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];
// Every anchor error code is a verifier error code (compile-time check).
const anchorCodesListed: AnchorErrorCode extends ErrorCode ? true : never = true;
void anchorCodesListed;

export interface Step {
  step: string;
  status: StepStatus;
  code?: ErrorCode;
  message: string;
}

export interface Report {
  verdict: "valid" | "invalid";
  steps: Step[];
  entry?: { seq: number; study: string; kind: string; at: string; batch: number };
  /**
   * Every anchor receipt checked, and what it proves; a verified anchor with a time also carries the resolution
   * and drift the verifier applied to that time (the policy's `ledgerTime`, else the ledger type's defaults).
   */
  anchors: (AnchorCheck & { treeSize: number } & Partial<LedgerTime>)[];
  /**
   * The earliest verified anchor: the entry existed (was in a signed checkpoint) by this time. Only on a valid
   * report: an invalid bundle proves nothing, so it has no "existed by".
   */
  /** The latest moment the anchors prove the entry existed by (`attested`: the ledger's own time for it). */
  existedBy?: { time: string; ledger: string; attested: string };
}

export interface VerifyOptions extends AnchorVerifyOptions {
  /** Ledger names or types (local, evm, rfc3161) whose verified anchor is mandatory. */
  require?: string[];
}

/** A typed verification error carrying a stable code (thrown only by `assertValid`). */
export class VerificationError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "VerificationError";
  }
}

export async function verifyBundle(
  crypto: Crypto,
  input: unknown,
  policy: TrustPolicy,
  opts: VerifyOptions = {},
): Promise<Report> {
  const steps: Step[] = [];
  const anchors: Report["anchors"] = [];
  const ok = (step: string, message: string) => steps.push({ step, status: "ok", message });
  const bad = (step: string, code: ErrorCode, message: string) => steps.push({ step, status: "failed", code, message });
  const skip = (step: string, message: string) => steps.push({ step, status: "not_checked", message });
  let existedBy: Report["existedBy"];
  const done = (entry?: Report["entry"]): Report => {
    const valid = steps.every((s) => s.status !== "failed") && steps.some((s) => s.status === "ok");
    return {
      verdict: valid ? "valid" : "invalid",
      steps,
      entry,
      anchors,
      ...(valid && existedBy ? { existedBy } : {}),
    };
  };

  const parsed = BundleSchema.safeParse(input);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    bad("bundle", "BUNDLE_MALFORMED", `${i.path.join(".") || "bundle"}: ${i.message}`);
    return done();
  }
  const b: Bundle = parsed.data;
  ok("bundle", "bundle has the trialseal-proof/v1 shape");

  // Envelope.
  const env = EnvelopeSchema.safeParse(b.envelope);
  if (!env.success) {
    const i = env.error.issues[0];
    bad("envelope", "ENVELOPE_SCHEMA", `envelope.${i.path.join(".")}: ${i.message}`);
    return done();
  }
  const envelope: Envelope = env.data;
  ok("envelope", "envelope matches its schema");

  // Payload: schema of its kind, and hash.
  const p = parsePayload(envelope.kind, b.payload);
  if (!p.success) bad("payload.schema", "PAYLOAD_SCHEMA", `payload (${envelope.kind}): ${p.error}`);
  else ok("payload.schema", `payload matches the ${envelope.kind} schema`);
  let payloadText: string | null = null;
  try {
    payloadText = canonicalize(b.payload);
  } catch {
    payloadText = null;
  }
  if (payloadText !== null && toHex(crypto.sha256(utf8(payloadText))) === envelope.payloadHash)
    ok("payload.hash", "SHA-256 of the canonical payload equals envelope.payloadHash");
  else bad("payload.hash", "PAYLOAD_HASH_MISMATCH", "the payload does not hash to envelope.payloadHash");
  // The form: a record's calculated fields recomputed and its branching checked from the sealed definition.
  if (p.success) steps.push(...verifyFormSteps(crypto, envelope.kind, b.payload, b.form));

  // Header.
  const hdr = BatchHeaderSchema.safeParse(b.batch.header);
  if (!hdr.success) {
    const i = hdr.error.issues[0];
    bad("header", "HEADER_SCHEMA", `batch.header.${i.path.join(".")}: ${i.message}`);
    return done();
  }
  const header: BatchHeader = hdr.data;
  ok("header", "batch header matches its schema");

  // Origins.
  const originsOk = envelope.log === policy.origin && header.log === policy.origin;
  if (originsOk) ok("origin", `envelope and header name the log ${policy.origin}`);
  else
    bad(
      "origin",
      "ORIGIN_MISMATCH",
      `envelope or header names log ${envelope.log !== policy.origin ? envelope.log : header.log}, ` +
        `policy trusts ${policy.origin}`,
    );

  // Position in the batch.
  const leafIndex = b.batch.leafIndex;
  if (leafIndex >= header.size)
    bad("batch.position", "LEAF_INDEX_OUT_OF_RANGE", `leafIndex ${leafIndex} is not below batch size ${header.size}`);
  else if (envelope.seq !== header.first + leafIndex)
    bad(
      "batch.position",
      "SEQ_MISMATCH",
      `envelope.seq ${envelope.seq} != header.first ${header.first} + leafIndex ${leafIndex}`,
    );
  else ok("batch.position", `entry seq ${envelope.seq} is leaf ${leafIndex} of batch ${header.batch}`);

  // Batch inclusion.
  const { leaf } = envelopeLeaf(crypto, envelope);
  try {
    const root = rootFromInclusionProof(crypto, leafIndex, header.size, leaf, b.batch.inclusion.map(fromHex));
    if (toHex(root) === header.root) ok("batch.inclusion", "the entry's leaf is included under the batch root");
    else bad("batch.inclusion", "BATCH_INCLUSION_FAILED", "inclusion proof does not lead to header.root");
  } catch (err) {
    bad(
      "batch.inclusion",
      "BATCH_INCLUSION_FAILED",
      err instanceof MerkleError ? err.message : "malformed inclusion proof",
    );
  }

  // Checkpoints.
  const { leaf: hLeaf } = headerLeaf(crypto, header);
  for (const [k, cp] of b.checkpoints.entries()) {
    const name = `checkpoint[${k}]`;
    let note: ParsedNote;
    let checkpoint: Checkpoint;
    try {
      note = parseNote(cp.note);
      checkpoint = parseCheckpoint(note.text);
    } catch (err) {
      bad(`${name}.note`, "CHECKPOINT_MALFORMED", err instanceof NoteError ? err.message : "malformed note");
      continue;
    }
    ok(`${name}.note`, `checkpoint of ${checkpoint.origin} at tree size ${checkpoint.treeSize}`);
    if (checkpoint.origin !== policy.origin)
      bad(
        `${name}.origin`,
        "ORIGIN_MISMATCH",
        `checkpoint origin ${checkpoint.origin} is not the policy's ${policy.origin}`,
      );
    else ok(`${name}.origin`, "checkpoint origin matches the policy");
    if (cp.log.index !== header.batch)
      bad(`${name}.log.index`, "LOG_INDEX_MISMATCH", `log.index ${cp.log.index} != header.batch ${header.batch}`);
    else if (cp.log.treeSize !== checkpoint.treeSize)
      bad(
        `${name}.log.index`,
        "TREE_SIZE_MISMATCH",
        `log.treeSize ${cp.log.treeSize} != checkpoint size ${checkpoint.treeSize}`,
      );
    else ok(`${name}.log.index`, `batch ${header.batch} in a log of ${checkpoint.treeSize} batches`);
    try {
      const root = rootFromInclusionProof(crypto, cp.log.index, cp.log.treeSize, hLeaf, cp.log.inclusion.map(fromHex));
      if (bytesEqual(root, checkpoint.root) && cp.log.treeSize === checkpoint.treeSize)
        ok(`${name}.log.inclusion`, "the batch header is included under the checkpoint root");
      else
        bad(
          `${name}.log.inclusion`,
          "LOG_INCLUSION_FAILED",
          "log inclusion proof does not lead to the checkpoint root",
        );
    } catch (err) {
      bad(
        `${name}.log.inclusion`,
        "LOG_INCLUSION_FAILED",
        err instanceof MerkleError ? err.message : "malformed log inclusion proof",
      );
    }
    // Signature by a policy key valid for this size and this entry's time.
    const keys = policy.logKeys.filter(
      (k) =>
        checkpoint.treeSize >= k.fromSize &&
        (k.untilSize === null || checkpoint.treeSize < k.untilSize) &&
        (k.notBefore === null || envelope.at >= k.notBefore) &&
        (k.notAfter === null || envelope.at < k.notAfter),
    );
    if (keys.length === 0) {
      bad(
        `${name}.signature`,
        "NO_VALID_KEY",
        `no policy key is valid for tree size ${checkpoint.treeSize} at ${envelope.at}`,
      );
      continue;
    }
    let signed = false;
    for (const k of keys) {
      try {
        if (noteSignedBy(crypto, note, parseVkey(crypto, k.vkey))) signed = true;
      } catch {
        // a malformed policy key cannot sign anything
      }
    }
    if (signed) ok(`${name}.signature`, "checkpoint signed by a trusted log key");
    else bad(`${name}.signature`, "SIGNATURE_INVALID", "no valid signature by a trusted log key");
    if (!signed) continue;
    // Anchors are only meaningful for a checkpoint that is itself signed and includes the entry.
    for (const a of cp.anchors) {
      const r = await verifyAnchor(
        crypto,
        a,
        { note: cp.note, treeSize: checkpoint.treeSize, origin: checkpoint.origin },
        policy.ledgers,
        opts,
      );
      const applied =
        r.status === "ok" && r.time
          ? ledgerTime(r.type, policy.ledgerTime, { driftMs: r.statedAccuracyMs })
          : undefined;
      anchors.push({ ...r, treeSize: checkpoint.treeSize, ...applied });
      const step = `${name}.anchor[${r.ledger}]`;
      if (r.status === "ok") ok(step, r.message);
      else if (r.status === "failed") bad(step, r.code as ErrorCode, r.message);
      else skip(step, r.message);
    }
  }

  // Time: the entry's claimed time cannot be later than the earliest anchor of a checkpoint containing it.
  // Each anchor's time plus its ledger's resolution and drift is the latest moment it proves; the earliest of
  // those bounds the entry, which may be later than it by at most maxSkewMs (the deployment clock's skew).
  const timing = (a: Report["anchors"][number]): LedgerTime => ({
    resolutionMs: a.resolutionMs ?? 0,
    driftMs: a.driftMs ?? 0,
  });
  const bound = (a: Report["anchors"][number]) => latestProven(a.time!, timing(a));
  const timed = anchors.filter((a) => a.status === "ok" && a.time).sort((x, y) => bound(x) - bound(y));
  if (timed.length === 0)
    skip(
      "anchors.time",
      anchors.length === 0 ? "no anchor receipts in this bundle yet" : "no anchor could be checked: no time bound",
    );
  else {
    const first = timed[0];
    const t = timing(first);
    const slack = `${first.type} time resolution ${t.resolutionMs} ms, drift ${t.driftMs} ms`;
    const late = Date.parse(envelope.at) - bound(first);
    if (late > policy.maxSkewMs)
      bad(
        "anchors.time",
        "ENTRY_AFTER_ANCHOR",
        `the entry claims ${envelope.at}, but ledger ${first.ledger} attests its checkpoint at ${first.time}; ` +
          `counting the ledger's ${slack}, the entry is still ${late} ms late (allowed skew ${policy.maxSkewMs} ms)`,
      );
    else {
      // What the anchor proves: the checkpoint existed by its time plus the ledger's resolution and drift.
      existedBy = { time: new Date(bound(first)).toISOString(), ledger: first.ledger, attested: first.time! };
      ok(
        "anchors.time",
        `written at ${envelope.at}, consistent with ledger ${first.ledger} attesting its checkpoint at ${first.time} ` +
          `(${slack}${timed.length > 1 ? `; earliest of ${timed.length} anchors` : ""})`,
      );
    }
  }
  for (const want of opts.require ?? []) {
    const matching = anchors.filter((a) => a.type === want || a.ledger === want);
    if (matching.some((a) => a.status === "ok")) ok(`require[${want}]`, `a verified ${want} anchor is present`);
    else if (matching.length === 0)
      bad(`require[${want}]`, "ANCHOR_REQUIRED", `a ${want} anchor is required and the bundle has none`);
    else
      bad(
        `require[${want}]`,
        "ANCHOR_REQUIRED",
        `a ${want} anchor is required and none could be verified ` +
          `(${matching.map((m) => (m.status === "failed" ? m.code : "not checked")).join(", ")})`,
      );
  }

  return done({ seq: envelope.seq, study: envelope.study, kind: envelope.kind, at: envelope.at, batch: header.batch });
}

/** Throw a VerificationError with the first failed step's code, or return the report. */
export function assertValid(report: Report): Report {
  const f = report.steps.find((s) => s.status === "failed");
  if (f) throw new VerificationError(f.code!, `${f.step}: ${f.message}`);
  return report;
}
