/**
 * A real allocations file (anchoring/randomization/allocations-file.ts) built without a database: a small signed
 * log made with the core's own construction (entries, envelopes, batches, a signed checkpoint per batch, as
 * test/vectors/bundles/generate.ts does), holding the commitment of a list, its allocations, emergency unblindings
 * and the study unblinding. Options make the named broken cases: a slot reused or skipped, a slot's arm changed
 * after the commitment, an allocation sealed with another leaf, an allocation before the commitment, slots with a
 * kit type of another arm, a commitment sealing other strata than the design's.
 */
import { nodeCrypto as c, nodeSigner } from "../../anchoring/adapters/crypto-node.ts";
import { toBase64Url, toHex } from "../../anchoring/log/bytes.ts";
import { canonicalize } from "../../anchoring/log/canonical.ts";
import { GENESIS_PREV, LOCAL_FORMAT, signRecord } from "../../anchoring/ledgers/local-record.ts";
import { checkpointHash, checkpointText, signNote, vkeyString } from "../../anchoring/log/checkpoint.ts";
import { buildEntry } from "../../anchoring/log/entry.ts";
import { type BatchHeader, type Envelope, envelopeLeaf, headerLeaf } from "../../anchoring/log/envelope.ts";
import type { EntryKind } from "../../anchoring/log/payloads.ts";
import { MerkleLevels } from "../../anchoring/log/tree.ts";
import { ALLOCATIONS_FORMAT, type AllocationsFile } from "../../anchoring/randomization/allocations-file.ts";
import { designHash, slotInclusionProof, stratumCommitment } from "../../anchoring/randomization/commitment.ts";
import { generateList } from "../../anchoring/randomization/generate.ts";
import {
  type Design,
  randomizationNumber,
  type Slot,
  slotLeafHash,
  strataOf,
} from "../../anchoring/randomization/slots.ts";
import type { Bundle } from "../../anchoring/verifier/bundle.ts";
import type { TrustPolicy } from "../../anchoring/verifier/trust-policy.ts";

export const ORIGIN = "allocations.trialseal.test/log";
const signer = nodeSigner(new Uint8Array(32).fill(7));
/** A local ledger the policy trusts: `commitmentAnchoredAt` anchors the commitment's checkpoint in it. */
const ledgerSigner = nodeSigner(new Uint8Array(32).fill(8));
const LEDGER_ID = "allocations.trialseal.test/local-ledger";
export const POLICY: TrustPolicy = {
  format: "trialseal-trust/v1",
  origin: ORIGIN,
  logKeys: [
    { vkey: vkeyString(c, ORIGIN, signer.publicKey), fromSize: 0, untilSize: null, notBefore: null, notAfter: null },
  ],
  ledgers: {
    local: {
      type: "local",
      ledger: LEDGER_ID,
      keys: [{ publicKey: toHex(ledgerSigner.publicKey), notBefore: null, notAfter: null }],
    },
  },
  maxSkewMs: 300_000,
};
export const POLICY_TEXT = `${JSON.stringify(POLICY, null, 2)}\n`;
export const POLICY_SHA256 = toHex(c.sha256(new TextEncoder().encode(POLICY_TEXT)));

export const DESIGN: Design = {
  v: 1,
  arms: [
    { code: "A", name: "Active", ratio: 1 },
    { code: "P", name: "Placebo", ratio: 1 },
  ],
  blockSizes: [4, 6],
  factors: [],
  sites: ["S1", "S2"],
  slotsPerStratum: 12,
  kitTypes: { KA: "A", KP: "P" },
};
export const SEED = new Uint8Array(32).fill(42);
/** The list's secret design nonce (ADR 0052): the design hash is salted with it, not with the payload's salt. */
export const DESIGN_NONCE = toBase64Url(c.sha256(new TextEncoder().encode("design nonce")));
const STUDY = "ALLOC-1";
const id = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
const LIST = id(1);
const ACTOR = id(2);

export interface AllocationSpec {
  subject: string;
  stratum: string;
  seq: number;
  /** Seal this leaf instead of the slot's (an allocation made against another list). */
  leaf?: string;
}

export interface BuildOptions {
  design?: Design;
  /** The seed of a generated list; null: an uploaded list (the slots are the seed's all the same). */
  seed?: Uint8Array | null;
  allocations: AllocationSpec[];
  /** Subjects unblinded in an emergency (after their allocation). */
  emergencies?: string[];
  /** Seal the first allocation before the commitment. */
  firstBeforeCommitment?: boolean;
  /**
   * Anchor the checkpoint sealing the commitment's batch in the policy's local ledger at this time (the
   * commitment's bundle then carries that checkpoint too); without it the commitment has no anchor.
   */
  commitmentAnchoredAt?: string;
  /** The first allocation's envelope time (the entries after it follow a millisecond apart); default 09:00. */
  firstAllocationAt?: string;
  /** Entries per batch of the log. */
  batchSize?: number;
  /** The slots as revealed and committed (default: the seed's); e.g. an upload whose kit type is another arm's. */
  mutateSlots?: (slots: Map<string, Slot[]>) => void;
  /** Commit these strata keys (default: the design's), e.g. one left out or one the design lacks. */
  committedKeys?: (keys: string[]) => string[];
}

/** Allocations taking slots 0, 1, 2, ... of each stratum in turn, `n` per stratum. */
export function inOrder(n: number, design: Design = DESIGN): AllocationSpec[] {
  const out: AllocationSpec[] = [];
  for (let i = 0; i < n; i++)
    for (const [k, stratum] of strataOf(design).entries())
      out.push({ subject: `P-${k + 1}-${String(i + 1).padStart(3, "0")}`, stratum, seq: i });
  return out;
}

export function buildAllocationsFile(o: BuildOptions): { file: AllocationsFile; slots: Map<string, Slot[]> } {
  const design = o.design ?? DESIGN;
  const seed = o.seed === undefined ? SEED : o.seed;
  const list = generateList(design, seed ?? SEED);
  const slots = new Map<string, Slot[]>(
    list.map((s) => [
      s.key,
      s.slots.map(({ stratum, seq, arm, kitType, salt }) => ({ stratum, seq, arm, kitType, salt })),
    ]),
  );
  o.mutateSlots?.(slots);
  const keys = o.committedKeys ? o.committedKeys(list.map((s) => s.key)) : list.map((s) => s.key);
  // A committed stratum the design lacks gets a copy of the first stratum's slots.
  const first = [...slots.values()][0];
  for (const k of keys)
    if (!slots.has(k))
      slots.set(
        k,
        first.map((x) => ({ ...x, stratum: k })),
      );
  const positions = new Map(keys.map((k, i) => [k, i + 1]));
  const designText = canonicalize(design);
  let saltNo = 0;
  const salt = () => toBase64Url(c.sha256(new Uint8Array([saltNo++, 1])).slice(0, 16));

  type Spec = { kind: EntryKind; fields: (salt: string) => Record<string, unknown>; role: string };
  const commit: Spec = {
    kind: "randomization.committed",
    role: "commitment",
    fields: () => ({
      list: LIST,
      source: seed ? "generated" : "uploaded",
      designHash: designHash(c, DESIGN_NONCE, designText),
      strata: keys.map((k) => stratumCommitment(c, k, slots.get(k)!)),
      actor: ACTOR,
    }),
  };
  const allocIds = new Map<string, string>();
  const allocs: Spec[] = o.allocations.map((a, i) => {
    const allocation = id(100 + i);
    allocIds.set(a.subject, allocation);
    const slot = slots.get(a.stratum)![a.seq];
    return {
      kind: "randomization.allocated",
      role: "allocation",
      fields: () => ({
        allocation,
        list: LIST,
        subject: a.subject,
        stratum: a.stratum,
        seq: a.seq,
        number: randomizationNumber(positions.get(a.stratum)!, a.seq),
        leaf: a.leaf ?? slotLeafHash(c, slot),
        actor: ACTOR,
      }),
    };
  });
  const emergencies: Spec[] = (o.emergencies ?? []).map((subject, i) => ({
    kind: "randomization.emergency_unblinded",
    role: "emergency",
    fields: (s) => ({
      unblinding: id(900 + i),
      allocation: allocIds.get(subject)!,
      subject,
      reasonHash: toHex(c.sha256(new TextEncoder().encode(`${s}\nsevere reaction`))),
      actor: ACTOR,
    }),
  }));
  const unblind: Spec = {
    kind: "randomization.unblinded",
    role: "unblinding",
    fields: () => ({
      unblinding: id(999),
      list: LIST,
      databaseLock: id(998),
      allocations: keys.map((stratum) => ({
        stratum,
        count: o.allocations.filter((a) => a.stratum === stratum).length,
      })),
      emergencyUnblindings: emergencies.length,
      actor: ACTOR,
    }),
  };
  const specs = o.firstBeforeCommitment
    ? [allocs[0], commit, ...allocs.slice(1), ...emergencies, unblind]
    : [commit, ...allocs, ...emergencies, unblind];

  // The log: entries in batches, a signed checkpoint after each batch.
  const firstAllocation = specs.findIndex((s) => s.role === "allocation");
  const timeOf = (i: number) =>
    o.firstAllocationAt && firstAllocation >= 0 && i >= firstAllocation
      ? new Date(Date.parse(o.firstAllocationAt) + i - firstAllocation).toISOString()
      : new Date(Date.UTC(2026, 5, 1, 9, 0, 0, i)).toISOString();
  const entries = specs.map((s, i) => {
    const built = buildEntry(c, s.kind, s.fields as never, salt());
    const envelope: Envelope = {
      v: 1,
      log: ORIGIN,
      seq: i,
      studySeq: i,
      at: timeOf(i),
      study: STUDY,
      kind: s.kind,
      payloadHash: toHex(built.payloadHash),
    };
    return { role: s.role, payload: built.payload, envelope, leaf: envelopeLeaf(c, envelope).leaf };
  });
  const batchSize = o.batchSize ?? 5;
  const log = new MerkleLevels(c);
  const batches: { header: BatchHeader; tree: MerkleLevels; note: string }[] = [];
  for (let first = 0, b = 0; first < entries.length; first += batchSize, b++) {
    const part = entries.slice(first, first + batchSize);
    const tree = MerkleLevels.fromLeaves(
      c,
      part.map((e) => e.leaf),
    );
    const header: BatchHeader = {
      v: 1,
      log: ORIGIN,
      batch: b,
      first,
      size: part.length,
      root: toHex(tree.root()),
      sealedAt: new Date(Date.UTC(2026, 5, 1, 9, 1, b)).toISOString(),
    };
    log.append(headerLeaf(c, header).leaf);
    const note = signNote(c, checkpointText({ origin: ORIGIN, treeSize: log.size, root: log.root() }), ORIGIN, signer);
    batches.push({ header, tree, note });
  }
  /** The checkpoint right after batch b, anchored at `time` in the policy's local ledger. */
  const anchoredCheckpoint = (b: number, time: string): Bundle["checkpoints"][number] => {
    const record = signRecord(ledgerSigner, {
      format: LOCAL_FORMAT,
      ledger: LEDGER_ID,
      pos: 0,
      prev: GENESIS_PREV,
      time,
      treeSize: b + 1,
      checkpoint: toHex(checkpointHash(c, batches[b].note)),
    });
    return {
      note: batches[b].note,
      log: { index: b, treeSize: b + 1, inclusion: log.inclusionProof(b, b + 1).map(toHex) },
      anchors: [{ ledger: "local", receipt: { type: "local", record } }],
    };
  };
  const bundleOf = (e: (typeof entries)[number]): Bundle => {
    const b = Math.floor(e.envelope.seq / batchSize);
    const { header, tree } = batches[b];
    const last = batches.length - 1;
    const leafIndex = e.envelope.seq - header.first;
    return {
      format: "trialseal-proof/v1",
      payload: e.payload as Record<string, unknown>,
      envelope: e.envelope as unknown as Record<string, unknown>,
      batch: {
        header: header as unknown as Record<string, unknown>,
        leafIndex,
        inclusion: tree.inclusionProof(leafIndex).map(toHex),
      },
      checkpoints: [
        {
          note: batches[last].note,
          log: { index: b, treeSize: last + 1, inclusion: log.inclusionProof(b, last + 1).map(toHex) },
          anchors: [],
        },
        ...(e.role === "commitment" && o.commitmentAnchoredAt ? [anchoredCheckpoint(b, o.commitmentAnchoredAt)] : []),
      ],
    };
  };
  const withRole = (role: string) => entries.filter((e) => e.role === role);
  const file: AllocationsFile = {
    format: ALLOCATIONS_FORMAT,
    study: STUDY,
    exportedAt: "2026-06-02T10:00:00.000Z",
    trustPolicyText: POLICY_TEXT,
    commitment: {
      bundle: bundleOf(withRole("commitment")[0]),
      designText,
      designNonce: DESIGN_NONCE,
      seed: seed ? toHex(seed) : null,
    },
    strata: keys.map((key) => ({
      key,
      position: positions.get(key)!,
      slots: slots.get(key)!.map(({ seq, arm, kitType, salt: sl }) => ({ seq, arm, kitType, salt: sl })),
    })),
    allocations: withRole("allocation").map((e) => {
      const p = e.payload as { stratum: string; seq: number };
      return { bundle: bundleOf(e), inclusion: slotInclusionProof(c, slots.get(p.stratum)!, p.seq) };
    }),
    unblinding: { bundle: bundleOf(withRole("unblinding")[0]) },
    emergencyUnblindings: withRole("emergency").map((e) => ({ bundle: bundleOf(e) })),
  };
  return { file, slots };
}
