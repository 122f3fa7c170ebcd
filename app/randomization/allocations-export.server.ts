/**
 * The allocations file (issue 20, ADR 0054/0055): after the study is unblinded, the revealed randomization list with
 * every sealed entry that committed and used it, for `trialseal verify-allocations` and the browser verifier. The
 * deployment's trust policy travels as the exact text `trialseal trust-policy` prints (so its SHA-256 is the one a
 * user pins); the commitment's bundle with the design text and the seed; every stratum's slots in seq order; each
 * allocation's bundle with its slot's inclusion proof in the stratum's tree; the unblinding's and each emergency
 * unblinding's bundle. Pending entries are sealed first (as the evidence package does); an entry still not sealed
 * means "try again in a minute". Readable by study-wide roles with proofs.read (it names every site's subjects).
 */
import { and, asc, eq, inArray } from "drizzle-orm";
import { toBase64Url, toHex } from "../../anchoring/log/bytes.ts";
import {
  ALLOCATIONS_FORMAT,
  type AllocationsFile,
  AllocationsFileSchema,
} from "../../anchoring/randomization/allocations-file.ts";
import { slotTree } from "../../anchoring/randomization/commitment.ts";
import type { Slot } from "../../anchoring/randomization/slots.ts";
import type { Bundle } from "../../anchoring/verifier/bundle.ts";
import type { MerkleLevels } from "../../anchoring/log/tree.ts";
import { ledgerEntries, randomizationSlots, randomizationStrata } from "../../db/schema/index.ts";
import { deploymentTrustPolicy } from "../anchor-worker/anchor-worker.server.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { proofBundlesOfBatch } from "../log/proofs.server.ts";
import { sealAll } from "../log/sealer.server.ts";
import { auditActor, auditDetail } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { can, type Principal } from "../platform/permissions.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { exportParticipantsDetail, participantIdsOfSubjects } from "../data-sharing/export-access.server.ts";
import { committedList } from "./list-state.server.ts";
import { isStudyUnblinded } from "./unblinding-state.server.ts";

/** No site: `proofs.read` at it holds only for study-wide memberships (as entryVisibleTo judges such entries). */
const NO_SITE = "00000000-0000-0000-0000-000000000000";

/** The trust policy exactly as `trialseal trust-policy` prints it (its SHA-256 is what users pin). */
export function trustPolicyText(ctx: AppContext): string {
  return `${JSON.stringify(deploymentTrustPolicy(ctx), null, 2)}\n`;
}

/** May this principal download the allocations file (once the study is unblinded)? */
export function canExportAllocations(principal: Principal, studyId: string): boolean {
  return can(principal, "proofs.read", { studyId, siteId: NO_SITE });
}

const KINDS = [
  "randomization.committed",
  "randomization.allocated",
  "randomization.unblinded",
  "randomization.emergency_unblinded",
] as const;

export async function buildAllocationsFile(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
): Promise<AllocationsFile> {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!canExportAllocations(principal, study.id))
    throw new ServiceError(
      "forbidden",
      "only study-wide roles that read proofs (admin, monitor, data manager, regulator, statistician) can export it",
    );
  if (!(await isStudyUnblinded(ctx.db, study.id)))
    throw new ServiceError("conflict", `the study ${study.code} is not unblinded yet: the allocations stay hidden`);
  const list = await committedList(ctx.db, study.id);
  if (!list?.entryId) throw new ServiceError("conflict", `${study.code} has no committed randomization list`);
  await sealAll(ctx);

  const entries = await ctx.db
    .select({
      id: ledgerEntries.id,
      kind: ledgerEntries.kind,
      seq: ledgerEntries.seq,
      batchNo: ledgerEntries.batchNo,
      payloadText: ledgerEntries.payloadText,
    })
    .from(ledgerEntries)
    .where(and(eq(ledgerEntries.studyId, study.id), inArray(ledgerEntries.kind, [...KINDS])))
    .orderBy(asc(ledgerEntries.seq));
  if (entries.some((e) => e.seq === null || e.batchNo === null))
    throw new ServiceError("conflict", "some randomization entries are not yet sealed: try again in a minute");
  // Only the committed list's entries (a study has one committed list; a draft has no entries).
  const ofList = entries.filter((e) => {
    const p = JSON.parse(e.payloadText) as { list?: string };
    return e.kind === "randomization.emergency_unblinded" || p.list === list.id;
  });
  const bundles = new Map<string, Bundle>();
  const wanted = new Set(ofList.map((e) => e.id));
  for (const b of [...new Set(ofList.map((e) => e.batchNo!))].sort((x, y) => x - y))
    for (const bundle of await proofBundlesOfBatch(ctx, b, (e) => wanted.has(e.id)))
      bundles.set(String(bundle.envelope.seq), bundle);
  const bundleOf = (e: (typeof ofList)[number]) => {
    const b = bundles.get(String(e.seq));
    if (!b) throw new ServiceError("conflict", `entry seq ${e.seq} has no proof yet: try again in a minute`);
    return b;
  };

  // The revealed list: every stratum's slots in seq order, and each stratum's slot tree for the inclusion proofs.
  const strata = await ctx.db
    .select({ id: randomizationStrata.id, key: randomizationStrata.key, position: randomizationStrata.position })
    .from(randomizationStrata)
    .where(eq(randomizationStrata.listId, list.id))
    .orderBy(asc(randomizationStrata.position));
  const trees = new Map<string, MerkleLevels>();
  const revealed: AllocationsFile["strata"] = [];
  for (const s of strata) {
    const rows = await ctx.db
      .select({
        seq: randomizationSlots.seq,
        arm: randomizationSlots.arm,
        kitType: randomizationSlots.kitType,
        salt: randomizationSlots.salt,
      })
      .from(randomizationSlots)
      .where(eq(randomizationSlots.stratumId, s.id))
      .orderBy(asc(randomizationSlots.seq));
    const slots: Slot[] = rows.map((r) => ({ stratum: s.key, ...r }));
    trees.set(s.key, slotTree(ctx.crypto, slots));
    revealed.push({ key: s.key, position: s.position, slots: rows });
  }

  const commitment = ofList.find((e) => e.kind === "randomization.committed" && e.id === list.entryId);
  const unblinding = ofList.find((e) => e.kind === "randomization.unblinded");
  if (!commitment || !unblinding)
    throw new ServiceError("conflict", "the commitment or the unblinding entry is missing: run the integrity audit");
  const allocations = ofList
    .filter((e) => e.kind === "randomization.allocated")
    .map((e) => {
      const p = JSON.parse(e.payloadText) as { stratum: string; seq: number };
      const tree = trees.get(p.stratum);
      // A slot outside its stratum's tree has no proof: the verifier names the allocation (an empty proof fails).
      const inclusion = tree && p.seq < tree.size ? tree.inclusionProof(p.seq).map(toHex) : [];
      return { bundle: bundleOf(e), inclusion };
    });
  const file: AllocationsFile = {
    format: ALLOCATIONS_FORMAT,
    study: study.code,
    exportedAt: new Date().toISOString(),
    trustPolicyText: trustPolicyText(ctx),
    commitment: {
      bundle: bundleOf(commitment),
      designText: list.designText,
      designNonce: toBase64Url(list.designNonce),
      seed: list.seed ? toHex(list.seed) : null,
    },
    strata: revealed,
    allocations,
    unblinding: { bundle: bundleOf(unblinding) },
    emergencyUnblindings: ofList
      .filter((e) => e.kind === "randomization.emergency_unblinded")
      .map((e) => ({ bundle: bundleOf(e) })),
  };
  await audit(ctx.db, {
    action: "export.allocations",
    ...auditActor(principal),
    studyId: study.id,
    detail: auditDetail(principal, {
      allocations: allocations.length,
      // The participants of the allocation entries the file was built from (their sealed subject codes).
      ...exportParticipantsDetail(
        await participantIdsOfSubjects(
          ctx,
          study.id,
          ofList
            .filter((e) => e.kind === "randomization.allocated")
            .map((e) => (JSON.parse(e.payloadText) as { subject?: string }).subject),
        ),
      ),
    }),
  });
  return AllocationsFileSchema.parse(file);
}

/** The file as written (`trialseal export --format allocations` and the lock page's download). */
export async function allocationsExport(ctx: AppContext, principal: Principal, studyCode: string) {
  const file = await buildAllocationsFile(ctx, principal, studyCode);
  return {
    name: `${file.study}-allocations.json`,
    contentType: "application/json",
    data: new TextEncoder().encode(`${JSON.stringify(file, null, 2)}\n`),
  };
}
