/**
 * Who used a participant's data (issue 22, ADR 0067): the reads of their personal or CRF data by staff, sponsor and
 * regulator roles (audit-trail events, coalesced per reader, participant, kind and hour: ADR 0016), the exports that
 * held their data (audit events `export.*` naming them in `detail.participants`) and the data-use deliveries that
 * held them (data_use_delivery_participants), in words a participant understands, newest first. Staff names are
 * shown to the participant only when the study chose to (study setting staffNamesToParticipants).
 * - Who: the role and site stored in the event when it was written (detail.role, detail.site: accessDetail), the
 *   reader's current memberships only for events written before they were stored; an export with neither user nor
 *   token is the study's operator at the command line.
 * - Each item is checked against the seal: an event against its audit.event entry (eventSealDifferences, the
 *   integrity audit's comparison), a delivery's row, request and members against theirs; a mismatch is shown.
 */
import { canonicalize } from "../../anchoring/log/canonical.ts";
import { and, eq, inArray, isNotNull, like, ne, or, sql } from "drizzle-orm";
import {
  auditEvents,
  ledgerEntries,
  memberships,
  organizations,
  participants,
  sites,
  studies,
  users,
} from "../../db/schema/index.ts";
import { rowsOf } from "../../db/queries/rows.ts";
import type { Role } from "../../db/schema/users.ts";
import { eventSealDifferences } from "../audit-trail/event-seal.server.ts";
import { dataSharingLinks, msOf } from "../integrity-audit/data-sharing-checks.server.ts";
import { payloadOf, type Row } from "../integrity-audit/linked-table.ts";
import type { AppContext } from "../platform/context.server.ts";
import { studySettingsOf } from "../studies/settings.server.ts";
import { membersHash } from "./members-hash.ts";
import { purposeInPlainWords } from "./purposes.ts";

/** One use of a participant's data, in words a participant understands. */
export interface AccessLogItem {
  /** ISO time of the (first) read in its hour, the export or the delivery. */
  at: string;
  /** "Site 01 · City Hospital", "the sponsor (Acme Pharma)", "a regulator", "a researcher at <institution>"... */
  organisation: string;
  /** The role in words: "study coordinator", "monitor", "data access committee"... */
  role: string;
  /** The person's name, only when the study chose to show staff names to participants (ADR 0067); else null. */
  person: string | null;
  /** What was used. */
  what: "consent" | "personal data" | "CRF data" | "export" | "data-use delivery";
  /** A sentence: "looked at your study record", "exported the study's data (CSV)"... */
  words: string;
  /** The purpose in words where one applies (data-use deliveries), else null. */
  purpose: string | null;
  /** The ledger entry sealing it (its audit event's or delivery's). */
  entryId: string | null;
  /**
   * The item against the seal: "sealed", "pending" (its entry waits for the next batch) or "mismatch" (the event or
   * delivery differs from its sealed entry, or has none: shown as such, never hidden).
   */
  seal: "sealed" | "pending" | "mismatch";
}

/** The audit actions that are reads of one participant's data (ADR 0067), with what they read, in words. */
export const READ_ACTIONS: Record<string, { what: AccessLogItem["what"]; words: string }> = {
  "participant.view": { what: "CRF data", words: "looked at your study record" },
  "record.view": { what: "CRF data", words: "looked at one of your study forms and its history" },
  "personal_data.view": { what: "personal data", words: "looked at your contact details" },
  "consent.view": { what: "consent", words: "looked at your consent" },
  "proof.view": { what: "CRF data", words: "looked at the sealed copy of one of your study forms (its proof)" },
};

const ROLE_WORDS: Record<Role, string> = {
  admin: "study administrator",
  investigator: "investigator",
  coordinator: "study coordinator",
  monitor: "monitor",
  data_manager: "data manager",
  regulator: "inspector",
  participant: "participant",
  unblinded_statistician: "statistician",
  unblinded_pharmacist: "pharmacist",
  depot_manager: "depot manager",
  site_pharmacist: "site pharmacist",
  external_researcher: "researcher",
  data_access_committee: "data access committee",
};

/** What an export holds, in words a participant understands, by its format (detail.format or the action). */
const EXPORT_WORDS: Record<string, string> = {
  csv: "the study's data as a table (CSV)",
  odm: "the study's data in the standard research format (CDISC ODM)",
  fhir: "the study's data in the standard health-record format (FHIR)",
  kit_custody: "a kit's chain of custody (who held the study medicine, and when)",
  custody: "a kit's chain of custody (who held the study medicine, and when)",
  allocations: "the list of treatment allocations",
  evidence: "the study's evidence package (its data and the proof that it was not changed)",
  evidence_package: "the study's evidence package (its data and the proof that it was not changed)",
  casebook: "a participant's study forms (casebook)",
  pdf: "the study's data as a document (PDF)",
  queries: "the questions raised on the study's data",
  audit: "the study's audit trail (who did what, and when)",
  audit_trail: "the study's audit trail (who did what, and when)",
  analysis_data_set: "the study's data prepared for analysis",
  supply: "the study medicine's supply records",
  supply_accountability: "the study medicine's accountability records (which kits went to whom)",
  supply_odm: "the study medicine's supply records in the standard research format (CDISC ODM)",
  supply_fhir: "the study medicine's supply records in the standard health-record format (FHIR)",
  certified_copy: "a certified copy of your study record",
};
/** The known formats, longest first: a format naming two ("audit_csv") is read as its most specific. */
const EXPORT_KEYS = Object.keys(EXPORT_WORDS).sort((a, b) => b.length - a.length);

/** "the study's data in the standard research format (CDISC ODM)"...: an export in words, never a bare code. */
export function exportKind(action: string, detail: Record<string, unknown>): string {
  const f = (typeof detail.format === "string" ? detail.format : action.slice("export.".length))
    .toLowerCase()
    .replace(/[\s-]+/g, "_");
  const key = f in EXPORT_WORDS ? f : EXPORT_KEYS.find((k) => f.includes(k));
  return key ? EXPORT_WORDS[key] : `the study's data (a ${f.replace(/_+/g, " ")} file)`;
}

export async function participantAccessLog(
  ctx: AppContext,
  participantId: string,
  viewer: "participant" | "staff",
): Promise<AccessLogItem[]> {
  const [p] = await ctx.db
    .select({ studyId: participants.studyId, sponsor: organizations.name })
    .from(participants)
    .innerJoin(studies, eq(studies.id, participants.studyId))
    .leftJoin(organizations, eq(organizations.id, studies.sponsorOrgId))
    .where(eq(participants.id, participantId));
  if (!p) return [];
  const sponsor = p.sponsor ? `the sponsor (${p.sponsor})` : "the study sponsor";
  const showNames = viewer === "staff" || (await studySettingsOf(ctx, p.studyId)).staffNamesToParticipants;

  const events = await ctx.db
    .select({
      e: auditEvents,
      entryKind: ledgerEntries.kind,
      entryPayload: ledgerEntries.payloadText,
      entryStudy: ledgerEntries.studyId,
      entryStatus: ledgerEntries.status,
    })
    .from(auditEvents)
    .leftJoin(ledgerEntries, eq(ledgerEntries.id, auditEvents.entryId))
    .where(
      and(
        eq(auditEvents.outcome, "success"),
        or(
          and(
            eq(auditEvents.participantId, participantId),
            inArray(auditEvents.action, Object.keys(READ_ACTIONS)),
            // The participant's own actions (through their link) name no user and no token: never listed.
            or(isNotNull(auditEvents.actorUserId), sql`(${auditEvents.detail} -> 'token') IS NOT NULL`),
          ),
          and(
            eq(auditEvents.studyId, p.studyId),
            like(auditEvents.action, "export.%"),
            // Deliveries are listed from their own rows (with the purpose and the institution) below.
            ne(auditEvents.action, "export.data_use"),
            sql`${auditEvents.detail}->'participants' @> ${JSON.stringify([participantId])}::jsonb`,
          ),
        ),
      ),
    );

  const userIds = [...new Set(events.map(({ e }) => e.actorUserId).filter((u): u is string => u !== null))];
  const people = userIds.length
    ? await ctx.db
        .select({ id: users.id, name: users.fullName, platformAdmin: users.platformAdmin })
        .from(users)
        .where(inArray(users.id, userIds))
    : [];
  const roles = userIds.length
    ? await ctx.db
        .select({
          userId: memberships.userId,
          role: memberships.role,
          qualifier: memberships.qualifier,
          siteId: memberships.siteId,
          siteCode: sites.code,
          siteName: sites.name,
        })
        .from(memberships)
        .leftJoin(sites, eq(sites.id, memberships.siteId))
        .where(and(eq(memberships.studyId, p.studyId), inArray(memberships.userId, userIds)))
    : [];
  const studySites = await ctx.db
    .select({ code: sites.code, name: sites.name })
    .from(sites)
    .where(eq(sites.studyId, p.studyId));

  const words = (
    role: Role,
    qualifier: string | null,
    siteCode: string | null,
    name: string | null,
  ): Pick<AccessLogItem, "organisation" | "role" | "person"> => {
    const inWords = role === "investigator" && qualifier === "principal" ? "principal investigator" : ROLE_WORDS[role];
    if (role === "regulator") return { organisation: "a regulator", role: inWords, person: name };
    if (siteCode) {
      const site = studySites.find((x) => x.code === siteCode);
      return {
        organisation: site ? `Site ${siteCode} · ${site.name}` : `Site ${siteCode}`,
        role: inWords,
        person: name,
      };
    }
    return { organisation: sponsor, role: inWords, person: name };
  };

  const who = (
    userId: string | null,
    siteId: string | null,
    detail: Record<string, unknown>,
  ): Pick<AccessLogItem, "organisation" | "role" | "person"> => {
    if (!userId) {
      const token = detail.token as { name?: unknown } | undefined;
      // An export with neither user nor token: run at the command line by whoever operates the study's portal.
      if (!token) return { organisation: "the study's operator (command line)", role: "operator", person: null };
      return {
        organisation: sponsor,
        role: "a connected system (API)",
        person: showNames && typeof token?.name === "string" ? `API token ${token.name}` : null,
      };
    }
    const person = people.find((u) => u.id === userId);
    const name = showNames ? (person?.name ?? null) : null;
    const mine = roles.filter((m) => m.userId === userId);
    // The role and site stored when the event was written (ADR 0067); the qualifier from a membership of that role.
    if (typeof detail.role === "string" && Object.hasOwn(ROLE_WORDS, detail.role)) {
      const role = detail.role as Role;
      const site = typeof detail.site === "string" ? detail.site : null;
      const q = mine.find((x) => x.role === role && (x.siteCode ?? null) === site)?.qualifier ?? null;
      return words(role, q, site, name);
    }
    // Events written before the role was stored: the reader's current membership at the event's site, else a
    // study-wide one, else any.
    const m = mine.find((x) => x.siteId !== null && x.siteId === siteId) ?? mine.find((x) => !x.siteId) ?? mine[0];
    if (!m)
      return { organisation: sponsor, role: person?.platformAdmin ? "system administrator" : "staff", person: name };
    return words(m.role, m.qualifier, m.siteCode, name);
  };

  const items: AccessLogItem[] = events.map(({ e, entryKind, entryPayload, entryStudy, entryStatus }) => {
    const detail = (e.detail ?? {}) as Record<string, unknown>;
    const read = READ_ACTIONS[e.action];
    const differs = eventSealDifferences(
      ctx.crypto,
      ctx.env.dataKey,
      { ...e, detail },
      e.entryId && entryKind ? { kind: entryKind, payloadText: entryPayload, studyId: entryStudy } : null,
    );
    return {
      at: e.at.toISOString(),
      ...who(e.actorUserId, e.siteId, detail),
      what: read ? read.what : "export",
      words: read ? read.words : `exported ${exportKind(e.action, detail)}, including your data`,
      purpose: typeof detail.purpose === "string" ? purposeInPlainWords(detail.purpose) : null,
      entryId: e.entryId,
      seal: differs === "unsealed" || differs.length > 0 ? "mismatch" : entryStatus === "sealed" ? "sealed" : "pending",
    };
  });

  // Each delivery holding the participant, checked as the integrity audit checks it: its row and its request's
  // against their entries, and its participants against the sealed membersHash.
  const deliveries = rowsOf<Row>(
    await ctx.db.execute(sql`
      SELECT d.id, d.request_id, d.manifest, d.manifest_sha256, d.participant_count, d.excluded, d.expires_at,
             d.actor_user_id, d.entry_id, d.created_at,
             e.payload_text AS e_payload, e.kind AS e_kind, e.status AS e_status,
             r.id AS r_id, r.purpose AS r_purpose, r.fields AS r_fields, r.period_from AS r_period_from,
             r.period_to AS r_period_to, r.institution AS r_institution, r.justification AS r_justification,
             r.actor_user_id AS r_actor_user_id, re.payload_text AS r_payload, re.kind AS r_kind,
             u.full_name AS researcher,
             (SELECT coalesce(json_agg(m.participant_id), '[]'::json)::text FROM data_use_delivery_participants m
               WHERE m.delivery_id = d.id) AS members
        FROM data_use_delivery_participants l
        JOIN data_use_deliveries d ON d.id = l.delivery_id
        JOIN data_use_requests r ON r.id = d.request_id
        LEFT JOIN ledger_entries e ON e.id = d.entry_id
        LEFT JOIN ledger_entries re ON re.id = r.entry_id
        LEFT JOIN users u ON u.id = r.actor_user_id
       WHERE l.participant_id = ${participantId}`),
  );
  const links = dataSharingLinks(ctx);
  const matches = (table: string, row: Row, payloadText: unknown, kind: unknown) => {
    const link = links.find((x) => x.table === table);
    const pl = payloadOf({ e_payload: payloadText });
    if (!link || !pl || kind !== link.kind) return false;
    return link.compare(row, pl).every(([, a, b]) => canonicalize(a ?? null) === canonicalize(b ?? null));
  };
  for (const d of deliveries) {
    const request: Row = {};
    for (const [k, v] of Object.entries(d)) if (k.startsWith("r_")) request[k.slice(2)] = v;
    const pl = payloadOf(d);
    const members = JSON.parse(String(d.members)) as string[];
    const ok =
      matches("data_use_deliveries", d, d.e_payload, d.e_kind) &&
      matches("data_use_requests", request, d.r_payload, d.r_kind) &&
      pl !== null &&
      typeof pl.salt === "string" &&
      membersHash(ctx.crypto, pl.salt, members) === pl.membersHash &&
      d.r_purpose === pl.purpose;
    items.push({
      at: new Date(msOf(d.created_at) ?? 0).toISOString(),
      organisation: `a researcher at ${String(d.r_institution)}`,
      role: "external researcher",
      person: showNames && typeof d.researcher === "string" ? d.researcher : null,
      what: "data-use delivery",
      words: "received your study data without your name or study code, for research the study's committee approved",
      purpose: purposeInPlainWords(String(d.r_purpose)),
      entryId: d.entry_id === null ? null : String(d.entry_id),
      seal: !ok ? "mismatch" : d.e_status === "sealed" ? "sealed" : "pending",
    });
  }

  return items.sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));
}
