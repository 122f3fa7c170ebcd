import { sql } from "drizzle-orm";
import { bigint, check, index, integer, pgTable, text, timestamp, unique, uuid } from "drizzle-orm/pg-core";
import { studies } from "./organizations.ts";
import { bytea } from "./types.ts";

/**
 * The ledger: one row per write. Written `pending` in the same transaction as the data it records; the
 * sealer assigns seq/studySeq/envelope/leaf/batch in the one allowed transition pending -> sealed.
 * Database triggers (migration 0001, rewritten by 0023) reject every other UPDATE, every DELETE and TRUNCATE.
 *
 * Partitioned by seq range (migration 0023, ADR 0045): pending rows (seq null) live in the default partition
 * `ledger_entries_pending`, sealed rows in `ledger_entries_s<N>` (seqs [N*10M, (N+1)*10M)), which
 * `trialseal_ledger_partitions_ahead()` creates one range ahead of the log. A unique constraint must include the
 * partition key, so `id` has no primary key: each partition has a unique index on id, the insert guard refuses an id
 * already used, and the tables that name an entry hold its id without a foreign key (the integrity audit names a
 * row whose entry is missing). Nothing of this is visible to drizzle, which sees one table.
 */
export const ledgerEntries = pgTable(
  "ledger_entries",
  {
    id: uuid("id").notNull().defaultRandom(),
    /**
     * Null for the deployment scope (ADR 0016): audit-trail events of no study (sign-ins, password resets), whose
     * envelopes name the study `DEPLOYMENT_SCOPE`.
     */
    studyId: uuid("study_id").references(() => studies.id),
    studyCode: text("study_code").notNull(),
    kind: text("kind").notNull(),
    payloadText: text("payload_text").notNull(),
    payloadHash: bytea("payload_hash").notNull(),
    at: timestamp("at", { withTimezone: true, precision: 3 }).notNull(),
    status: text("status", { enum: ["pending", "sealed"] })
      .notNull()
      .default("pending"),
    seq: bigint("seq", { mode: "number" }).unique("ledger_entries_seq_uq"),
    studySeq: bigint("study_seq", { mode: "number" }),
    envelopeText: text("envelope_text"),
    leafHash: bytea("leaf_hash"),
    batchNo: bigint("batch_no", { mode: "number" }),
  },
  (t) => [
    // Unique per study in the log: the sealer assigns it under its lock and the audit checks it gapless (ADR 0045).
    index("ledger_entries_study_seq_idx").on(t.studyId, t.studySeq),
    index("ledger_entries_status_idx").on(t.status),
    index("ledger_entries_batch_idx").on(t.batchNo),
    // How the entry sealing the pre-0016 audit-trail events is found (ADR 0016); the insert guard allows one.
    index("ledger_entries_legacy_sealed_idx").on(t.kind).where(sql`kind = 'audit.legacy_sealed'`),
    check("ledger_entries_sealed_ck", sql`(status = 'pending') = (seq IS NULL)`),
  ],
);

/** A sealed batch: consecutive seqs [firstSeq, firstSeq+size). `headerText` is the exact JCS header. */
export const batches = pgTable("batches", {
  batchNo: bigint("batch_no", { mode: "number" }).primaryKey(),
  firstSeq: bigint("first_seq", { mode: "number" }).notNull(),
  size: integer("size").notNull(),
  root: bytea("root").notNull(),
  headerText: text("header_text").notNull(),
  leafHash: bytea("leaf_hash").notNull(),
  sealedAt: timestamp("sealed_at", { withTimezone: true, precision: 3 }).notNull(),
  /**
   * The batch's Merkle tree, all levels (anchoring/log/tree.ts MerkleLevels.serialize), so proofs need no
   * rehashing.
   */
  tree: bytea("tree"),
});

/** Signed checkpoints of the batch log (C2SP tlog-checkpoint in a C2SP signed note). */
export const checkpoints = pgTable("checkpoints", {
  treeSize: bigint("tree_size", { mode: "number" }).primaryKey(),
  root: bytea("root").notNull(),
  noteText: text("note_text").notNull(),
  checkpointHash: bytea("checkpoint_hash").notNull().unique(),
  keyId: text("key_id").notNull(),
  createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull(),
});

/** Anchors of checkpoints on external ledgers. Status moves pending -> included -> final (or failed). */
export const anchors = pgTable(
  "anchors",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    ledger: text("ledger").notNull(),
    treeSize: bigint("tree_size", { mode: "number" })
      .notNull()
      .references(() => checkpoints.treeSize),
    checkpointHash: bytea("checkpoint_hash").notNull(),
    status: text("status", { enum: ["pending", "included", "final", "failed"] })
      .notNull()
      .default("pending"),
    receiptText: text("receipt_text"),
    attempts: integer("attempts").notNull().default(0),
    nextAttemptAt: timestamp("next_attempt_at", { withTimezone: true, precision: 3 }),
    lastError: text("last_error"),
    /** Adapter in-flight state saved before an irreversible step (e.g. a signed EVM transaction), JSON. */
    workText: text("work_text"),
    /** A worker holds the row until then (several portal replicas may run the anchor worker). */
    leaseUntil: timestamp("lease_until", { withTimezone: true, precision: 3 }),
    /** When the receipt reached its ledger's finality. */
    finalAt: timestamp("final_at", { withTimezone: true, precision: 3 }),
    anchoredAt: timestamp("anchored_at", { withTimezone: true, precision: 3 }),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [
    unique("anchors_ledger_size_uq").on(t.ledger, t.treeSize),
    index("anchors_status_idx").on(t.status, t.ledger),
  ],
);
