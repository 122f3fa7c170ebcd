/**
 * Randomization lists (issue 20, ADR 0052): a draft generated from a design and a 32-byte CSPRNG seed, or uploaded as
 * CSV by the unblinded statistician; previewed (only by them) and discarded, or committed once per study before any
 * allocation. The commitment writes the strata (position = order of strataOf) and their slots (leaf =
 * slotLeafHash), completes the list's row and seals `randomization.committed` (the design as its salted hash, per
 * stratum its key, root and size: nothing that unblinds) with an audit event, in one transaction.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { and, asc, desc, eq, isNull } from "drizzle-orm";
import { toBase64Url, toHex } from "../../anchoring/log/bytes.ts";
import { canonicalize } from "../../anchoring/log/canonical.ts";
import { leafHash, rootOf } from "../../anchoring/log/merkle.ts";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import { generateList } from "../../anchoring/randomization/generate.ts";
import { type Design, designSchema, type Slot, slotLeafData, strataOf } from "../../anchoring/randomization/slots.ts";
import {
  randomizationAllocations,
  randomizationLists,
  randomizationSlots,
  randomizationStrata,
  sites,
  users,
} from "../../db/schema/index.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { auditActor, auditDetail, payloadActor, rowTokenColumns } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import { isUniqueViolation, type Problem, ServiceError } from "../platform/errors.server.ts";
import { type Principal, requirePermission } from "../platform/permissions.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { committedList, designOf } from "./list-state.server.ts";
import { readUploadedList } from "./upload-csv.ts";

/** An uploaded CSV's size limit (a list of 2000 strata x 100 slots is about 10 MB; a real one is far smaller). */
export const MAX_UPLOAD_BYTES = 5 * 1024 * 1024;

const FIELD_WORDS: Record<string, string> = {
  arms: "arms",
  blockSizes: "block sizes",
  factors: "stratification factors",
  sites: "sites",
  slotsPerStratum: "slots per stratum",
  kitTypes: "kit types",
};

/** Check a design (zod at the edge) and that its sites are the study's; every problem named in words. */
async function checkDesign(ctx: AppContext, studyId: string, input: unknown): Promise<Design> {
  const r = designSchema.safeParse(input);
  const problems: Problem[] = [];
  if (!r.success) {
    for (const i of r.error.issues) {
      const top = String(i.path[0] ?? "design");
      const words = FIELD_WORDS[top] ?? top;
      // Name a factor or an arm by what the user typed, never by its index ("factor Sex", not "0").
      const item = (input as { factors?: { label?: unknown }[]; arms?: { code?: unknown }[] } | null)?.[
        top as "factors" | "arms"
      ]?.[Number(i.path[1])] as { label?: unknown; code?: unknown } | undefined;
      const named =
        typeof i.path[1] === "number" && item
          ? top === "factors"
            ? `factor ${String(item.label ?? Number(i.path[1]) + 1)}`
            : top === "arms"
              ? `arm ${String(item.code ?? Number(i.path[1]) + 1)}`
              : null
          : null;
      if (top === "factors" && i.path.length === 1 && i.code === "too_big") {
        // Name the factors over the limit by their labels, in words.
        const extra = ((input as { factors?: { label?: unknown }[] }).factors ?? []).slice(2);
        const labels = extra.map((f, k) => String(f?.label ?? `factor ${k + 3}`)).join(", ");
        problems.push({
          field: "design.factors",
          message: `stratification factors: at most two besides the site (remove ${labels})`,
        });
        continue;
      }
      const rest = i.path.slice(named ? 2 : 1).join(" ");
      const where = named ? ` (${named}${rest ? ` ${rest}` : ""})` : i.path.length > 1 ? ` (${rest})` : "";
      problems.push({ field: `design.${top}`, message: `${words}${where}: ${i.message}` });
    }
  } else {
    const known = new Set(
      (await ctx.db.select({ code: sites.code }).from(sites).where(eq(sites.studyId, studyId))).map((s) => s.code),
    );
    for (const s of r.data.sites)
      if (!known.has(s)) problems.push({ field: "design.sites", message: `sites: ${s} is not a site of this study` });
    const strata = strataOf(r.data).length;
    if (strata > 2000)
      problems.push({ field: "design.sites", message: `the design has ${strata} strata; at most 2000` });
    if (strata * r.data.slotsPerStratum > 2_000_000)
      problems.push({
        field: "design.slotsPerStratum",
        message: `slots per stratum: ${strata} strata x ${r.data.slotsPerStratum} slots is more than 2,000,000`,
      });
  }
  if (problems.length || !r.success)
    throw new ServiceError("invalid", problems[0].message, problems[0].field, problems);
  return r.data;
}

async function studyForManage(ctx: AppContext, principal: Principal, studyCode: string) {
  const study = await getStudyOrThrow(ctx, studyCode);
  requirePermission(principal, "randomization.manage", { studyId: study.id });
  return study;
}

/** Each stratum's slots with their leaves and root (the same for the draft's entry and the commitment). */
function buildStrata(ctx: AppContext, strata: ListSlots["strata"]) {
  return strata.map((s, i) => {
    const slots = s.slots.map((x) => {
      const slot: Slot = { stratum: s.key, seq: x.seq, arm: x.arm, kitType: x.kitType, salt: x.salt };
      return { slot, block: x.block, blockSize: x.blockSize, leaf: leafHash(ctx.crypto, slotLeafData(slot)) };
    });
    return {
      key: s.key,
      position: i + 1,
      slots,
      root: rootOf(
        ctx.crypto,
        slots.map((x) => x.leaf),
      ),
    };
  });
}

/** The design's hash under the list's secret nonce (ADR 0052): the payload's own salt is public. */
function designHashOf(ctx: AppContext, list: { designNonce: Uint8Array; designText: string }) {
  return saltedTextHash(ctx.crypto, toBase64Url(list.designNonce), list.designText);
}

async function insertDraft(
  ctx: AppContext,
  principal: Principal,
  study: { id: string; code: string },
  values: { source: "generated" | "uploaded"; design: Design; seed?: Uint8Array; uploadText?: string },
) {
  if (await committedList(ctx.db, study.id))
    throw new ServiceError("conflict", `${study.code} already has a committed randomization list`, "list");
  const listId = randomUUID();
  const designText = canonicalize(values.design);
  const designNonce = new Uint8Array(randomBytes(32));
  // An upload's slots get their salts from the server now, kept with the draft, so the sealed roots stay its own.
  let slotsText: string | null = null;
  if (values.uploadText !== undefined) {
    const read = readUploadedList(values.design, values.uploadText);
    if (!read.ok) throw new ServiceError("invalid", `list file: ${read.problems[0].message}`, "csv", read.problems);
    slotsText = canonicalize(
      read.strata.map((st) => ({
        key: st.key,
        slots: st.slots.map((x) => ({
          seq: x.seq,
          arm: x.arm,
          kitType: x.kitType,
          salt: toBase64Url(new Uint8Array(randomBytes(16))),
        })),
      })),
    );
  }
  const { strata } = slotsOfList({
    source: values.source,
    designText,
    seed: values.seed ?? null,
    slotsText,
  });
  const built = buildStrata(ctx, strata);
  return ctx.db.transaction(async (tx) => {
    const e = await appendEntry(tx, ctx.crypto, study, "randomization.list_drafted", () => ({
      list: listId,
      source: values.source,
      designHash: designHashOf(ctx, { designNonce, designText }),
      strata: built.map((s) => ({ key: s.key, root: toHex(s.root), size: s.slots.length })),
      ...payloadActor(principal),
    }));
    await tx.insert(randomizationLists).values({
      id: listId,
      studyId: study.id,
      source: values.source,
      designText,
      designNonce,
      seed: values.seed ?? null,
      uploadText: values.uploadText ?? null,
      uploadSha256: values.uploadText === undefined ? null : ctx.crypto.sha256(Buffer.from(values.uploadText)),
      slotsText,
      draftEntryId: e.id,
      actorUserId: principal.userId,
      ...rowTokenColumns(principal),
    });
    await audit(tx, {
      action: "randomization.list_drafted",
      ...auditActor(principal),
      studyId: study.id,
      detail: auditDetail(principal, { list: listId, source: values.source, entry: e.id }),
    });
    return { listId };
  });
}

/** A draft list generated from the design and a fresh 32-byte seed (crypto.randomBytes). */
export async function createGeneratedList(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  input: { design: unknown },
): Promise<{ listId: string }> {
  const study = await studyForManage(ctx, principal, studyCode);
  const design = await checkDesign(ctx, study.id, input.design);
  return insertDraft(ctx, principal, study, { source: "generated", design, seed: new Uint8Array(randomBytes(32)) });
}

/** A draft list uploaded as CSV against the design (every problem named with its line). */
export async function createUploadedList(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  input: { design: unknown; csvText: string },
): Promise<{ listId: string }> {
  const study = await studyForManage(ctx, principal, studyCode);
  const design = await checkDesign(ctx, study.id, input.design);
  const csvText = String(input.csvText ?? "");
  if (!csvText.trim()) throw new ServiceError("invalid", "list file: choose the CSV file of the list", "csv");
  if (Buffer.byteLength(csvText) > MAX_UPLOAD_BYTES)
    throw new ServiceError("invalid", `list file: the CSV is larger than ${MAX_UPLOAD_BYTES / 1024 / 1024} MB`, "csv");
  const read = readUploadedList(design, csvText);
  if (!read.ok)
    throw new ServiceError("invalid", `list file: ${read.problems[0].message}`, "csv", [
      ...read.problems.map((p) => ({ ...p, message: `list file: ${p.message}` })),
    ]);
  return insertDraft(ctx, principal, study, { source: "uploaded", design, uploadText: csvText });
}

type ListRow = Pick<typeof randomizationLists.$inferSelect, "source" | "designText" | "seed" | "slotsText">;
interface ListSlots {
  design: Design;
  strata: { key: string; slots: (Slot & { block: number | null; blockSize: number | null })[] }[];
}

/** A list's slots per stratum (strataOf order): generated from the seed, or the upload's with the server's salts. */
function slotsOfList(list: ListRow): ListSlots {
  const design = designOf(list.designText);
  if (list.source === "generated") {
    if (!list.seed) throw new ServiceError("conflict", "this generated list has no seed");
    return { design, strata: generateList(design, list.seed) };
  }
  const stored = JSON.parse(list.slotsText ?? "[]") as {
    key: string;
    slots: { seq: number; arm: string; kitType: string; salt: string }[];
  }[];
  return {
    design,
    strata: stored.map((s) => ({
      key: s.key,
      slots: s.slots.map((x) => ({ ...x, stratum: s.key, block: null, blockSize: null })),
    })),
  };
}

async function draftOf(ctx: AppContext, studyId: string, listId: string) {
  if (!/^[0-9a-f-]{36}$/i.test(listId)) throw new ServiceError("not_found", "no such draft list", "list");
  const [l] = await ctx.db
    .select()
    .from(randomizationLists)
    .where(and(eq(randomizationLists.id, listId), eq(randomizationLists.studyId, studyId)));
  if (!l) throw new ServiceError("not_found", "no such draft list", "list");
  return l;
}

export interface StratumPreview {
  key: string;
  size: number;
  /** Slots per arm code. */
  arms: Record<string, number>;
  /** Each block's size in order (a generated list), or null (an upload does not say). */
  blocks: number[] | null;
}

/** A draft's preview for the unblinded statistician: per stratum its size, slots per arm and its blocks. */
export async function previewList(ctx: AppContext, principal: Principal, studyCode: string, listId: string) {
  const study = await studyForManage(ctx, principal, studyCode);
  const list = await draftOf(ctx, study.id, listId);
  const { design, strata } = slotsOfList(list);
  const preview: StratumPreview[] = strata.map((s) => {
    const arms: Record<string, number> = Object.fromEntries(design.arms.map((a) => [a.code, 0]));
    const blocks: number[] = [];
    for (const x of s.slots) {
      arms[x.arm] = (arms[x.arm] ?? 0) + 1;
      if (x.block !== null && x.blockSize !== null && blocks.length === x.block) blocks.push(x.blockSize);
    }
    return { key: s.key, size: s.slots.length, arms, blocks: list.source === "generated" ? blocks : null };
  });
  return { listId: list.id, source: list.source, design, committedAt: list.committedAt, strata: preview };
}

/** Discard a draft (a committed list cannot be: the database refuses it too). */
export async function discardList(ctx: AppContext, principal: Principal, studyCode: string, listId: string) {
  const study = await studyForManage(ctx, principal, studyCode);
  const list = await draftOf(ctx, study.id, listId);
  if (list.committedAt) throw new ServiceError("conflict", "a committed list cannot be discarded", "list");
  if (list.discardedAt) throw new ServiceError("conflict", "this list is already discarded", "list");
  await ctx.db.transaction(async (tx) => {
    const e = await appendEntry(tx, ctx.crypto, study, "randomization.list_discarded", () => ({
      list: list.id,
      ...payloadActor(principal),
    }));
    const updated = await tx
      .update(randomizationLists)
      .set({ discardedAt: e.at, discardedBy: principal.userId, discardEntryId: e.id })
      .where(
        and(
          eq(randomizationLists.id, list.id),
          isNull(randomizationLists.committedAt),
          isNull(randomizationLists.discardedAt),
        ),
      )
      .returning({ id: randomizationLists.id });
    if (updated.length !== 1) throw new ServiceError("conflict", "this list was discarded or committed meanwhile");
    await audit(tx, {
      action: "randomization.list_discarded",
      ...auditActor(principal),
      studyId: study.id,
      detail: auditDetail(principal, { list: list.id, source: list.source, entry: e.id }),
    });
  });
}

/** Commit a draft: strata, slots, the list's row and its `randomization.committed` entry, in one transaction. */
export async function commitList(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  listId: string,
): Promise<{ entryId: string }> {
  const study = await studyForManage(ctx, principal, studyCode);
  const list = await draftOf(ctx, study.id, listId);
  if (list.committedAt) throw new ServiceError("conflict", "this list is already committed", "list");
  if (await committedList(ctx.db, study.id))
    throw new ServiceError("conflict", `${study.code} already has a committed randomization list`, "list");
  const { design, strata } = slotsOfList(list);
  const siteIds = new Map(
    (await ctx.db.select({ id: sites.id, code: sites.code }).from(sites).where(eq(sites.studyId, study.id))).map(
      (s) => [s.code, s.id],
    ),
  );
  if (list.discardedAt) throw new ServiceError("conflict", "this list was discarded", "list");
  const built = buildStrata(ctx, strata).map((s) => {
    const siteCode = design.sites.find((c) => s.key === `site=${c}` || s.key.startsWith(`site=${c};`));
    const siteId = siteCode ? siteIds.get(siteCode) : undefined;
    if (!siteId) throw new ServiceError("conflict", `stratum ${s.key}: its site is not a site of ${study.code}`);
    return { ...s, siteId };
  });
  try {
    return await ctx.db.transaction(async (tx) => {
      // No allocation can exist without a committed list; the unique index keeps it to one per study.
      const [anyAllocation] = await tx
        .select({ id: randomizationAllocations.id })
        .from(randomizationAllocations)
        .where(eq(randomizationAllocations.studyId, study.id))
        .limit(1);
      if (anyAllocation) throw new ServiceError("conflict", `${study.code} already has allocations`, "list");
      const e = await appendEntry(tx, ctx.crypto, study, "randomization.committed", () => ({
        list: list.id,
        source: list.source,
        designHash: designHashOf(ctx, list),
        strata: built.map((s) => ({ key: s.key, root: toHex(s.root), size: s.slots.length })),
        ...payloadActor(principal),
      }));
      const updated = await tx
        .update(randomizationLists)
        .set({ committedAt: e.at, committedBy: principal.userId, entryId: e.id })
        .where(
          and(
            eq(randomizationLists.id, list.id),
            isNull(randomizationLists.committedAt),
            isNull(randomizationLists.discardedAt),
          ),
        )
        .returning({ id: randomizationLists.id });
      if (updated.length !== 1) throw new ServiceError("conflict", "this list was discarded or committed meanwhile");
      for (const s of built) {
        const [st] = await tx
          .insert(randomizationStrata)
          .values({
            studyId: study.id,
            listId: list.id,
            key: s.key,
            position: s.position,
            siteId: s.siteId,
            size: s.slots.length,
            root: s.root,
          })
          .returning({ id: randomizationStrata.id });
        for (let i = 0; i < s.slots.length; i += 1000)
          await tx.insert(randomizationSlots).values(
            s.slots.slice(i, i + 1000).map((x) => ({
              studyId: study.id,
              stratumId: st.id,
              seq: x.slot.seq,
              arm: x.slot.arm,
              kitType: x.slot.kitType,
              salt: x.slot.salt,
              block: x.block,
              blockSize: x.blockSize,
              leaf: x.leaf,
            })),
          );
      }
      await audit(tx, {
        action: "randomization.committed",
        ...auditActor(principal),
        studyId: study.id,
        detail: auditDetail(principal, {
          list: list.id,
          source: list.source,
          strata: built.length,
          slots: built.reduce((a, s) => a + s.slots.length, 0),
          entry: e.id,
        }),
      });
      return { entryId: e.id };
    });
  } catch (err) {
    if (isUniqueViolation(err))
      throw new ServiceError("conflict", `${study.code} already has a committed randomization list`, "list");
    throw err;
  }
}

/** The drafts of a study, newest first (the statistician's page). */
export async function draftLists(ctx: AppContext, principal: Principal, studyCode: string) {
  const study = await studyForManage(ctx, principal, studyCode);
  const rows = await ctx.db
    .select({ l: randomizationLists, by: users.fullName })
    .from(randomizationLists)
    .leftJoin(users, eq(users.id, randomizationLists.actorUserId))
    .where(
      and(
        eq(randomizationLists.studyId, study.id),
        isNull(randomizationLists.committedAt),
        isNull(randomizationLists.discardedAt),
      ),
    )
    .orderBy(desc(randomizationLists.createdAt), asc(randomizationLists.id));
  return rows.map(({ l, by }) => ({
    id: l.id,
    source: l.source,
    createdAt: l.createdAt,
    by: by ?? "unknown user",
    design: designOf(l.designText),
  }));
}
