/**
 * Deterministic proof-bundle vectors: a small log built with the core's own construction (fixed key, salts and
 * times), one valid bundle per entry, and named broken cases. `npx tsx test/vectors/bundles/generate.ts`
 * rewrites the JSON files; test/vectors.test.ts checks the files equal what this produces and verifies each.
 */
import { writeFileSync, readdirSync, unlinkSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { nodeCrypto as c, nodeSigner } from "../../../anchoring/adapters/crypto-node.ts";
import { buildEntry } from "../../../anchoring/log/entry.ts";
import { toHex } from "../../../anchoring/log/bytes.ts";
import { checkpointHash, checkpointText, parseCheckpoint, parseNote, signNote, vkeyString } from "../../../anchoring/log/checkpoint.ts";
import { GENESIS_PREV, LOCAL_FORMAT, signRecord } from "../../../anchoring/ledgers/local-record.ts";
import { ANCHORED_TOPIC, logIdOf, type EvmReader, type EvmTxReceipt } from "../../../anchoring/ledgers/evm-event.ts";
import { utf8 } from "../../../anchoring/log/bytes.ts";
import { envelopeLeaf, headerLeaf, type BatchHeader, type Envelope } from "../../../anchoring/log/envelope.ts";
import { MerkleLevels } from "../../../anchoring/log/tree.ts";
import type { Bundle } from "../../../anchoring/verifier/bundle.ts";
import type { TrustPolicy } from "../../../anchoring/verifier/trust-policy.ts";
import type { EntryKind } from "../../../anchoring/log/payloads.ts";
import { formVectors } from "./forms.ts";

export const ORIGIN = "vectors.trialseal.test/log";
const signer = nodeSigner(new Uint8Array(32).fill(1));
const otherSigner = nodeSigner(new Uint8Array(32).fill(2));

export const POLICY: TrustPolicy = {
  format: "trialseal-trust/v1",
  origin: ORIGIN,
  logKeys: [{ vkey: vkeyString(c, ORIGIN, signer.publicKey), fromSize: 0, untilSize: null, notBefore: null, notAfter: null }],
  ledgers: {},
  maxSkewMs: 300_000,
};

const ACTOR = "00000000-0000-4000-8000-0000000000aa";
const RECORD = "00000000-0000-4000-8000-0000000000bb";
const salt = (i: number) => `${String.fromCharCode(65 + i)}${"Q".repeat(21)}`;

type Spec = { kind: EntryKind; fields: Record<string, unknown> };
const SPECS: Spec[] = [
  { kind: "study.registered", fields: { study: "VEC-1", title: "Vector study", actor: null } },
  { kind: "site.added", fields: { site: "S1", actor: null } },
  { kind: "form.approved", fields: { form: "VITALS", version: 1, definitionSha256: "ab".repeat(32), actor: ACTOR } },
  { kind: "participant.enrolled", fields: { subject: "VEC-1-001", site: "S1", identity: "cd".repeat(32), actor: ACTOR } },
  {
    kind: "record.saved",
    fields: { record: RECORD, version: 1, subject: "VEC-1-001", form: "VITALS", formVersion: 1, visit: "SCREENING", actor: ACTOR, reason: null, values: { sbp: 120, temp: 36.6, visit_date: "2026-03-01" }, prev: null },
  },
];
const BATCHES = [3, 2]; // batch 0: seq 0..2, batch 1: seq 3..4

/** Build the log and every valid bundle. */
export function buildLog() {
  const entries = SPECS.map((s, i) => {
    // Version 1 payloads (record.saved with its reason in clear): the vectors stay what they were (ADR 0020).
    const built = buildEntry(c, s.kind, s.fields as never, salt(i), 1);
    const envelope: Envelope = {
      v: 1,
      log: ORIGIN,
      seq: i,
      studySeq: i,
      at: new Date(Date.UTC(2026, 2, 1, 9, 0, i)).toISOString(),
      study: "VEC-1",
      kind: s.kind,
      payloadHash: toHex(built.payloadHash),
    };
    return { payload: built.payload, envelope, leaf: envelopeLeaf(c, envelope).leaf };
  });
  const log = new MerkleLevels(c);
  const batches: { header: BatchHeader; tree: MerkleLevels; note: string }[] = [];
  let first = 0;
  BATCHES.forEach((size, b) => {
    const tree = MerkleLevels.fromLeaves(c, entries.slice(first, first + size).map((e) => e.leaf));
    const header: BatchHeader = { v: 1, log: ORIGIN, batch: b, first, size, root: toHex(tree.root()), sealedAt: new Date(Date.UTC(2026, 2, 1, 9, 1, b)).toISOString() };
    log.append(headerLeaf(c, header).leaf);
    const note = signNote(c, checkpointText({ origin: ORIGIN, treeSize: log.size, root: log.root() }), ORIGIN, signer);
    batches.push({ header, tree, note });
    first += size;
  });
  const bundles: Bundle[] = entries.map((e) => {
    const b = batches.findIndex((x) => e.envelope.seq < x.header.first + x.header.size);
    const { header, tree, note } = batches[b];
    const leafIndex = e.envelope.seq - header.first;
    return {
      format: "trialseal-proof/v1",
      payload: e.payload as Record<string, unknown>,
      envelope: e.envelope as unknown as Record<string, unknown>,
      batch: { header: header as unknown as Record<string, unknown>, leafIndex, inclusion: tree.inclusionProof(leafIndex).map(toHex) },
      checkpoints: [{ note, log: { index: b, treeSize: b + 1, inclusion: log.inclusionProof(b, b + 1).map(toHex) }, anchors: [] }],
    };
  });
  return { bundles, batches, log };
}

export interface Vector {
  desc: string;
  bundle: unknown;
  policy: TrustPolicy;
  /** For EVM anchors: what the chain answers (verify with an EvmReader over it, see chainReader). */
  chain?: ChainSnapshot;
  want: { verdict: "valid" | "invalid"; code?: string };
}

/** A recorded chain: its id, head block number, the transactions' receipts and the blocks' hashes and times. */
export interface ChainSnapshot {
  chainId: number;
  head: number;
  transactions: EvmTxReceipt[];
  blocks: { number: number; hash: string; timestamp: number }[];
}

/** An EvmReader answering from a recorded chain, so that EVM receipts in vectors are checked offline. */
export function chainReader(s: ChainSnapshot): EvmReader {
  return {
    chainId: async () => s.chainId,
    blockNumber: async () => s.head,
    receipt: async (hash) => s.transactions.find((t) => t.transactionHash === hash) ?? null,
    block: async (n) => {
      const b = s.blocks.find((x) => x.number === n);
      return b ? { hash: b.hash, timestamp: b.timestamp } : null;
    },
  };
}

const flipHex = (h: string, i = 0) => h.slice(0, i) + (h[i] === "0" ? "1" : "0") + h.slice(i + 1);

export function generateVectors(): Record<string, Vector> {
  const { bundles } = buildLog();
  const out: Record<string, Vector> = {};
  bundles.forEach((b, i) => (out[`valid-seq-${i}`] = { desc: `valid bundle of entry seq ${i} (${(b.envelope as Envelope).kind})`, bundle: b, policy: POLICY, want: { verdict: "valid" } }));
  const base = bundles[4]; // record.saved in batch 1 of a 2-batch log: non-empty paths everywhere
  const broken = (name: string, desc: string, code: string, mutate: (b: any) => void, policy: TrustPolicy = POLICY) => {
    const b = structuredClone(base) as any;
    mutate(b);
    out[name] = { desc, bundle: b, policy, want: { verdict: "invalid", code } };
  };
  broken("flipped-bit-payload-value", "a record value changed (120 -> 121)", "PAYLOAD_HASH_MISMATCH", (b) => (b.payload.values.sbp = 121));
  broken("payload-unknown-key", "a key the schema does not allow", "PAYLOAD_SCHEMA", (b) => (b.payload.extra = 1));
  broken("payload-swapped", "the payload of another entry (of another kind)", "PAYLOAD_SCHEMA", (b) => (b.payload = structuredClone(bundles[3].payload)));
  broken("flipped-bit-payload-hash", "envelope.payloadHash with one bit flipped", "PAYLOAD_HASH_MISMATCH", (b) => (b.envelope.payloadHash = flipHex(b.envelope.payloadHash)));
  broken("wrong-leaf", "envelope time changed: another leaf", "BATCH_INCLUSION_FAILED", (b) => (b.envelope.at = "2026-03-01T09:00:59.000Z"));
  broken("wrong-seq", "envelope.seq does not match its position", "SEQ_MISMATCH", (b) => (b.envelope.seq = 5));
  broken("leaf-index-out-of-range", "leafIndex not below the batch size", "LEAF_INDEX_OUT_OF_RANGE", (b) => (b.batch.leafIndex = 2));
  broken("truncated-proof", "batch inclusion path missing its last element", "BATCH_INCLUSION_FAILED", (b) => b.batch.inclusion.pop());
  broken("extra-proof-element", "batch inclusion path with an extra element", "BATCH_INCLUSION_FAILED", (b) => b.batch.inclusion.push("00".repeat(32)));
  broken("flipped-bit-batch-path", "batch inclusion path with one bit flipped", "BATCH_INCLUSION_FAILED", (b) => (b.batch.inclusion[0] = flipHex(b.batch.inclusion[0], 5)));
  broken("flipped-bit-header-root", "batch header root with one bit flipped", "BATCH_INCLUSION_FAILED", (b) => (b.batch.header.root = flipHex(b.batch.header.root, 63)));
  broken("header-edited", "batch header sealedAt changed", "LOG_INCLUSION_FAILED", (b) => (b.batch.header.sealedAt = "2026-03-02T00:00:00.000Z"));
  broken("flipped-bit-log-path", "log inclusion path with one bit flipped", "LOG_INCLUSION_FAILED", (b) => (b.checkpoints[0].log.inclusion[0] = flipHex(b.checkpoints[0].log.inclusion[0])));
  broken("truncated-log-proof", "log inclusion path emptied", "LOG_INCLUSION_FAILED", (b) => (b.checkpoints[0].log.inclusion = []));
  broken("wrong-log-index", "log.index is another batch", "LOG_INDEX_MISMATCH", (b) => (b.checkpoints[0].log.index = 0));
  broken("wrong-tree-size", "log.treeSize disagrees with the checkpoint", "TREE_SIZE_MISMATCH", (b) => (b.checkpoints[0].log.treeSize = 3));
  broken("checkpoint-root-edited", "checkpoint root replaced, signature kept: the log path no longer leads to it", "LOG_INCLUSION_FAILED", (b) => {
    const lines = b.checkpoints[0].note.split("\n");
    lines[2] = "A".repeat(43) + "=";
    b.checkpoints[0].note = lines.join("\n");
  });
  broken("checkpoint-unsigned", "checkpoint with its signature line removed", "CHECKPOINT_MALFORMED", (b) => (b.checkpoints[0].note = b.checkpoints[0].note.split("\n\n")[0] + "\n"));
  broken("signed-by-other-key", "checkpoint re-signed with a key the policy does not trust", "SIGNATURE_INVALID", (b) => {
    b.checkpoints[0].note = signNote(c, b.checkpoints[0].note.split("\n\n")[0] + "\n", ORIGIN, otherSigner);
  });
  broken("other-origin", "envelope names another log", "ORIGIN_MISMATCH", (b) => (b.envelope.log = "evil.example/log"));
  broken("key-outside-size-window", "the only key is valid until tree size 2", "NO_VALID_KEY", () => {}, { ...POLICY, logKeys: [{ ...POLICY.logKeys[0], untilSize: 2 }] });
  broken("key-outside-time-window", "the only key covers entries written before 2026-03-01", "NO_VALID_KEY", () => {}, { ...POLICY, logKeys: [{ ...POLICY.logKeys[0], notAfter: "2026-03-01T00:00:00.000Z" }] });
  broken("no-checkpoints", "bundle without checkpoints", "BUNDLE_MALFORMED", (b) => (b.checkpoints = []));
  broken("uppercase-hex", "hashes must be lowercase hex", "BUNDLE_MALFORMED", (b) => (b.batch.inclusion[0] = b.batch.inclusion[0].toUpperCase()));
  broken("wrong-format", "unknown format", "BUNDLE_MALFORMED", (b) => (b.format = "trialseal-proof/v2"));
  broken("envelope-lone-surrogate", "a lone UTF-16 surrogate in envelope.study: no UTF-8 form, so no canonical leaf", "ENVELOPE_SCHEMA", (b) => (b.envelope.study = "\ud800"));

  // Anchors: a local-ledger record (deterministic: fixed key and time) for the checkpoint of `base`.
  const ledgerSigner = nodeSigner(new Uint8Array(32).fill(3));
  const LEDGER_ID = "vectors.trialseal.test/local-ledger";
  const cpNote = base.checkpoints[0].note;
  const record = (note: string, time: string) =>
    signRecord(ledgerSigner, {
      format: LOCAL_FORMAT,
      ledger: LEDGER_ID,
      pos: 0,
      prev: GENESIS_PREV,
      time,
      treeSize: parseCheckpoint(parseNote(note).text).treeSize,
      checkpoint: toHex(checkpointHash(c, note)),
    });
  const anchoredPolicy: TrustPolicy = {
    ...POLICY,
    ledgers: { local: { type: "local", ledger: LEDGER_ID, keys: [{ publicKey: toHex(ledgerSigner.publicKey), notBefore: null, notAfter: null }] } },
  };
  const AT = "2026-03-01T09:10:00.000Z"; // ten minutes after the entries were written
  const anchored = structuredClone(base) as any;
  anchored.checkpoints[0].anchors = [{ ledger: "local", receipt: { type: "local", record: record(cpNote, AT) } }];
  out["valid-anchored-local"] = { desc: "bundle with a local-ledger receipt for its checkpoint", bundle: anchored, policy: anchoredPolicy, want: { verdict: "valid" } };
  const brokenAnchor = (name: string, desc: string, code: string, mutate: (b: any) => void, policy: TrustPolicy = anchoredPolicy) => {
    const b = structuredClone(anchored);
    mutate(b);
    out[name] = { desc, bundle: b, policy, want: { verdict: "invalid", code } };
  };
  const otherNote = bundles[0].checkpoints[0].note;
  brokenAnchor("anchor-other-checkpoint", "a genuine receipt, but for another checkpoint", "ANCHOR_CHECKPOINT_MISMATCH", (b) => (b.checkpoints[0].anchors[0].receipt.record = record(otherNote, AT)));
  brokenAnchor("anchor-time-edited", "the record's time edited after signing", "LOCAL_SIGNATURE_INVALID", (b) => (b.checkpoints[0].anchors[0].receipt.record.time = "2026-03-01T09:00:00.000Z"));
  brokenAnchor("anchor-signature-flipped", "the record's signature with one bit flipped", "LOCAL_SIGNATURE_INVALID", (b) => {
    const r = b.checkpoints[0].anchors[0].receipt.record;
    r.sig = (r.sig[0] === "A" ? "B" : "A") + r.sig.slice(1);
  });
  brokenAnchor("entry-after-anchor", "the ledger attests the checkpoint an hour before the entry's claimed time", "ENTRY_AFTER_ANCHOR", (b) => (b.checkpoints[0].anchors[0].receipt.record = record(cpNote, "2026-03-01T08:00:00.000Z")));
  brokenAnchor("anchor-unknown-ledger", "a receipt of a ledger the policy does not name", "ANCHOR_UNKNOWN_LEDGER", () => {}, POLICY);
  brokenAnchor("anchor-malformed", "a receipt without its record", "ANCHOR_MALFORMED", (b) => delete b.checkpoints[0].anchors[0].receipt.record);
  brokenAnchor("anchor-key-outside-window", "the ledger key covers records before 2026-03-01 only", "LOCAL_NO_VALID_KEY", () => {}, {
    ...anchoredPolicy,
    ledgers: { local: { ...(anchoredPolicy.ledgers.local as object), keys: [{ publicKey: toHex(ledgerSigner.publicKey), notBefore: null, notAfter: "2026-03-01T00:00:00.000Z" }] } },
  });

  // EVM anchors, checked offline against a recorded chain (the vector's `chain`). Block timestamps are whole
  // seconds and may lag true time: the verifier allows an EVM time 1 s resolution + 15 s drift by default. The
  // policy allows no deployment clock skew (maxSkewMs 0), so only the ledger's own resolution and drift count.
  const CHAIN_ID = 31337;
  const CONTRACT = `0x${"5f".repeat(20)}`;
  const SENDER = `0x${"a1".repeat(20)}`;
  const evmPolicy: TrustPolicy = {
    ...POLICY,
    maxSkewMs: 0,
    ledgers: { evm: { type: "evm", chainId: CHAIN_ID, contract: CONTRACT, sender: SENDER, confirmations: 2, rpcHint: null } },
  };
  const evmVector = (name: string, desc: string, blockTime: string, want: Vector["want"], policy = evmPolicy) => {
    const h = (s: string) => `0x${toHex(c.sha256(utf8(s)))}`;
    const blockNumber = 100;
    const blockHash = h(`vectors block ${blockTime}`);
    const txHash = h(`vectors tx ${blockTime}`);
    const treeSize = parseCheckpoint(parseNote(cpNote).text).treeSize;
    const b = structuredClone(base) as any;
    b.checkpoints[0].anchors = [{ ledger: "evm", receipt: { type: "evm", chainId: CHAIN_ID, contract: CONTRACT, txHash, blockNumber, blockHash, logIndex: 0 } }];
    const topics = [ANCHORED_TOPIC, logIdOf(c, ORIGIN), `0x${toHex(checkpointHash(c, cpNote))}`];
    const log = { address: CONTRACT, topics, data: `0x${treeSize.toString(16).padStart(64, "0")}`, logIndex: 0 };
    const tx: EvmTxReceipt = { transactionHash: txHash, blockNumber, blockHash, from: SENDER, to: CONTRACT, status: "success", logs: [log] };
    const chain: ChainSnapshot = { chainId: CHAIN_ID, head: blockNumber + 1, transactions: [tx], blocks: [{ number: blockNumber, hash: blockHash, timestamp: Date.parse(blockTime) / 1000 }] };
    out[name] = { desc, bundle: b, policy, chain, want };
  };
  // The entry claims 09:00:04.000Z; the block is stamped 09:00:02: 2 s later, past the 1 s resolution, within drift.
  const WITHIN = "2026-03-01T09:00:02.000Z";
  evmVector("valid-evm-entry-within-drift", "the entry is written 2 s after its checkpoint's EVM block time: within the block time's 1 s resolution and 15 s drift", WITHIN, { verdict: "valid" });
  evmVector("entry-after-evm-anchor", "the EVM block time is a minute before the entry's claimed time: far beyond 1 s resolution and 15 s drift", "2026-03-01T08:59:04.000Z", { verdict: "invalid", code: "ENTRY_AFTER_ANCHOR" });
  evmVector("evm-policy-allows-no-drift", "the valid-evm-entry-within-drift bundle, but the policy's ledgerTime allows EVM time no drift", WITHIN, { verdict: "invalid", code: "ENTRY_AFTER_ANCHOR" }, { ...evmPolicy, ledgerTime: { evm: { driftMs: 0 } } });
  // Form vectors (ADR 0028): a log of their own, record.saved v3 entries whose bundles carry the form definition.
  Object.assign(out, formVectors());
  return out;
}

const here = path.dirname(fileURLToPath(import.meta.url));
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const f of readdirSync(here)) if (f.endsWith(".json")) unlinkSync(path.join(here, f));
  const vectors = generateVectors();
  for (const [name, v] of Object.entries(vectors)) writeFileSync(path.join(here, `${name}.json`), JSON.stringify(v, null, 2) + "\n");
  console.log(`wrote ${Object.keys(vectors).length} vectors to ${here}`);
}
