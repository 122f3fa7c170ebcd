/** Proof bundles, checkpoints and consistency proofs, built from what the database stores. */
import { statSync } from "node:fs";
import { and, eq, sql } from "drizzle-orm";
import { bytesEqual, fromHex, toHex, utf8 } from "../../anchoring/log/bytes.ts";
import { forms, participants } from "../../db/schema/index.ts";
import { auditPrincipalRead } from "../audit-trail/record-event.server.ts";
import type { Bundle, BundleCheckpoint } from "../../anchoring/verifier/bundle.ts";
import { MerkleLevels } from "../../anchoring/log/tree.ts";
import { leafHash, rootFromInclusionProof } from "../../anchoring/log/merkle.ts";
import type { Db } from "../../db/client.ts";
import * as q from "../../db/queries/log.ts";
import { siteOfEntry } from "../../db/queries/entry-site.ts";
import * as qa from "../../db/queries/anchors.ts";
import { rowsOf } from "../../db/queries/rows.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { readRing, ringFile } from "../keys/key-ring.server.ts";
import { keyId, parseCheckpoint, parseNote } from "../../anchoring/log/checkpoint.ts";
import { sealedRead } from "../platform/sealed-reads.server.ts";
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
 * A proof bundle carries its entry's payload: when the entry is about a participant (its payload names a subject:
 * record.saved, consent and the like), serving it to a reader is a read of that participant's data (ADR 0067),
 * recorded as `proof.view`, coalesced per reader, participant and hour. Returns whether an event was written.
 */
export async function auditProofRead(
  ctx: AppContext,
  principal: Principal,
  entry: { studyId: string | null; payloadText: string },
): Promise<boolean> {
  if (!entry.studyId) return false;
  let subject: unknown;
  try {
    subject = (JSON.parse(entry.payloadText) as { subject?: unknown } | null)?.subject;
  } catch {
    return false;
  }
  if (typeof subject !== "string" || subject === "") return false;
  const [p] = await ctx.db
    .select({ id: participants.id, siteId: participants.siteId })
    .from(participants)
    .where(and(eq(participants.studyId, entry.studyId), eq(participants.subjectCode, subject)));
  if (!p) return false;
  return auditPrincipalRead(ctx.db, principal, {
    action: "proof.view",
    studyId: entry.studyId,
    siteId: p.siteId,
    participantId: p.id,
  });
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

/** The key ring's windows as of its file's stamp (read again only when the file changes: a rotation or revocation). */
let ringWindows: { stamp: string; check: (c: { treeSize: number; keyId: string }) => boolean } | null = null;

function ringStamp(ctx: AppContext): string {
  const file = ringFile(ctx.env.dataDir, "log");
  let st: string;
  try {
    const s = statSync(file);
    st = `${s.mtimeMs}:${s.size}:${s.ino}`;
  } catch {
    st = "legacy";
  }
  return `${file}|${st}|${toHex(ctx.signer.publicKey)}|${ctx.env.logOrigin}`;
}

/** Is a stored checkpoint signed by a log key (of the key ring) whose size window covers it? */
function logKeyWindowCheck(ctx: AppContext): (c: { treeSize: number; keyId: string }) => boolean {
  const stamp = ringStamp(ctx);
  if (ringWindows?.stamp === stamp) return ringWindows.check;
  const ring = readRing(ctx.env.dataDir, "log");
  const windows = ring.map((k) => ({
    id: toHex(keyId(ctx.crypto, ctx.env.logOrigin, fromHex(k.publicKey))),
    from: k.fromSize,
    until: k.untilSize,
  }));
  const current = toHex(keyId(ctx.crypto, ctx.env.logOrigin, ctx.signer.publicKey));
  const check = (c: { treeSize: number; keyId: string }) => {
    const w = windows.filter((x) => x.id === c.keyId);
    // A checkpoint by a key outside the ring (a test's own signer) is judged by the ring only when it knows the key.
    if (!w.length) return c.keyId === current || !windows.some((x) => x.id === current);
    return w.some((x) => c.treeSize >= x.from && (x.until === null || c.treeSize < x.until));
  };
  ringWindows = { stamp, check };
  return check;
}

export type ProofResult = { status: "pending"; entryId: string } | { status: "sealed"; bundle: Bundle };

/**
 * What the cache checks a batch context against on every use, read in one round trip: the database's roots of the
 * checkpoints the context carries, the number of final anchors (anchors only ever become final, so any new one
 * changes it) and the latest checkpoint's size.
 */
interface Stamp {
  finals: number;
  latest: number;
  roots: Map<number, Uint8Array>;
}

async function readStamp(db: Db, sizes: number[]): Promise<Stamp> {
  const list = sizes.filter((n) => Number.isSafeInteger(n) && n > 0);
  const on = list.length
    ? sql`c.tree_size IN (${sql.join(
        list.map((n) => sql`${n}`),
        sql`, `,
      )})`
    : sql`false`;
  // One row per checkpoint asked for (one row of nulls when none is found), each with the two counts.
  const rows = rowsOf<{ n: string | null; root: Uint8Array | null; finals: string; latest: string }>(
    await db.execute(sql`SELECT c.tree_size::text AS n, c.root AS root,
        (SELECT count(*) FROM anchors WHERE status = 'final')::text AS finals,
        (SELECT max(tree_size) FROM checkpoints)::text AS latest
      FROM (SELECT 1) one LEFT JOIN checkpoints c ON ${on}`),
  );
  const roots = new Map<number, Uint8Array>();
  for (const r of rows) if (r.n !== null && r.root) roots.set(Number(r.n), new Uint8Array(r.root));
  return { finals: Number(rows[0]?.finals ?? 0), latest: Number(rows[0]?.latest ?? 0), roots };
}

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
  let usedLatest = false;
  if (!signedInWindow(cp)) {
    const latest = await q.latestCheckpoint(ctx.db);
    if (!latest || !signedInWindow(latest))
      throw new Error(`no checkpoint covering batch ${batch.batchNo} is signed by a key valid for its size`);
    cp = latest;
    usedLatest = true;
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
  return { batch, header: JSON.parse(batch.headerText) as unknown, checkpoints, usedLatest };
}

type BatchContext = Awaited<ReturnType<typeof batchProofContext>>;

// ---- the proof cache (ADR 0047) ----

/** Bounds of the in-process cache of batch contexts: entries, and bytes (mostly the batches' trees). */
export const PROOF_CACHE_MAX_BATCHES = 256;
export const PROOF_CACHE_MAX_BYTES = 96 * 1024 * 1024;

interface CachedBatch extends BatchContext {
  /** The batch's whole tree (as stored beside it), so that any entry's path is served without a read. */
  tree: MerkleLevels;
  /** The stamp read just before the context was built (see Stamp). */
  finals: number;
  latest: number;
  ring: string;
  bytes: number;
}

const cache = new Map<string, CachedBatch>();
let cacheBytes = 0;
const dbIds = new WeakMap<Db, number>();
let nextDbId = 1;
const stats = { hits: 0, misses: 0, stale: 0, rejected: 0 };

function cacheKey(db: Db, batchNo: number): string {
  let id = dbIds.get(db);
  if (id === undefined) {
    id = nextDbId++;
    dbIds.set(db, id);
  }
  return `${id}:${batchNo}`;
}

function cacheDrop(key: string): void {
  const e = cache.get(key);
  if (!e) return;
  cache.delete(key);
  cacheBytes -= e.bytes;
}

function cachePut(key: string, e: CachedBatch): void {
  cacheDrop(key);
  if (e.bytes > PROOF_CACHE_MAX_BYTES) return;
  cache.set(key, e);
  cacheBytes += e.bytes;
  for (const [k] of cache) {
    if (cache.size <= PROOF_CACHE_MAX_BATCHES && cacheBytes <= PROOF_CACHE_MAX_BYTES) break;
    cacheDrop(k);
  }
}

/** Counters and size of the proof cache (tests, bench). */
export function proofCacheStats() {
  return { ...stats, batches: cache.size, bytes: cacheBytes };
}

/** Empty the proof cache (tests, bench: an uncached proof to compare with). */
export function clearProofCache(): void {
  cache.clear();
  cacheBytes = 0;
  ringWindows = null;
}

/** The cached context of a batch, if any: tests reach in to damage it and check it is not served. */
export function cachedBatchForTests(ctx: AppContext, batchNo: number) {
  return cache.get(cacheKey(ctx.db, batchNo));
}

/**
 * The batch's tree as stored beside it (a damaged one shows when a path from it misses the batch root, checked on
 * every use), or with `fromLeaves` rebuilt from the entries' leaf hashes and checked against the batch root.
 */
async function batchTree(ctx: AppContext, batch: q.BatchRow, fromLeaves = false): Promise<MerkleLevels> {
  const stored = fromLeaves ? null : (await q.findBatch(ctx.db, batch.batchNo))?.tree;
  if (stored) {
    try {
      const t = MerkleLevels.deserialize(ctx.crypto, new Uint8Array(stored), batch.size);
      if (bytesEqual(t.root(), batch.root)) return t;
    } catch {
      // a stored tree of the wrong length: rebuild below
    }
  }
  const t = MerkleLevels.fromLeaves(ctx.crypto, await q.entryLeafHashes(ctx.db, batch.firstSeq, batch.size));
  if (t.size !== batch.size || !bytesEqual(t.root(), batch.root))
    throw new Error(`the entries of batch ${batch.batchNo} do not hash to its root`);
  return t;
}

/**
 * The inclusion path of entry `leafIndex` from a cached context, served only when the whole chain holds against
 * the database: the entry's leaf (as read now) leads through the cached tree to the batch root; the batch header
 * (its text, re-hashed) names that root, first seq and size; and each cached checkpoint's log path leads from the
 * header's leaf to the root the database has now for that checkpoint, which its note also names. Null otherwise.
 */
function checkedFromCache(
  ctx: AppContext,
  e: CachedBatch,
  stamp: Stamp,
  leafIndex: number,
  leaf: Uint8Array,
): { inclusion: Uint8Array[]; header: unknown } | null {
  try {
    const { batch } = e;
    if (e.tree.size !== batch.size || leafIndex < 0 || leafIndex >= batch.size) return null;
    const inclusion = e.tree.inclusionProof(leafIndex);
    if (!bytesEqual(rootFromInclusionProof(ctx.crypto, leafIndex, batch.size, leaf, inclusion), batch.root))
      return null;
    const header = JSON.parse(batch.headerText) as { root?: unknown; first?: unknown; size?: unknown; batch?: unknown };
    if (header.root !== toHex(batch.root) || header.first !== batch.firstSeq || header.size !== batch.size) return null;
    if (header.batch !== batch.batchNo) return null;
    const hl = leafHash(ctx.crypto, utf8(batch.headerText));
    for (const cp of e.checkpoints) {
      const root = stamp.roots.get(cp.log.treeSize);
      if (!root || cp.log.index !== batch.batchNo) return null;
      if (!bytesEqual(parseCheckpoint(parseNote(cp.note).text).root, root)) return null;
      const path = cp.log.inclusion.map(fromHex);
      if (!bytesEqual(rootFromInclusionProof(ctx.crypto, batch.batchNo, cp.log.treeSize, hl, path), root)) return null;
    }
    return { inclusion, header };
  } catch {
    return null;
  }
}

async function sealedProof(ctx: AppContext, entry: q.EntryRow & { seq: number; batchNo: number }): Promise<Bundle> {
  const key = cacheKey(ctx.db, entry.batchNo);
  const hit = cache.get(key);
  const ring = ringStamp(ctx);
  if (hit) {
    const stamp = await readStamp(
      ctx.db,
      hit.checkpoints.map((c) => c.log.treeSize),
    );
    const fresh = stamp.finals === hit.finals && hit.ring === ring && (!hit.usedLatest || stamp.latest === hit.latest);
    if (fresh) {
      const got = checkedFromCache(ctx, hit, stamp, entry.seq - hit.batch.firstSeq, entry.leafHash!);
      if (got) {
        stats.hits++;
        cache.delete(key);
        cache.set(key, hit); // most recently used
        return bundleOf(entry, { ...hit, header: got.header }, got.inclusion, await formOfEntry(ctx, entry));
      }
      stats.rejected++;
    } else stats.stale++;
    cacheDrop(key);
  }
  stats.misses++;
  // The stamp first: an anchor that becomes final while the context is read makes the next use rebuild it.
  const before = await readStamp(ctx.db, []);
  const c = await batchProofContext(ctx, entry.batchNo);
  const leafIndex = entry.seq - c.batch.firstSeq;
  const pathOf = (t: MerkleLevels) => {
    const p = t.inclusionProof(leafIndex);
    const root = rootFromInclusionProof(ctx.crypto, leafIndex, c.batch.size, entry.leafHash!, p);
    return bytesEqual(root, c.batch.root) ? p : null;
  };
  let tree = await batchTree(ctx, c.batch);
  let inclusion = pathOf(tree);
  if (!inclusion) {
    tree = await batchTree(ctx, c.batch, true);
    inclusion = pathOf(tree);
  }
  if (!inclusion) throw new Error(`entry ${entry.seq} is not in batch ${entry.batchNo} as sealed`);
  const bytes = tree.byteLength + 2 * (c.batch.headerText.length + JSON.stringify(c.checkpoints).length) + 1024;
  cachePut(key, { ...c, tree, finals: before.finals, latest: before.latest, ring, bytes });
  return bundleOf(entry, c, inclusion, await formOfEntry(ctx, entry));
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
  c: { batch: q.BatchRow; header: unknown; checkpoints: BundleCheckpoint[] },
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

/**
 * The proof bundle of a sealed entry: payload, envelope, batch inclusion, and the checkpoint sealed with it. Read
 * through `sealedRead` (a replica that has sealed the entry may serve it) and the proof cache (ADR 0047): from a
 * cached batch it costs one round trip, which checks the cache against the database's checkpoint roots and anchors.
 */
export async function proofBundle(ctx: AppContext, entry: q.EntryRow): Promise<ProofResult> {
  if (entry.status !== "sealed" || entry.batchNo === null || entry.seq === null || entry.leafHash === null)
    return { status: "pending", entryId: entry.id };
  const sealed = { ...entry, seq: entry.seq, batchNo: entry.batchNo };
  const bundle = await sealedRead(ctx, (db) => sealedProof({ ...ctx, db }, sealed), { minSealedSeq: entry.seq });
  return { status: "sealed", bundle };
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
  // Sealed rows only: a replica that has the checkpoint of this batch may serve them (ADR 0044).
  return sealedRead(ctx, (db) => bundlesOfBatch({ ...ctx, db }, batchNo, want), { minTreeSize: batchNo + 1 });
}

async function bundlesOfBatch(ctx: AppContext, batchNo: number, want: (e: q.EntryRow) => boolean): Promise<Bundle[]> {
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
  const log = await sealedRead(ctx, (db) => logTree({ ...ctx, db }, to), { minTreeSize: to });
  return { from, to, proof: log.consistencyProof(from, to).map(toHex) };
}
