/**
 * Property-based mutations of proof bundles (fast-check): each arbitrary yields a change to one field of a
 * bundle (or its policy) and the step codes that may legitimately be the first to fail. Used over the
 * vector bundles (unit) and over bundles the real sealer produced (database suite).
 */
import fc from "fast-check";
import type { Bundle } from "../../anchoring/verifier/bundle.ts";
import { nodeCrypto, nodeSigner } from "../../anchoring/adapters/crypto-node.ts";
import { signNote } from "../../anchoring/log/checkpoint.ts";
import type { TrustPolicy } from "../../anchoring/verifier/trust-policy.ts";
import { verifyBundle } from "../../anchoring/verifier/verify-bundle.ts";

export interface Mutation {
  name: string;
  codes: string[];
  // Changes the bundle in place; a mutation of the policy returns the changed policy.
  apply: ((b: any, p: TrustPolicy) => void) | ((b: any, p: TrustPolicy) => TrustPolicy | undefined);
}

const HEX = "0123456789abcdef";
const changeHexChar = (s: string, i: number, d: number) => {
  const at = i % s.length;
  const next = HEX[(HEX.indexOf(s[at]) + 1 + (d % 15)) % 16];
  return s.slice(0, at) + next + s.slice(at + 1);
};

export function mutationArb(others: Bundle[]): fc.Arbitrary<Mutation> {
  const hexField = fc
    .record({
      field: fc.constantFrom("payloadHash", "root", "batchPath", "logPath"),
      i: fc.nat(),
      d: fc.nat(),
      k: fc.nat(),
    })
    .map(
      ({ field, i, d, k }): Mutation => ({
        name: `flip ${field}[${k}] char ${i}`,
        codes: {
          payloadHash: ["PAYLOAD_HASH_MISMATCH"],
          root: ["BATCH_INCLUSION_FAILED"],
          batchPath: ["BATCH_INCLUSION_FAILED"],
          logPath: ["LOG_INCLUSION_FAILED"],
        }[field]!,
        apply(b) {
          if (field === "payloadHash") b.envelope.payloadHash = changeHexChar(b.envelope.payloadHash, i, d);
          else if (field === "root") b.batch.header.root = changeHexChar(b.batch.header.root, i, d);
          else {
            const path: string[] = field === "batchPath" ? b.batch.inclusion : b.checkpoints[0].log.inclusion;
            if (path.length === 0) path.push("00".repeat(32));
            else path[k % path.length] = changeHexChar(path[k % path.length], i, d);
          }
        },
      }),
    );
  const number = fc
    .record({
      field: fc.constantFrom("seq", "studySeq", "leafIndex", "batch", "first", "size", "logIndex", "treeSize"),
      delta: fc.integer({ min: 1, max: 1000 }),
    })
    .map(
      ({ field, delta }): Mutation => ({
        name: `${field} + ${delta}`,
        codes: {
          seq: ["SEQ_MISMATCH"],
          studySeq: ["BATCH_INCLUSION_FAILED"],
          leafIndex: ["SEQ_MISMATCH", "LEAF_INDEX_OUT_OF_RANGE"],
          batch: ["LOG_INCLUSION_FAILED", "LOG_INDEX_MISMATCH"],
          first: ["SEQ_MISMATCH"],
          size: ["BATCH_INCLUSION_FAILED", "LOG_INCLUSION_FAILED"],
          logIndex: ["LOG_INDEX_MISMATCH"],
          treeSize: ["TREE_SIZE_MISMATCH"],
        }[field]!,
        apply(b) {
          if (field === "seq") b.envelope.seq += delta;
          if (field === "studySeq") b.envelope.studySeq += delta;
          if (field === "leafIndex") b.batch.leafIndex += delta;
          if (field === "batch") b.batch.header.batch += delta;
          if (field === "first") b.batch.header.first += delta;
          if (field === "size") b.batch.header.size += delta;
          if (field === "logIndex") b.checkpoints[0].log.index += delta;
          if (field === "treeSize") b.checkpoints[0].log.treeSize += delta;
        },
      }),
    );
  const pathShape = fc
    .record({ which: fc.constantFrom("batch", "log"), op: fc.constantFrom("drop", "add", "reorder"), k: fc.nat() })
    .map(
      ({ which, op, k }): Mutation => ({
        name: `${op} ${which} path element ${k}`,
        codes: [which === "batch" ? "BATCH_INCLUSION_FAILED" : "LOG_INCLUSION_FAILED"],
        apply(b) {
          const path: string[] = which === "batch" ? b.batch.inclusion : b.checkpoints[0].log.inclusion;
          if (op === "drop" && path.length > 0) path.splice(k % path.length, 1);
          else if (op === "reorder" && path.length >= 2 && new Set(path).size > 1) {
            const i = k % path.length;
            const j = (i + 1) % path.length;
            if (path[i] === path[j]) path.push(path.shift()!);
            else [path[i], path[j]] = [path[j], path[i]];
          } else path.splice(k % (path.length + 1), 0, "ab".repeat(32));
        },
      }),
    );
  const origin = fc.constantFrom("envelope", "header", "note").map(
    (where): Mutation => ({
      name: `origin changed in ${where}`,
      codes: ["ORIGIN_MISMATCH"],
      apply(b) {
        if (where === "envelope") b.envelope.log = "elsewhere.example/log";
        if (where === "header") b.batch.header.log = "elsewhere.example/log";
        if (where === "note") {
          const note: string = b.checkpoints[0].note;
          b.checkpoints[0].note = `elsewhere.example/log${note.slice(note.indexOf("\n"))}`;
        }
      },
    }),
  );
  const payload = fc.record({ k: fc.nat(), i: fc.nat() }).map(
    ({ k, i }): Mutation => ({
      name: `payload swapped or salt edited (${k}, ${i})`,
      codes: ["PAYLOAD_HASH_MISMATCH", "PAYLOAD_SCHEMA"],
      apply(b) {
        const other = others[k % others.length];
        if (JSON.stringify(other.payload) !== JSON.stringify(b.payload)) b.payload = structuredClone(other.payload);
        else {
          const s: string = b.payload.salt;
          const at = i % s.length;
          b.payload.salt = s.slice(0, at) + (s[at] === "A" ? "B" : "A") + s.slice(at + 1);
        }
      },
    }),
  );
  const noteText = fc.record({ i: fc.nat(), ch: fc.constantFrom("0", "9", "A", "z", "+", "\n", " ") }).map(
    ({ i, ch }): Mutation => ({
      name: `checkpoint text char ${i} -> ${JSON.stringify(ch)}`,
      codes: [
        "CHECKPOINT_MALFORMED",
        "ORIGIN_MISMATCH",
        "TREE_SIZE_MISMATCH",
        "LOG_INCLUSION_FAILED",
        "SIGNATURE_INVALID",
      ],
      apply(b) {
        const note: string = b.checkpoints[0].note;
        const body = note.slice(0, note.indexOf("\n\n") + 1);
        let at = i % body.length;
        if (body[at] === ch) at = (at + 1) % body.length;
        if (body[at] === ch) {
          b.checkpoints[0].note = `x${note}`;
          return;
        }
        b.checkpoints[0].note = note.slice(0, at) + ch + note.slice(at + 1);
      },
    }),
  );
  const keys = fc
    .record({
      seed: fc.integer({ min: 3, max: 255 }),
      kind: fc.constantFrom("other-signer", "size-window", "time-window"),
    })
    .map(
      ({ seed, kind }): Mutation => ({
        name: `key: ${kind}`,
        codes: kind === "other-signer" ? ["SIGNATURE_INVALID"] : ["NO_VALID_KEY"],
        apply(b, p) {
          const origin = p.origin;
          if (kind === "other-signer") {
            const note: string = b.checkpoints[0].note;
            b.checkpoints[0].note = signNote(
              nodeCrypto,
              note.slice(0, note.indexOf("\n\n") + 1),
              origin,
              nodeSigner(new Uint8Array(32).fill(seed)),
            );
            return;
          }
          const size = Number(b.checkpoints[0].note.split("\n")[1]);
          if (kind === "size-window") return { ...p, logKeys: p.logKeys.map((k) => ({ ...k, untilSize: size })) };
          return { ...p, logKeys: p.logKeys.map((k) => ({ ...k, notBefore: "2100-01-01T00:00:00.000Z" })) };
        },
      }),
    );
  return fc.oneof(hexField, number, pathShape, origin, payload, noteText, keys);
}

/** Apply a mutation to a copy of `bundle` and return the first failed code (undefined if it still verifies). */
export async function firstFailure(bundle: Bundle, policy: TrustPolicy, m: Mutation) {
  const b = structuredClone(bundle) as any;
  const p = (m.apply(b, policy) as TrustPolicy | undefined) ?? policy;
  const r = await verifyBundle(nodeCrypto, b, p);
  return { verdict: r.verdict, code: r.steps.find((s) => s.status === "failed")?.code };
}
