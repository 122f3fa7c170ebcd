/**
 * The allocations verifier (ADR 0055): checks a whole study's allocations file (allocations-file.ts) offline and
 * names every slot that was skipped, reused or altered. Every entry in the file is a proof bundle checked with
 * verifyBundle against the trust policy; then the commitment (`randomization.committed`) is held against the design
 * and the revealed slots, each allocation (`randomization.allocated`) against its slot and the committed root, the
 * order of the allocations in the log against the slots' order, and the unblindings against the allocations.
 * Pure and browser-safe: no node: imports; crypto is injected. The CLI (bin/verify-allocations-command.ts) and the
 * /verify page both call it.
 */
import type { z } from "zod";
import { fromHex, toHex, utf8 } from "../log/bytes.ts";
import type { Crypto } from "../log/crypto.ts";
import type { MerkleLevels } from "../log/tree.ts";
import { type EntryKind, PAYLOAD_SCHEMAS, type Payload } from "../log/payloads.ts";
import type { TrustPolicy } from "../verifier/trust-policy.ts";
import { verifyBundle, type VerifyOptions } from "../verifier/verify-bundle.ts";
import { ALLOCATIONS_FORMAT, type AllocationsFile, AllocationsFileSchema } from "./allocations-file.ts";
import { designHash, proofRanges, type StratumCommitment, slotIncluded, slotTree } from "./commitment.ts";
import { generateStratum } from "./generate.ts";
import { type Design, designSchema, randomizationNumber, type Slot, slotLeafHash, strataOf } from "./slots.ts";

export const ALLOCATION_PROBLEM_CODES = [
  /** Not JSON, or not an allocations file at all (no `format` marker): nothing could be checked. */
  "UNREADABLE",
  /** Claims the allocations format but does not have its shape (a field missing or of the wrong kind). */
  "FILE_MALFORMED",
  /** `--pin` given and the file's trust policy has another SHA-256. */
  "POLICY_NOT_PINNED",
  /** A sealed entry in the file fails its own proof (verifyBundle). */
  "BUNDLE_INVALID",
  /** A bundle of another kind where the file expects a commitment, an allocation or an unblinding. */
  "KIND_MISMATCH",
  /** A bundle of another study than the file's. */
  "STUDY_MISMATCH",
  /** The design text is not the one the commitment sealed by hash. */
  "DESIGN_HASH_MISMATCH",
  /** The sealed design text is not a valid design. */
  "DESIGN_INVALID",
  /** The revealed strata do not match the committed {key, root, size}, or an entry names another list. */
  "COMMITMENT_MISMATCH",
  /** The seed and design do not regenerate the revealed slots. */
  "SEED_MISMATCH",
  /** A revealed slot does not hash to the committed leaf: its arm, kit type or salt changed after commitment. */
  "SLOT_ALTERED",
  /** Two allocations took the same slot. */
  "SLOT_REUSED",
  /** An allocation took a later slot while an earlier one of its stratum was still free. */
  "SLOT_SKIPPED",
  /** An allocation sealed a leaf other than its revealed slot's. */
  "ALLOCATION_LEAF_MISMATCH",
  /** An allocation's inclusion proof does not lead to its stratum's committed root. */
  "INCLUSION_FAILED",
  /** An allocation sealed before the commitment. */
  "ALLOCATION_BEFORE_COMMITMENT",
  /** The randomization number sealed is not the stratum's position and the slot's. */
  "NUMBER_MISMATCH",
  /** One participant allocated twice. */
  "SUBJECT_REALLOCATED",
  /** An emergency unblinding names no allocation of the file, another participant, or precedes the allocation. */
  "EMERGENCY_MISMATCH",
  /** The study unblinding sealed more allocations in a stratum than the file holds. */
  "ALLOCATION_MISSING",
  /** The study unblinding sealed more emergency unblindings than the file holds. */
  "EMERGENCY_MISSING",
  /** A revealed slot's kit type is not one of its arm's in the design's kit-type-to-arm map. */
  "SLOT_KIT_MISMATCH",
  /** A committed stratum's size is not the design's slotsPerStratum (a list, uploaded or generated, has exactly it). */
  "SIZE_MISMATCH",
] as const;
export type AllocationProblemCode = (typeof ALLOCATION_PROBLEM_CODES)[number];

export interface AllocationProblem {
  code: AllocationProblemCode;
  /** The stratum key and slot (seq, from 0) the problem is about, when it is about one. */
  stratum?: string;
  seq?: number;
  /** The last slot of a range (one of slots seq to seqTo), when the problem cannot be narrowed to one slot. */
  seqTo?: number;
  /** The slot's randomization number (R01-0008 for slot 7 of the first stratum), when the slot is named. */
  number?: string;
  /** The participant who took the slot, when one did. */
  subject?: string;
  message: string;
}

export const ALLOCATION_WARNING_CODES = [
  /**
   * The commitment has no verified anchor proving it existed before the first allocation's time: it still
   * precedes every allocation in the signed log, but that order then rests on the log alone (a commitment sealed
   * minutes before the first allocation, before the next anchor, is legitimate).
   */
  "COMMITMENT_NOT_ANCHORED_BEFORE_FIRST_ALLOCATION",
] as const;
export type AllocationWarningCode = (typeof ALLOCATION_WARNING_CODES)[number];

/** Something a reader should know that does not make the file invalid. */
export interface AllocationWarning {
  code: AllocationWarningCode;
  message: string;
}

export interface StratumReport {
  key: string;
  position: number;
  /** Slots revealed (the committed size when they match). */
  size: number;
  /** Allocations (taken slots) in this stratum. */
  allocated: number;
  /** Per arm: slots in the list and slots allocated (arms are revealed: the file exists after unblinding). */
  arms: Record<string, { slots: number; allocated: number }>;
}

export interface AllocationsReport {
  valid: boolean;
  study: string | null;
  list: string | null;
  source: "generated" | "uploaded" | null;
  checked: {
    bundles: number;
    strata: number;
    slots: number;
    allocations: number;
    emergencyUnblindings: number;
    seed: boolean;
  };
  strata: StratumReport[];
  /**
   * When the commitment is proven to have existed (its earliest verified anchor: the latest moment it proves, the
   * ledger, the ledger's own time; null without one) and the first allocation's envelope time (null: none).
   */
  timing: {
    commitmentExistedBy: { time: string; ledger: string; attested: string } | null;
    firstAllocationAt: string | null;
  };
  problems: AllocationProblem[];
  /** Problems found beyond the MAX_PROBLEMS listed. */
  problemsNotListed: number;
  /** Not problems: the file stays valid (exit 0) with them. */
  warnings: AllocationWarning[];
}

/** An empty report (nothing checked yet), invalid until verifyAllocations finds no problem. */
export function emptyAllocationsReport(problems: AllocationProblem[] = []): AllocationsReport {
  return {
    valid: false,
    study: null,
    list: null,
    source: null,
    checked: { bundles: 0, strata: 0, slots: 0, allocations: 0, emergencyUnblindings: 0, seed: false },
    strata: [],
    timing: { commitmentExistedBy: null, firstAllocationAt: null },
    problems,
    problemsNotListed: 0,
    warnings: [],
  };
}

export const MAX_PROBLEMS = 1000;

/**
 * Read the file's text: unreadable (nothing can be checked) when it is not JSON or not an object carrying a
 * `trialseal-allocations/...` format marker. Anything that claims the format goes to `verifyAllocations`, so a
 * file missing a field is invalid (FILE_MALFORMED), never merely unreadable (as `trialseal verify` does, issue 16).
 */
export function readAllocationsText(text: string): { value: unknown } | { unreadable: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { unreadable: e instanceof RangeError ? "JSON nested too deeply to read" : "not JSON" };
  }
  const format =
    value !== null && typeof value === "object" && !Array.isArray(value)
      ? (value as Record<string, unknown>).format
      : undefined;
  if (typeof format !== "string" || !format.startsWith("trialseal-allocations/"))
    return { unreadable: `not an allocations file (a JSON object with "format": "${ALLOCATIONS_FORMAT}")` };
  return { value };
}

/** The first schema problem of a value claiming the allocations format, naming its path; null when it parses. */
export function parseAllocationsFile(value: unknown): { file: AllocationsFile } | { problem: AllocationProblem } {
  const r = AllocationsFileSchema.safeParse(value);
  if (r.success) return { file: r.data };
  const i = r.error.issues[0];
  return { problem: { code: "FILE_MALFORMED", message: `${i.path.join(".") || "file"}: ${i.message}` } };
}

/** The file's own trust policy text, accepted only when its SHA-256 is `pin` (64 hex characters). */
export function pinnedPolicyText(crypto: Crypto, file: AllocationsFile, pin: string): AllocationProblem | null {
  const got = toHex(crypto.sha256(utf8(file.trustPolicyText)));
  return got === pin.trim().toLowerCase()
    ? null
    : { code: "POLICY_NOT_PINNED", message: `the file's trust policy has SHA-256 ${got}, not the pinned ${pin}` };
}

type Bundle = AllocationsFile["commitment"]["bundle"];
interface Sealed<K extends EntryKind> {
  seq: number;
  /** The envelope's time (the deployment's claim) and, with a verified anchor, when the entry provably existed. */
  at: string;
  existedBy?: { time: string; ledger: string; attested: string };
  payload: Payload<K>;
}
interface Allocation extends Sealed<"randomization.allocated"> {
  inclusion: string[];
  /** Index in the file's `allocations`. */
  index: number;
}

/** Check a whole allocations file (`input`: the parsed JSON) against `policy`. */
export async function verifyAllocations(
  crypto: Crypto,
  input: unknown,
  policy: TrustPolicy,
  opts: VerifyOptions = {},
): Promise<AllocationsReport> {
  const report = emptyAllocationsReport();
  const problem = (p: AllocationProblem) => {
    if (report.problems.length < MAX_PROBLEMS) report.problems.push(p);
    else report.problemsNotListed++;
  };
  const done = () => {
    // Every problem naming a slot also gives its randomization number and, when one took it, the participant.
    for (const p of report.problems) {
      if (p.stratum === undefined || p.seq === undefined) continue;
      const position = positions.get(p.stratum);
      if (p.number === undefined && position !== undefined) p.number = randomizationNumber(position, p.seq);
      if (p.subject === undefined && p.seqTo === undefined)
        p.subject = allocations.find(
          (a) => a.payload.stratum === p.stratum && a.payload.seq === p.seq,
        )?.payload.subject;
      if (p.subject === undefined) delete p.subject;
    }
    report.valid = report.problems.length === 0 && report.problemsNotListed === 0;
    return report;
  };
  /** The strata's positions (as the file reveals them) and the allocations proven: done() names slots by them. */
  const positions = new Map<string, number>();
  const allocations: Allocation[] = [];
  const parsed = parseAllocationsFile(input);
  if ("problem" in parsed) {
    problem(parsed.problem);
    return done();
  }
  const file = parsed.file;
  report.study = file.study;
  for (const s of file.strata) if (!positions.has(s.key)) positions.set(s.key, s.position);

  /** Verify one sealed entry and read its payload; null (with the problem named) when it cannot be trusted. */
  const sealed = async <K extends EntryKind>(bundle: Bundle, kind: K, what: string): Promise<Sealed<K> | null> => {
    const r = await verifyBundle(crypto, bundle, policy, opts);
    report.checked.bundles++;
    const failed = r.steps.find((s) => s.status === "failed");
    if (r.verdict !== "valid" || !r.entry) {
      problem({
        code: "BUNDLE_INVALID",
        message: `${what}: ${failed ? `${failed.step} [${failed.code}]: ${failed.message}` : "nothing checked"}`,
      });
      return null;
    }
    if (r.entry.kind !== kind) {
      problem({ code: "KIND_MISMATCH", message: `${what} is a ${r.entry.kind} entry, not ${kind}` });
      return null;
    }
    if (r.entry.study !== file.study)
      problem({ code: "STUDY_MISMATCH", message: `${what} is an entry of study ${r.entry.study}, not ${file.study}` });
    const p = (PAYLOAD_SCHEMAS[kind] as unknown as z.ZodType<Payload<K>>).safeParse(bundle.payload);
    if (!p.success) return null; // verifyBundle has checked the schema: not reached
    return { seq: r.entry.seq, at: r.entry.at, ...(r.existedBy ? { existedBy: r.existedBy } : {}), payload: p.data };
  };

  // The commitment and what it sealed.
  const commitment = await sealed(file.commitment.bundle, "randomization.committed", "the commitment");
  /** Allocation bundles that failed: a slot they took looks skipped, and the message says so. */
  let unproven = 0;
  for (const [index, a] of file.allocations.entries()) {
    const s = await sealed(a.bundle, "randomization.allocated", `allocation ${index + 1} of the file`);
    if (s) allocations.push({ ...s, inclusion: a.inclusion, index });
    else unproven++;
  }
  allocations.sort((x, y) => x.seq - y.seq);
  report.checked.allocations = allocations.length;
  const unblinding = await sealed(file.unblinding.bundle, "randomization.unblinded", "the study unblinding");
  const emergencies: Sealed<"randomization.emergency_unblinded">[] = [];
  for (const [i, e] of file.emergencyUnblindings.entries()) {
    const s = await sealed(e.bundle, "randomization.emergency_unblinded", `emergency unblinding ${i + 1}`);
    if (s) emergencies.push(s);
  }
  report.checked.emergencyUnblindings = emergencies.length;
  if (!commitment) return done(); // nothing below can be held against an unproven commitment
  const c = commitment.payload;
  report.list = c.list;
  report.source = c.source;

  // When: the commitment's earliest verified anchor against the first allocation's time (a warning, not a problem).
  const firstAllocation = allocations[0];
  report.timing = {
    commitmentExistedBy: commitment.existedBy ?? null,
    firstAllocationAt: firstAllocation?.at ?? null,
  };
  if (
    firstAllocation &&
    !(commitment.existedBy && Date.parse(commitment.existedBy.time) < Date.parse(firstAllocation.at))
  )
    report.warnings.push({
      code: "COMMITMENT_NOT_ANCHORED_BEFORE_FIRST_ALLOCATION",
      message: commitment.existedBy
        ? `the commitment's earliest anchor (ledger ${commitment.existedBy.ledger}) proves it existed by ` +
          `${commitment.existedBy.time}, not before the first allocation at ${firstAllocation.at}: ` +
          "that it came first rests on the signed log's order alone"
        : `the commitment has no verified anchor, so nothing but the signed log's order shows it existed before ` +
          `the first allocation at ${firstAllocation.at}`,
    });

  // The design: sealed by hash, and a valid design.
  let design: Design | null = null;
  // Under the list's secret nonce (the file reveals it), never the payload's public salt (ADR 0052).
  if (designHash(crypto, file.commitment.designNonce, file.commitment.designText) !== c.designHash)
    problem({
      code: "DESIGN_HASH_MISMATCH",
      message: "the design text and nonce are not the ones the commitment sealed (their SHA-256 differs)",
    });
  else {
    let json: unknown;
    try {
      json = JSON.parse(file.commitment.designText);
    } catch {
      json = undefined;
    }
    const d = designSchema.safeParse(json);
    if (d.success) design = d.data;
    else
      problem({
        code: "DESIGN_INVALID",
        message: `the sealed design is not valid: ${d.error.issues[0]?.path.join(".") || "design"}: ${
          d.error.issues[0]?.message
        }`,
      });
  }

  // The strata: each revealed stratum matches a committed {key, root, size}; its slots recompute the root.
  const committed = new Map<string, StratumCommitment>(c.strata.map((s) => [s.key, s]));
  const designed = design ? new Set(strataOf(design)) : null;
  // Every stratum of the design is committed, and nothing else.
  for (const s of c.strata)
    if (designed && !designed.has(s.key))
      problem({ code: "COMMITMENT_MISMATCH", stratum: s.key, message: `the design has no stratum ${s.key}` });
  if (design)
    for (const key of strataOf(design))
      if (!committed.has(key))
        problem({
          code: "COMMITMENT_MISMATCH",
          stratum: key,
          message: `the design's stratum ${key} was not committed`,
        });
  // Every committed stratum has exactly the design's slots per stratum (a generated list cuts its last block).
  if (design)
    for (const s of c.strata)
      if (s.size !== design.slotsPerStratum)
        problem({
          code: "SIZE_MISMATCH",
          stratum: s.key,
          message:
            `stratum ${s.key} was committed with ${countOf(s.size, "slot")}, ` +
            `the design has ${design.slotsPerStratum} per stratum`,
        });
  const revealed = new Map<string, { position: number; slots: Slot[] }>();
  for (const s of file.strata) {
    if (revealed.has(s.key)) {
      problem({ code: "COMMITMENT_MISMATCH", stratum: s.key, message: `stratum ${s.key} is revealed twice` });
      continue;
    }
    revealed.set(s.key, {
      position: s.position,
      slots: s.slots.map((x) => ({ stratum: s.key, seq: x.seq, arm: x.arm, kitType: x.kitType, salt: x.salt })),
    });
  }
  for (const key of committed.keys())
    if (!revealed.has(key))
      problem({ code: "COMMITMENT_MISMATCH", stratum: key, message: `committed stratum ${key} is not revealed` });

  const byStratum = new Map<string, Allocation[]>();
  /** The revealed slot tree of each stratum whose slots do not recompute the committed root (a slot altered). */
  const alteredTrees = new Map<string, MerkleLevels>();
  /** The slots named SLOT_ALTERED one by one, per stratum. */
  const alteredSlots = new Map<string, number[]>();
  for (const a of allocations) byStratum.set(a.payload.stratum, [...(byStratum.get(a.payload.stratum) ?? []), a]);

  for (const [key, r] of revealed) {
    report.checked.strata++;
    report.checked.slots += r.slots.length;
    const cm = committed.get(key);
    const stratumReport: StratumReport = { key, position: r.position, size: r.slots.length, allocated: 0, arms: {} };
    for (const s of r.slots) {
      stratumReport.arms[s.arm] ??= { slots: 0, allocated: 0 };
      stratumReport.arms[s.arm].slots++;
    }
    report.strata.push(stratumReport);
    if (!cm) {
      problem({ code: "COMMITMENT_MISMATCH", stratum: key, message: `stratum ${key} was not committed` });
      continue;
    }
    const outOfPlace = r.slots.findIndex((s, i) => s.seq !== i);
    if (outOfPlace >= 0) {
      problem({
        code: "COMMITMENT_MISMATCH",
        stratum: key,
        seq: outOfPlace,
        message: `the slot at place ${outOfPlace} of the file says it is slot ${r.slots[outOfPlace].seq}`,
      });
      continue;
    }
    if (r.slots.length !== cm.size) {
      problem({
        code: "COMMITMENT_MISMATCH",
        stratum: key,
        message: `stratum ${key} reveals ${r.slots.length} slots, the commitment sealed ${cm.size}`,
      });
      continue;
    }
    // Each slot's kit type is one of its arm's (an upload is checked by its slots alone, a generated list also so).
    if (design)
      for (const x of r.slots) {
        const arm = design.kitTypes[x.kitType];
        if (arm !== x.arm)
          problem({
            code: "SLOT_KIT_MISMATCH",
            stratum: key,
            seq: x.seq,
            message:
              arm === undefined
                ? `kit type ${x.kitType} is not in the design's kit-type-to-arm map`
                : `kit type ${x.kitType} is arm ${arm}'s in the design, ` + `the slot's arm is ${x.arm}`,
          });
      }
    const tree = slotTree(crypto, r.slots);
    if (toHex(tree.root()) === cm.root) continue;
    alteredTrees.set(key, tree);
    // Name the altered slots: each verified inclusion proof authenticates its leaf and the subtree roots beside it.
    const known = new Map<string, { lo: number; hi: number; hash: string }>();
    for (const a of byStratum.get(key) ?? []) {
      if (a.payload.seq >= cm.size || !slotIncluded(crypto, cm, a.payload.seq, a.payload.leaf, a.inclusion).ok)
        continue;
      known.set(`${a.payload.seq}-${a.payload.seq + 1}`, {
        lo: a.payload.seq,
        hi: a.payload.seq + 1,
        hash: a.payload.leaf,
      });
      for (const [k, [lo, hi]] of proofRanges(a.payload.seq, cm.size).entries())
        known.set(`${lo}-${hi}`, { lo, hi, hash: a.inclusion[k] });
    }
    const differ = [...known.values()].filter((k) => toHex(tree.rangeRoot(k.lo, k.hi)) !== k.hash);
    const smallest = differ.filter((d) => !differ.some((e) => e !== d && e.lo >= d.lo && e.hi <= d.hi));
    alteredSlots.set(
      key,
      smallest.filter((d) => d.hi - d.lo === 1).map((d) => d.lo),
    );
    for (const d of smallest.sort((x, y) => x.lo - y.lo))
      problem({
        code: "SLOT_ALTERED",
        stratum: key,
        seq: d.lo,
        ...(d.hi - d.lo === 1
          ? {}
          : {
              seqTo: d.hi - 1,
              number: `${randomizationNumber(r.position, d.lo)} to ${randomizationNumber(r.position, d.hi - 1)}`,
            }),
        message:
          d.hi - d.lo === 1
            ? `the revealed slot (arm ${r.slots[d.lo].arm}) does not hash to the committed leaf: ` +
              "it was changed after the commitment"
            : `one of slots ${d.lo} to ${d.hi - 1} does not hash to the committed leaf: ` +
              "changed after the commitment",
      });
    if (smallest.length === 0)
      problem({
        code: "SLOT_ALTERED",
        stratum: key,
        message: "the revealed slots do not recompute the committed root: " + "a slot was changed after the commitment",
      });
  }

  // A generated list: the seed and the design regenerate every revealed slot.
  if (c.source === "generated" && file.commitment.seed === null)
    problem({ code: "SEED_MISMATCH", message: "a generated list, but the file does not reveal its seed" });
  if (c.source === "uploaded" && file.commitment.seed !== null)
    problem({ code: "SEED_MISMATCH", message: "an uploaded list has no seed, yet the file gives one" });
  if (c.source === "generated" && file.commitment.seed !== null && design) {
    report.checked.seed = true;
    const seed = fromHex(file.commitment.seed);
    for (const [key, r] of revealed) {
      if (designed && !designed.has(key)) continue;
      const regenerated = generateStratum(design, seed, key).slots;
      const n = Math.max(regenerated.length, r.slots.length);
      for (let i = 0; i < n; i++) {
        const want = regenerated[i];
        const got = r.slots[i];
        if (want && got && slotLeafHash(crypto, want) === slotLeafHash(crypto, got)) continue;
        problem({
          code: "SEED_MISMATCH",
          stratum: key,
          seq: i,
          message: !want
            ? `the seed gives ${regenerated.length} slots, the file reveals ${r.slots.length}`
            : !got
              ? `the seed gives ${regenerated.length} slots, the file reveals ${r.slots.length}`
              : `the seed gives arm ${want.arm} (kit ${want.kitType}), ` +
                `the file reveals arm ${got.arm} (kit ${got.kitType})`,
        });
        break;
      }
    }
  }

  // Each allocation: after the commitment, of this list, its leaf the revealed slot's and proven under the root;
  // per stratum, the allocations in log order take seq 0, 1, 2, ... exactly.
  const subjects = new Map<string, Allocation>();
  for (const [key, list] of byStratum) {
    const cm = committed.get(key);
    const r = revealed.get(key);
    const stratumReport = report.strata.find((s) => s.key === key);
    const taken = new Map<number, Allocation>();
    let next = 0;
    for (const a of list) {
      const p = a.payload;
      const number = r ? randomizationNumber(r.position, p.seq) : null;
      const at = `${key} slot ${p.seq}${number ? ` (${number})` : ""}`;
      if (a.seq < commitment.seq)
        problem({
          code: "ALLOCATION_BEFORE_COMMITMENT",
          stratum: key,
          seq: p.seq,
          subject: p.subject,
          message: `allocated at log entry ${a.seq}, before the commitment (log entry ${commitment.seq})`,
        });
      if (p.list !== c.list)
        problem({
          code: "COMMITMENT_MISMATCH",
          stratum: key,
          seq: p.seq,
          subject: p.subject,
          message: "the allocation names another list",
        });
      const before = subjects.get(p.subject);
      if (before)
        problem({
          code: "SUBJECT_REALLOCATED",
          stratum: key,
          seq: p.seq,
          subject: p.subject,
          message: `subject ${p.subject} was allocated twice: first ${
            before.payload.number
          } (${before.payload.stratum} slot ${before.payload.seq}), then ${p.number} (${at})`,
        });
      else subjects.set(p.subject, a);
      const first = taken.get(p.seq);
      if (first)
        problem({
          code: "SLOT_REUSED",
          stratum: key,
          seq: p.seq,
          subject: `${first.payload.subject} and ${p.subject}`,
          message: `the slot was taken twice: subject ${first.payload.subject}, then subject ${p.subject}`,
        });
      else {
        for (let s = next; s < p.seq; s++)
          if (!taken.has(s))
            problem({
              code: "SLOT_SKIPPED",
              stratum: key,
              seq: s,
              message:
                `the slot was skipped: subject ${p.subject} took the later slot ${p.seq}` +
                (number ? ` (${number})` : "") +
                (unproven ? ` (or its allocation is among the ${unproven} whose bundle failed)` : ""),
            });
        taken.set(p.seq, a);
        next = Math.max(next, p.seq + 1);
      }
      if (stratumReport) {
        stratumReport.allocated++;
        const arm = r?.slots[p.seq]?.arm;
        if (arm) stratumReport.arms[arm].allocated++;
      }
      if (r && stratumReport && p.number !== randomizationNumber(r.position, p.seq))
        problem({
          code: "NUMBER_MISMATCH",
          stratum: key,
          seq: p.seq,
          subject: p.subject,
          message: `the allocation sealed number ${p.number}, not ${randomizationNumber(r.position, p.seq)}`,
        });
      if (!cm) {
        problem({
          code: "COMMITMENT_MISMATCH",
          stratum: key,
          seq: p.seq,
          subject: p.subject,
          message: "no such committed stratum",
        });
        continue;
      }
      const included = slotIncluded(crypto, cm, p.seq, p.leaf, a.inclusion);
      const slot = r?.slots[p.seq];
      const leaf = slot ? slotLeafHash(crypto, slot) : null;
      // A proof made from the revealed slots fails, for an allocation whose own slot is intact, when another slot
      // under one of its proof's subtrees was altered and named above: naming this allocation too would point at
      // the wrong slot. Unless that altered slot was named one by one, the failure is reported.
      const altered = alteredTrees.get(key);
      const explained =
        !included.ok &&
        leaf === p.leaf &&
        altered !== undefined &&
        p.seq < altered.size &&
        altered.inclusionProof(p.seq).map(toHex).join() === a.inclusion.join() &&
        (alteredSlots.get(key) ?? []).some(
          (k) => k !== p.seq && proofRanges(p.seq, altered.size).some(([lo, hi]) => k >= lo && k < hi),
        );
      if (!included.ok && !explained)
        problem({ code: "INCLUSION_FAILED", stratum: key, seq: p.seq, subject: p.subject, message: included.why });
      if (!slot || !leaf) continue; // not revealed: named above (size or stratum)
      // A sealed leaf proven under the root and a revealed slot hashing elsewhere: the slot changed (named above).
      if (leaf !== p.leaf && !included.ok)
        problem({
          code: "ALLOCATION_LEAF_MISMATCH",
          stratum: key,
          seq: p.seq,
          subject: p.subject,
          message: `the allocation sealed leaf ${p.leaf.slice(0, 12)}…, but its revealed slot hashes to ${leaf.slice(
            0,
            12,
          )}…`,
        });
    }
  }

  // The unblindings: of this list, after the commitment; each emergency one names an allocation of the file.
  if (unblinding) {
    if (unblinding.payload.list !== c.list)
      problem({ code: "COMMITMENT_MISMATCH", message: "the study unblinding names another list" });
    if (unblinding.seq < commitment.seq)
      problem({ code: "COMMITMENT_MISMATCH", message: "the study unblinding precedes the commitment" });
    // What the unblinding sealed the study held: a file leaving an allocation or emergency unblinding out is named.
    for (const { stratum, count } of unblinding.payload.allocations) {
      const held = byStratum.get(stratum)?.length ?? 0;
      if (held < count)
        problem({
          code: "ALLOCATION_MISSING",
          stratum,
          message:
            `the unblinding sealed ${count} allocation${count === 1 ? "" : "s"} in ${stratum}, ` +
            `the file holds ${held}: ${count - held} missing` +
            (unproven ? ` (or among the ${unproven} whose bundle failed)` : ""),
        });
      else if (held > count)
        problem({
          code: "COMMITMENT_MISMATCH",
          stratum,
          message: `the unblinding sealed ${countOf(count, "allocation")} in ${stratum}, the file holds ${held}`,
        });
    }
    for (const key of byStratum.keys())
      if (!unblinding.payload.allocations.some((x) => x.stratum === key))
        problem({
          code: "COMMITMENT_MISMATCH",
          stratum: key,
          message: `the unblinding sealed no allocation count for ${key}, the file holds allocations there`,
        });
    const sealedEmergencies = unblinding.payload.emergencyUnblindings;
    const heldEmergencies = file.emergencyUnblindings.length;
    if (heldEmergencies < sealedEmergencies)
      problem({
        code: "EMERGENCY_MISSING",
        message:
          `the unblinding sealed ${sealedEmergencies} emergency unblinding${sealedEmergencies === 1 ? "" : "s"}, ` +
          `the file holds ${heldEmergencies}: ${sealedEmergencies - heldEmergencies} missing`,
      });
    else if (heldEmergencies > sealedEmergencies)
      problem({
        code: "EMERGENCY_MISMATCH",
        message:
          `the unblinding sealed ${sealedEmergencies} emergency unblinding${sealedEmergencies === 1 ? "" : "s"}, ` +
          `the file holds ${heldEmergencies}`,
      });
  }
  const byId = new Map(allocations.map((a) => [a.payload.allocation, a]));
  for (const e of emergencies) {
    const a = byId.get(e.payload.allocation);
    if (!a)
      problem({
        code: "EMERGENCY_MISMATCH",
        message: `the emergency unblinding of subject ${e.payload.subject} names no allocation in the file`,
      });
    else if (a.payload.subject !== e.payload.subject || e.seq < a.seq)
      problem({
        code: "EMERGENCY_MISMATCH",
        stratum: a.payload.stratum,
        seq: a.payload.seq,
        message:
          a.payload.subject !== e.payload.subject
            ? `an emergency unblinding names subject ${e.payload.subject}, ` +
              `its allocation is subject ${a.payload.subject}`
            : `the emergency unblinding of subject ${e.payload.subject} precedes the allocation`,
      });
  }
  report.strata.sort((x, y) => x.position - y.position);
  return done();
}

/** "1 emergency unblinding", "2 emergency unblindings", "1 stratum", "2 strata": counts in words people read. */
export function countOf(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/**
 * Where a problem is: its stratum and, for one slot, the slot's randomization number with the slot (counted from 0
 * in the list; the number counts from 1) and the participant who took it: "site=S1, R01-0008 (slot 7, subject
 * S1-007)". Empty when the problem is about the whole file.
 */
export function problemPlace(p: AllocationProblem): string {
  if (p.stratum === undefined) return "";
  if (p.seq === undefined) return p.stratum;
  const slot =
    p.seqTo !== undefined
      ? `slots ${p.seq} to ${p.seqTo}`
      : `slot ${p.seq}${p.subject ? `, subject ${p.subject}` : ""}`;
  return p.number ? `${p.stratum}, ${p.number} (${slot})` : `${p.stratum}, ${slot}`;
}

/** One line for a problem: its code, its place when it has one, and its message. */
export function problemLine(p: AllocationProblem): string {
  const where = problemPlace(p);
  return `[${p.code}]${where ? ` ${where}` : ""}: ${p.message}`;
}
