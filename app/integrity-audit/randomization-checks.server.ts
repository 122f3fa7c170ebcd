/**
 * The integrity audit of the randomization list, its commitment, allocations and emergency unblindings (ADR 0052,
 * ADR 0053). Linked tables: randomization_allocations and emergency_unblindings against their entries. Findings: every
 * list row against its sealed draft (design hash under the row's secret nonce, the strata recomputed from the seed or
 * the stored slots), its discard and its commitment, and every such entry against its row (a deleted draft named);
 * the committed list's strata against `randomization.committed`; each
 * stratum's slots recomputed (each stored leaf, then the root and size sealed at commitment: a slot whose arm, kit
 * type or salt changed afterwards is named with its stratum and seq); the `randomization.allocated` entries of each
 * stratum in log order taking seq 0..n-1 (a skipped or reused slot named), each with the leaf of its committed
 * slot, none before the commitment; each allocation row's subject, stratum, slot and leaf against its entry.
 * Arms are never named in a finding (the audit's report is read by blinded roles).
 */
import { sql } from "drizzle-orm";
import { fromHex, toBase64Url, toHex } from "../../anchoring/log/bytes.ts";
import { canonicalize } from "../../anchoring/log/canonical.ts";
import { leafHash, rootOf } from "../../anchoring/log/merkle.ts";
import { hashedTextMatches, saltedTextHash } from "../../anchoring/log/text-hash.ts";
import { generateList } from "../../anchoring/randomization/generate.ts";
import { designSchema, type Slot, slotLeafData } from "../../anchoring/randomization/slots.ts";
import type { AuditFinding } from "../../anchoring/verifier/log-auditor.ts";
import { studyEntriesOfKinds } from "../../db/queries/integrity-audit.ts";
import { rowsOf } from "../../db/queries/rows.ts";
import type { AppContext } from "../platform/context.server.ts";
import { hexOf, type LinkedTable, payloadOf, type Row, seqOf, tokenPairs } from "./linked-table.ts";

export function randomizationLinks(ctx: AppContext): LinkedTable[] {
  return [
    {
      // An allocation: the slot (seq) of its stratum and the randomization number; subject, stratum key and leaf are
      // compared through their joins in randomizationFindings.
      table: "randomization_allocations",
      column: "entry_id",
      kind: "randomization.allocated",
      compare: (r, p) => [
        ["allocation", r.id, p.allocation],
        ["list", r.list_id, p.list],
        ["seq", Number(r.seq), p.seq],
        ["number", r.number, p.number],
        ["actor", r.actor_user_id ?? null, p.actor],
        ...tokenPairs(r, p),
      ],
      label: (r) => `allocation ${r.number}`,
    },
    {
      // An emergency unblinding: the reason only as its salted hash, so it is compared, never shown.
      table: "emergency_unblindings",
      column: "entry_id",
      kind: "randomization.emergency_unblinded",
      compare: (r, p) => [
        ["unblinding", r.id, p.unblinding],
        ["allocation", r.allocation_id, p.allocation],
        ["reason", hashedTextMatches(ctx.crypto, p, "reason", String(r.reason)), true],
        ["actor", r.actor_user_id ?? null, p.actor],
      ],
      label: () => "emergency unblinding",
      namesOnly: true,
    },
  ];
}

interface Committed {
  listId: string;
  seq: number | undefined;
  strata: Map<string, { root: string; size: number; position: number }>;
}

/** The design's hash under a list row's secret nonce (ADR 0052). */
function rowDesignHash(ctx: AppContext, r: Row): string {
  return saltedTextHash(ctx.crypto, toBase64Url(fromHex(hexOf(r.design_nonce))), String(r.design_text));
}

/** A list row's strata {key, root, size} recomputed from its seed (generated) or its stored slots (uploaded). */
function rowStrata(ctx: AppContext, r: Row): { key: string; root: string; size: number }[] | null {
  try {
    const stratum = (key: string, slots: Slot[]) => ({
      key,
      root: toHex(
        rootOf(
          ctx.crypto,
          slots.map((x) => leafHash(ctx.crypto, slotLeafData(x))),
        ),
      ),
      size: slots.length,
    });
    if (r.source === "generated") {
      if (r.seed === null || r.seed === undefined) return null;
      const design = designSchema.parse(JSON.parse(String(r.design_text)));
      return generateList(design, fromHex(hexOf(r.seed))).map((s) => stratum(s.key, s.slots));
    }
    const stored = JSON.parse(String(r.slots_text)) as {
      key: string;
      slots: { seq: number; arm: string; kitType: string; salt: string }[];
    }[];
    return stored.map((s) =>
      stratum(
        s.key,
        s.slots.map((x) => ({ stratum: s.key, seq: x.seq, arm: x.arm, kitType: x.kitType, salt: x.salt })),
      ),
    );
  } catch {
    return null;
  }
}

/**
 * Every list row against its entries: the draft (`randomization.list_drafted`: source, the design's hash with the
 * row's nonce, the strata recomputed from the seed or the stored slots, the actor), its discard
 * (`randomization.list_discarded`) and its commitment (`randomization.committed`); and every such entry against a row
 * (a deleted draft, an undone discard, a commitment without its row are named).
 */
async function listFindings(
  ctx: AppContext,
  study: { id: string; code: string },
  push: (x: Omit<AuditFinding, "study" | "severity">) => void,
): Promise<{ committed: Committed | null; rows: number }> {
  let rows = 0;
  const lists = rowsOf<Row>(
    await ctx.db.execute(
      sql`SELECT l.*, d.kind AS d_kind, d.payload_text AS d_payload, d.seq AS d_seq,
                 x.kind AS x_kind, x.payload_text AS x_payload,
                 e.id AS e_id, e.kind AS e_kind, e.payload_text AS e_payload, e.seq AS e_seq
          FROM randomization_lists l
          LEFT JOIN ledger_entries d ON d.id = l.draft_entry_id
          LEFT JOIN ledger_entries x ON x.id = l.discard_entry_id
          LEFT JOIN ledger_entries e ON e.id = l.entry_id
          WHERE l.study_id = ${study.id} ORDER BY l.created_at, l.id`,
    ),
  );
  let committed: Committed | null = null;
  const json = (t: unknown) => payloadOf({ e_payload: t });
  for (const r of lists) {
    rows++;
    const id = String(r.id);
    const mismatch = (field: string, what: string, seq?: number) =>
      push({
        code: "DATA_ROW_MISMATCH",
        table: "randomization_lists",
        id,
        seq,
        field,
        message: `randomization_lists row ${id}: ${field} differs between the database and its ${what} entry`,
      });
    // The draft, sealed when the list was made.
    const d = json(r.d_payload);
    if (!d || r.d_kind !== "randomization.list_drafted")
      push({
        code: "DATA_ROW_UNLOGGED",
        table: "randomization_lists",
        id,
        message: `randomization_lists row ${id} has no randomization.list_drafted entry behind it`,
      });
    else {
      const dseq = r.d_seq === null || r.d_seq === undefined ? undefined : Number(r.d_seq);
      for (const [field, a, b] of [
        ["list", id, d.list],
        ["source", r.source, d.source],
        ["designHash", rowDesignHash(ctx, r), d.designHash],
        ["strata", rowStrata(ctx, r), d.strata],
        ["actor", r.actor_user_id ?? null, d.actor],
        ...tokenPairs(r, d),
      ] as const)
        if (canonicalize(a ?? null) !== canonicalize(b ?? null)) mismatch(field, "randomization.list_drafted", dseq);
    }
    // The discard, a sealed update.
    if (r.discarded_at !== null && r.discarded_at !== undefined) {
      const x = json(r.x_payload);
      if (!x || r.x_kind !== "randomization.list_discarded")
        push({
          code: "DATA_ROW_UNLOGGED",
          table: "randomization_lists",
          id,
          field: "discarded",
          message: `randomization_lists row ${id} is discarded but has no randomization.list_discarded entry`,
        });
      else
        for (const [field, a, b] of [
          ["list", id, x.list],
          ["discardedBy", r.discarded_by ?? null, x.actor],
        ] as const)
          if (canonicalize(a ?? null) !== canonicalize(b ?? null)) mismatch(field, "randomization.list_discarded");
    }
    if (r.committed_at === null || r.committed_at === undefined) continue;
    // The commitment.
    const p = payloadOf(r);
    if (!r.e_id || !p || r.e_kind !== "randomization.committed") {
      push({
        code: "DATA_ROW_UNLOGGED",
        table: "randomization_lists",
        id,
        message: `randomization_lists row ${id} is committed but has no randomization.committed entry behind it`,
      });
      continue;
    }
    for (const [field, a, b] of [
      ["list", id, p.list],
      ["source", r.source, p.source],
      ["designHash", rowDesignHash(ctx, r), p.designHash],
      ["actor", r.committed_by ?? null, p.actor],
    ] as const)
      if (canonicalize(a ?? null) !== canonicalize(b ?? null)) mismatch(field, "commitment", seqOf(r));
    const sealed = (p.strata as { key: string; root: string; size: number }[] | undefined) ?? [];
    committed = {
      listId: id,
      seq: seqOf(r),
      strata: new Map(sealed.map((s, i) => [s.key, { root: s.root, size: s.size, position: i + 1 }])),
    };
  }
  // Entries without their row: a draft deleted, a discard undone, a commitment whose row is gone or not committed.
  for (const e of rowsOf<{ id: string; seq: number | null; kind: string; payload_text: string }>(
    await ctx.db.execute(
      sql`SELECT e.id, e.seq, e.kind, e.payload_text FROM ledger_entries e WHERE e.study_id = ${study.id}
          AND e.kind IN ('randomization.list_drafted', 'randomization.list_discarded', 'randomization.committed')
          AND NOT EXISTS (SELECT 1 FROM randomization_lists l WHERE
            (e.kind = 'randomization.list_drafted' AND l.draft_entry_id = e.id)
            OR (e.kind = 'randomization.list_discarded' AND l.discard_entry_id = e.id AND l.discarded_at IS NOT NULL)
            OR (e.kind = 'randomization.committed' AND l.entry_id = e.id AND l.committed_at IS NOT NULL))
          ORDER BY e.seq NULLS LAST, e.id`,
    ),
  )) {
    const list = String(json(e.payload_text)?.list ?? "?");
    const where = e.seq === null ? `entry ${e.id}` : `seq ${e.seq}`;
    push({
      code: "DATA_ROW_MISSING",
      table: "randomization_lists",
      id: list,
      seq: e.seq === null ? undefined : Number(e.seq),
      message:
        e.kind === "randomization.list_drafted"
          ? `the randomization.list_drafted entry ${where} names list ${list}, which has no row (deleted?)`
          : e.kind === "randomization.list_discarded"
            ? `the randomization.list_discarded entry ${where} names list ${list}, ` +
              "which is not discarded in the database"
            : `the randomization.committed entry ${where} has no committed list row`,
    });
  }
  return { committed, rows };
}

export async function randomizationFindings(
  ctx: AppContext,
  study: { id: string; code: string },
  findings: AuditFinding[],
): Promise<{ rows: number }> {
  const push = (x: Omit<AuditFinding, "study" | "severity">) =>
    findings.push({ ...x, severity: "tamper", study: study.code });
  const { committed, rows: listRows } = await listFindings(ctx, study, push);
  let rows = listRows;

  // Strata rows against the commitment; each stratum's slots recomputed, leaf by leaf, then root and size.
  const strata = rowsOf<Row>(
    await ctx.db.execute(
      sql`SELECT s.*, (l.committed_at IS NOT NULL) AS committed FROM randomization_strata s
          JOIN randomization_lists l ON l.id = s.list_id WHERE s.study_id = ${study.id} ORDER BY s.position`,
    ),
  );
  /** Each committed stratum's recomputed leaves (hex) by seq, for the allocations below. */
  const leaves = new Map<string, Map<number, string>>();
  for (const s of strata) {
    rows++;
    const key = String(s.key);
    const sealed = committed && committed.listId === s.list_id ? committed.strata.get(key) : undefined;
    if (!sealed) {
      push({
        code: "DATA_ROW_UNLOGGED",
        table: "randomization_strata",
        id: String(s.id),
        message: `stratum ${key} is not in the sealed randomization commitment (inserted behind the portal's back?)`,
      });
      continue;
    }
    for (const [field, a, b] of [
      ["position", Number(s.position), sealed.position],
      ["size", Number(s.size), sealed.size],
      ["root", hexOf(s.root), sealed.root],
    ] as const)
      if (a !== b)
        push({
          code: "DATA_ROW_MISMATCH",
          table: "randomization_strata",
          id: String(s.id),
          field,
          message: `stratum ${key}: its ${field} differs between the database and the sealed commitment`,
        });
    const slots = rowsOf<Row>(
      await ctx.db.execute(
        sql`SELECT id, seq, arm, kit_type, salt, leaf FROM randomization_slots WHERE stratum_id = ${s.id} ORDER BY seq`,
      ),
    );
    rows += slots.length;
    const byLeaf = new Map<number, string>();
    const recomputed: Uint8Array[] = [];
    let inOrder = true;
    for (const [i, x] of slots.entries()) {
      const seq = Number(x.seq);
      if (seq !== i) inOrder = false;
      const leaf = leafHash(
        ctx.crypto,
        slotLeafData({ stratum: key, seq, arm: String(x.arm), kitType: String(x.kit_type), salt: String(x.salt) }),
      );
      recomputed.push(leaf);
      byLeaf.set(seq, toHex(leaf));
      if (toHex(leaf) !== hexOf(x.leaf))
        push({
          code: "SLOT_ALTERED",
          table: "randomization_slots",
          id: String(x.id),
          field: "leaf",
          message:
            `stratum ${key} slot seq ${seq}: its arm, kit type or salt no longer hashes to its stored leaf ` +
            "(changed after commitment)",
        });
    }
    leaves.set(key, byLeaf);
    if (!inOrder || slots.length !== sealed.size)
      push({
        code: "SLOT_ALTERED",
        table: "randomization_slots",
        message:
          `stratum ${key}: ${slots.length} slots in the database, numbered ${inOrder ? "0 on" : "with gaps"}, ` +
          `but ${sealed.size} were committed`,
      });
    else if (toHex(rootOf(ctx.crypto, recomputed)) !== sealed.root) {
      // Name the slots whose recomputed leaf is not the stored one if any; otherwise the stored leaves were rewritten.
      push({
        code: "SLOT_ALTERED",
        table: "randomization_slots",
        message:
          `stratum ${key}: its slots no longer hash to the root sealed at commitment ` +
          "(a slot's arm, kit type or salt changed after commitment)",
      });
    }
  }
  if (committed)
    for (const key of committed.strata.keys())
      if (!strata.some((s) => s.key === key && s.list_id === committed.listId))
        push({
          code: "DATA_ROW_MISSING",
          table: "randomization_strata",
          message: `stratum ${key} of the sealed commitment has no randomization_strata row (deleted?)`,
        });

  // The allocations in log order: per stratum seq 0..n-1, each with its committed slot's leaf, after the commitment.
  const next = new Map<string, number>();
  const taken = new Map<string, Map<number, number | undefined>>();
  let commitmentSeen = false;
  let after: { seq: number | null; at: Date; id: string } | null = null;
  for (;;) {
    const page = await studyEntriesOfKinds(
      ctx.db,
      study.id,
      ["randomization.committed", "randomization.allocated"],
      after,
      1000,
    );
    if (page.length === 0) break;
    for (const e of page) {
      let p: { stratum?: unknown; seq?: unknown; leaf?: unknown; number?: unknown; subject?: unknown };
      try {
        p = JSON.parse(e.payloadText);
      } catch {
        continue; // reported by the log audit
      }
      if (e.kind === "randomization.committed") {
        commitmentSeen = true;
        continue;
      }
      const key = String(p.stratum);
      const seq = Number(p.seq);
      const where = e.seq === null ? `entry ${e.id}` : `seq ${e.seq}`;
      if (!commitmentSeen)
        push({
          code: "ALLOCATION_BEFORE_COMMITMENT",
          seq: e.seq ?? undefined,
          message:
            `the randomization.allocated entry ${where} (stratum ${key} slot seq ${seq}) ` +
            "comes before the list's commitment",
        });
      const used = taken.get(key) ?? new Map<number, number | undefined>();
      taken.set(key, used);
      const expected = next.get(key) ?? 0;
      if (used.has(seq))
        push({
          code: "SLOT_REUSED",
          seq: e.seq ?? undefined,
          message:
            `stratum ${key} slot seq ${seq} is allocated twice: by the entry ${where} ` +
            `and before it by seq ${used.get(seq) ?? "(pending)"}`,
        });
      else if (seq > expected)
        push({
          code: "SLOT_SKIPPED",
          seq: e.seq ?? undefined,
          message:
            `stratum ${key}: slot seq ${expected}${seq - 1 > expected ? ` to ${seq - 1}` : ""} skipped: ` +
            `the entry ${where} takes seq ${seq} next`,
        });
      used.set(seq, e.seq ?? undefined);
      next.set(key, Math.max(expected, seq + 1));
      const leaf = leaves.get(key)?.get(seq);
      if (committed && leaf !== undefined && leaf !== p.leaf)
        push({
          code: "SLOT_ALTERED",
          seq: e.seq ?? undefined,
          message:
            `the allocation ${where} (stratum ${key} slot seq ${seq}) ` +
            "names a leaf that is not its committed slot's",
        });
    }
    const l = page[page.length - 1];
    after = { seq: l.seq, at: l.at, id: l.id };
  }

  // Each allocation row's subject, stratum, slot and leaf (through their joins) against its entry.
  const allocations = rowsOf<Row>(
    await ctx.db.execute(
      sql`SELECT a.id, a.seq, a.number, p.subject_code, s.key AS stratum_key, sl.seq AS slot_seq,
                 sl.stratum_id AS slot_stratum, a.stratum_id, sl.leaf, e.payload_text AS e_payload
          FROM randomization_allocations a
          JOIN participants p ON p.id = a.participant_id
          JOIN randomization_strata s ON s.id = a.stratum_id
          JOIN randomization_slots sl ON sl.id = a.slot_id
          JOIN ledger_entries e ON e.id = a.entry_id AND e.kind = 'randomization.allocated'
          WHERE a.study_id = ${study.id} ORDER BY a.id`,
    ),
  );
  for (const r of allocations) {
    const p = payloadOf(r);
    if (!p) continue;
    for (const [field, a, b] of [
      ["subject", r.subject_code, p.subject],
      ["stratum", r.stratum_key, p.stratum],
      ["slot", [r.slot_stratum, Number(r.slot_seq)], [r.stratum_id, Number(r.seq)]],
      ["leaf", hexOf(r.leaf), p.leaf],
    ] as const)
      if (canonicalize(a) !== canonicalize(b))
        push({
          code: "DATA_ROW_MISMATCH",
          table: "randomization_allocations",
          id: String(r.id),
          field,
          message:
            `randomization_allocations row ${r.id} (allocation ${r.number}): ` + `its ${field} differs from its entry`,
        });
  }
  // Each emergency unblinding names the subject of its allocation.
  for (const r of rowsOf<Row>(
    await ctx.db.execute(
      sql`SELECT u.id, p.subject_code, e.payload_text AS e_payload FROM emergency_unblindings u
          JOIN randomization_allocations a ON a.id = u.allocation_id
          JOIN participants p ON p.id = a.participant_id
          JOIN ledger_entries e ON e.id = u.entry_id AND e.kind = 'randomization.emergency_unblinded'
          WHERE u.study_id = ${study.id} ORDER BY u.id`,
    ),
  )) {
    const p = payloadOf(r);
    if (p && p.subject !== r.subject_code)
      push({
        code: "DATA_ROW_MISMATCH",
        table: "emergency_unblindings",
        id: String(r.id),
        field: "subject",
        message: `emergency_unblindings row ${r.id}: its subject differs from its entry`,
      });
  }
  return { rows };
}
