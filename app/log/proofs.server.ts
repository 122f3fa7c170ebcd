/** Proof bundles, checkpoints and consistency proofs, built from what the database stores. */
import { and, eq } from "drizzle-orm";
import { bytesEqual, fromHex, toHex } from "../../anchoring/log/bytes.ts";
import { forms } from "../../db/schema/index.ts";
import type { Bundle, BundleCheckpoint } from "../../anchoring/verifier/bundle.ts";
import { MerkleLevels, inclusionProofFromStored } from "../../anchoring/log/tree.ts";
import { rootFromInclusionProof } from "../../anchoring/log/merkle.ts";
import type { Db } from "../../db/client.ts";
import * as q from "../../db/queries/log.ts";
import { siteOfEntry } from "../../db/queries/entry-site.ts";
import * as qa from "../../db/queries/anchors.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { readRing } from "../keys/key-ring.server.ts";
import { keyId } from "../../anchoring/log/checkpoint.ts";
import { can, type Principal } from "../platform/permissions.server.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Find an entry by id or (once sealed) by seq; anything else is simply not found. */
export async function findEntryByRef(ctx: AppContext, ref: string) {
  if (UUID.test(ref)) return q.findEntryById(ctx.db, ref);
  if (/^(0|[1-9][0-9]{0,15})$/.test(ref) && Number.isSafeInteger(Number(ref)))
    return q.findEntryBySeq(ctx.db, Number(ref));
  return null;
}

/**
 * May this principal read this entry's proof bundle? A bundle carries the entry's payload (record values, the
 * subject code, and in old entries reasons in clear), so an entry about one site (its participant, record, lock,
 * query or delegation: db/queries/entry-site.ts, ADR 0020) is readable only by that site's staff and by the
 * study-wide roles (monitor, data manager, regulator, admin); entries about no one site (study set-up, forms, a
 * study-wide lock) by anyone with proofs.read in the study.
 */
export async function entryVisibleTo(
  ctx: AppContext,
  principal: Principal,
  entry: { studyId: string | null; payloadText: string; kind?: string },
): Promise<boolean> {
  // Deployment-scope entries (audit-trail events of no study, ADR 0016): platform admins only.
  if (entry.studyId === null) return principal.platformAdmin;
  const studyId = entry.studyId;
  if (!can(principal, "proofs.read", { studyId })) return false;
  let payload: Record<string, unknown>;
  try {
    const parsed = JSON.parse(entry.payloadText) as unknown;
    payload = parsed && typeof parsed === "object" ? (parsed as Record<string, unknown>) : {};
  } catch {
    payload = {};
  }
  const site = await siteOfEntry(ctx.db, studyId, entry.kind, payload);
  if (site === undefined) return true;
  // Something named that has no row (should not happen) is treated as nobody's site: study-wide roles only.
  return can(principal, "proofs.read", { studyId, siteId: site ?? "00000000-0000-0000-0000-000000000000" });
}

/**
 * The batch log's tree, cached per database and extended with new batches as they are sealed. Before use it
 * is checked against the stored checkpoint root of its size; on any disagreement it is rebuilt from the table.
 */
const logTrees = new WeakMap<Db, MerkleLevels>();

async function logTree(ctx: AppContext, size: number, knownRoot?: Uint8Array): Promise<MerkleLevels> {
  let t = logTrees.get(ctx.db);
  if (!t) t = new MerkleLevels(ctx.crypto);
  if (t.size < size) {
    for (const leaf of await q.batchLeafHashesFrom(ctx.db, t.size, size)) t.append(leaf);
  }
  const root = knownRoot ?? (await q.findCheckpoint(ctx.db, size))?.root;
  if (root && !bytesEqual(t.root(size), root)) {
    t = MerkleLevels.fromLeaves(ctx.crypto, await q.batchLeafHashes(ctx.db, Math.max(size, t.size)));
    if (!bytesEqual(t.root(size), root)) throw new Error(`the stored batch log does not match checkpoint ${size}`);
  }
  if (t.size < size) throw new Error(`the batch log has ${t.size} batches, not ${size}`);
  logTrees.set(ctx.db, t);
  return t;
}

/**
 * The inclusion path of an entry in its batch. It reads only the O(log n) nodes it needs from the tree stored
 * beside the batch (no rehashing, no whole-tree load). The path is checked against the batch root before it
 * is served; when no tree is stored, or the check fails, it is rebuilt from the entries' leaf hashes.
 */
async function batchInclusion(
  ctx: AppContext,
  batch: q.BatchRow,
  leafIndex: number,
  leaf: Uint8Array,
): Promise<Uint8Array[]> {
  try {
    const path = await inclusionProofFromStored(ctx.crypto, batch.size, leafIndex, (offsets) =>
      q.batchTreeNodes(ctx.db, batch.batchNo, offsets),
    );
    if (bytesEqual(rootFromInclusionProof(ctx.crypto, leafIndex, batch.size, leaf, path), batch.root)) return path;
  } catch {
    // no stored tree (or a damaged one): rebuild below
  }
  const tree = MerkleLevels.fromLeaves(ctx.crypto, await q.entryLeafHashes(ctx.db, batch.firstSeq, batch.size));
  return tree.inclusionProof(leafIndex);
}

/** Is a stored checkpoint signed by a log key (of the key ring) whose size window covers it? */
function logKeyWindowCheck(ctx: AppContext): (c: { treeSize: number; keyId: string }) => boolean {
  const ring = readRing(ctx.env.dataDir, "log");
  const windows = ring.map((k) => ({
    id: toHex(keyId(ctx.crypto, ctx.env.logOrigin, fromHex(k.publicKey))),
    from: k.fromSize,
    until: k.untilSize,
  }));
  const current = toHex(keyId(ctx.crypto, ctx.env.logOrigin, ctx.signer.publicKey));
  return (c) => {
    const w = windows.filter((x) => x.id === c.keyId);
    // A checkpoint by a key outside the ring (a test's own signer) is judged by the ring only when it knows the key.
    if (!w.length) return c.keyId === current || !windows.some((x) => x.id === current);
    return w.some((x) => c.treeSize >= x.from && (x.until === null || c.treeSize < x.until));
  };
}

export type ProofResult = { status: "pending"; entryId: string } | { status: "sealed"; bundle: Bundle };

/** What every bundle of one batch shares: the batch, and its checkpoints (log paths and anchors), built once. */
async function batchProofContext(ctx: AppContext, batchNo: number) {
  const found = await q.findBatchWithCheckpoint(ctx.db, batchNo);
  if (!found) throw new Error(`sealed batch ${batchNo} is missing`);
  const { batch } = found;
  let cp = found.checkpoint;
  if (!cp) throw new Error(`checkpoint ${batch.batchNo + 1} is missing`);
  // Only checkpoints signed by a key whose window (key ring) covers their size: after a key is revoked from a
  // size on, what it signed there is left out, and the latest checkpoint (by the current key) proves instead.
  const signedInWindow = logKeyWindowCheck(ctx);
  if (!signedInWindow(cp)) {
    const latest = await q.latestCheckpoint(ctx.db);
    if (!latest || !signedInWindow(latest))
      throw new Error(`no checkpoint covering batch ${batch.batchNo} is signed by a key valid for its size`);
    cp = latest;
  }
  // Anchors: for each ledger, the first final anchor of a checkpoint covering this batch.
  const anchored = await qa.firstFinalAnchorsCovering(ctx.db, batch.batchNo);
  const candidateSizes = [...new Set(anchored.map((a) => a.treeSize))]
    .filter((n) => n !== cp.treeSize)
    .sort((a, b) => a - b);
  const found2 = await Promise.all(candidateSizes.map((n) => q.findCheckpoint(ctx.db, n)));
  const sizes = candidateSizes.filter((_, k) => found2[k] && signedInWindow(found2[k]!));
  const others = found2.filter((c) => c && signedInWindow(c));
  const log = await logTree(
    ctx,
    Math.max(cp.treeSize, ...sizes),
    others.length ? others[others.length - 1]!.root : cp.root,
  );
  const checkpointOf = (treeSize: number, note: string, root: Uint8Array): BundleCheckpoint => {
    if (!bytesEqual(log.root(treeSize), root)) throw new Error(`the batch log does not match checkpoint ${treeSize}`);
    return {
      note,
      log: { index: batch.batchNo, treeSize, inclusion: log.inclusionProof(batch.batchNo, treeSize).map(toHex) },
      anchors: anchored
        .filter((a) => a.treeSize === treeSize)
        .map((a) => ({ ledger: a.ledger, receipt: JSON.parse(a.receiptText) })),
    };
  };
  const checkpoints = [
    checkpointOf(cp.treeSize, cp.noteText, cp.root),
    ...others.map((c, k) => {
      if (!c) throw new Error(`checkpoint ${sizes[k]} of an anchor is missing`);
      return checkpointOf(c.treeSize, c.noteText, c.root);
    }),
  ];
  return { batch, header: JSON.parse(batch.headerText) as unknown, checkpoints };
}

/**
 * The form definition a record.saved entry (version 3 on) was entered on, as stored (`forms.definitionText`, the
 * text whose SHA-256 the payload seals as `formSha256`): the verifier recomputes the calculated fields from it
 * (ADR 0028). Undefined for other entries. `cache` shares the look-ups of one export.
 */
async function formOfEntry(
  ctx: AppContext,
  entry: q.EntryRow,
  cache = new Map<string, string | undefined>(),
): Promise<Bundle["form"]> {
  if (entry.kind !== "record.saved" || entry.studyId === null) return undefined;
  const p = JSON.parse(entry.payloadText) as { form?: unknown; formVersion?: unknown; formSha256?: unknown };
  if (typeof p.formSha256 !== "string" || typeof p.form !== "string" || typeof p.formVersion !== "number")
    return undefined;
  const key = `${entry.studyId} ${p.form} ${p.formVersion} ${p.formSha256}`;
  if (!cache.has(key)) {
    const [row] = await ctx.db
      .select({ text: forms.definitionText })
      .from(forms)
      .where(and(eq(forms.studyId, entry.studyId), eq(forms.code, p.form), eq(forms.version, p.formVersion)));
    // As stored, never "repaired": a definition altered behind the log no longer hashes to formSha256, and the
    // verifier says so (FORM_DEFINITION_MISMATCH) rather than quietly not checking.
    cache.set(key, row?.text);
  }
  const definition = cache.get(key);
  return definition === undefined ? undefined : { definition };
}

function bundleOf(
  entry: q.EntryRow,
  c: Awaited<ReturnType<typeof batchProofContext>>,
  inclusion: Uint8Array[],
  form?: Bundle["form"],
): Bundle {
  return {
    format: "trialseal-proof/v1",
    payload: JSON.parse(entry.payloadText),
    envelope: JSON.parse(entry.envelopeText!),
    batch: {
      header: c.header as Bundle["batch"]["header"],
      leafIndex: entry.seq! - c.batch.firstSeq,
      inclusion: inclusion.map(toHex),
    },
    checkpoints: structuredClone(c.checkpoints),
    ...(form ? { form } : {}),
  };
}

/** The proof bundle of a sealed entry: payload, envelope, batch inclusion, and the checkpoint sealed with it. */
export async function proofBundle(ctx: AppContext, entry: q.EntryRow): Promise<ProofResult> {
  if (entry.status !== "sealed" || entry.batchNo === null || entry.seq === null)
    return { status: "pending", entryId: entry.id };
  const c = await batchProofContext(ctx, entry.batchNo);
  const inclusion = await batchInclusion(ctx, c.batch, entry.seq - c.batch.firstSeq, entry.leafHash!);
  return { status: "sealed", bundle: bundleOf(entry, c, inclusion, await formOfEntry(ctx, entry)) };
}

/**
 * The bundles of every entry of one batch that `want` selects, sharing one read of the batch: its tree is
 * rebuilt once from the entries' leaf hashes and checked against the batch root (exports of whole studies).
 */
export async function proofBundlesOfBatch(
  ctx: AppContext,
  batchNo: number,
  want: (e: q.EntryRow) => boolean = () => true,
): Promise<Bundle[]> {
  const entries = await q.entriesOfBatch(ctx.db, batchNo);
  const chosen = entries.filter(want);
  if (!chosen.length) return [];
  const c = await batchProofContext(ctx, batchNo);
  const tree = MerkleLevels.fromLeaves(
    ctx.crypto,
    entries.map((e) => e.leafHash!),
  );
  if (tree.size !== c.batch.size || !bytesEqual(tree.root(), c.batch.root))
    throw new Error(`the entries of batch ${batchNo} do not hash to its root`);
  const cache = new Map<string, string | undefined>();
  const out: Bundle[] = [];
  for (const e of chosen)
    out.push(bundleOf(e, c, tree.inclusionProof(e.seq! - c.batch.firstSeq), await formOfEntry(ctx, e, cache)));
  return out;
}

/** The checkpoint of batch-log size `treeSize` with its final anchors (receipts only, no study data), or null. */
export async function checkpointAnchors(ctx: AppContext, treeSize: number) {
  const checkpoint = await q.findCheckpoint(ctx.db, treeSize);
  if (!checkpoint) return null;
  const anchors = (await qa.anchorsOf(ctx.db)).filter(
    (a) => a.treeSize === checkpoint.treeSize && a.status === "final" && a.receiptText,
  );
  return { checkpoint, anchors };
}

export function latestCheckpoint(ctx: AppContext) {
  return q.latestCheckpoint(ctx.db);
}

/** RFC 9162 consistency proof between batch-log sizes `from` and `to` (both at most the latest size). */
export async function consistencyBetween(ctx: AppContext, from: number, to: number) {
  const size = (await q.latestCheckpoint(ctx.db))?.treeSize ?? 0;
  if (!Number.isSafeInteger(from) || from < 1)
    throw new ServiceError("invalid", "from must be a whole number of at least 1", "from");
  if (!Number.isSafeInteger(to) || to < from)
    throw new ServiceError("invalid", "to must be a whole number not below from", "to");
  if (to > size) throw new ServiceError("invalid", `to (${to}) is beyond the log's size (${size})`, "to");
  const log = await logTree(ctx, to);
  return { from, to, proof: log.consistencyProof(from, to).map(toHex) };
}
