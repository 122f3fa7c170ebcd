import { pgTable, text, timestamp, uuid, unique } from "drizzle-orm/pg-core";

/** Sponsors, CROs and institutions that own studies and employ staff. */
export const organizations = pgTable("organizations", {
  id: uuid("id").primaryKey().defaultRandom(),
  name: text("name").notNull().unique(),
  kind: text("kind", { enum: ["sponsor", "cro", "institution"] })
    .notNull()
    .default("sponsor"),
  createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
});

export const STUDY_STATUSES = ["draft", "active", "locked", "closed"] as const;

/** A clinical study (protocol). `code` is the protocol code used everywhere, including ledger envelopes. */
export const studies = pgTable("studies", {
  id: uuid("id").primaryKey().defaultRandom(),
  code: text("code").notNull().unique(),
  title: text("title").notNull(),
  status: text("status", { enum: STUDY_STATUSES }).notNull().default("active"),
  sponsorOrgId: uuid("sponsor_org_id").references(() => organizations.id),
  createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
});

/** An investigational site of a study. */
export const sites = pgTable(
  "sites",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    studyId: uuid("study_id")
      .notNull()
      .references(() => studies.id),
    code: text("code").notNull(),
    name: text("name").notNull(),
    /** The site's clock (IANA name): CRF datetimes are entered and shown on it (ADR 0030). */
    timeZone: text("time_zone").notNull().default("UTC"),
    createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [unique("sites_study_code_uq").on(t.studyId, t.code)],
);
