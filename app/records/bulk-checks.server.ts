/**
 * The checks of a group of new records (group commit, ADR 0041), two statements for the whole group, inside the
 * group's transaction: hold the subjects' and their studies' rows FOR SHARE; then, in one statement, find the locks
 * that stop new records and the subjects whose consent plainly allows new data. These are filters, never the
 * verdict on a refusal: an item they flag (a lock, a withdrawal, a consent that is not plainly complete) is checked
 * again by the per-record checks (assertUnlocked, assertConsentAllowsNewData, assertConsentBeforeData) in the same
 * transaction, which refuse it with exactly today's error or let it through.
 */
import { sql } from "drizzle-orm";
import type { DbOrTx } from "../../db/client.ts";
import { rowsOf } from "../../db/queries/rows.ts";

const list = (ids: string[]) =>
  sql.join(
    ids.map((id) => sql`${id}`),
    sql`, `,
  );

/**
 * Hold the participants' rows and their studies' rows FOR SHARE to the end of the transaction (as guardSubjectWrite
 * does for one record): a lock being set or a full withdrawal being recorded either committed before, and is seen
 * by the checks that follow, or waits for this transaction.
 */
export async function holdSubjectsForShare(tx: DbOrTx, participantIds: string[]) {
  const ids = [...new Set(participantIds)].sort();
  await tx.execute(
    sql`SELECT 1 FROM studies s JOIN participants p ON p.study_id = s.id
        WHERE p.id IN (${list(ids)}) ORDER BY p.id FOR SHARE`,
  );
}

export interface SubjectFacts {
  /** A current lock stops new records of the subject: a lock of its study or of the subject. */
  locked: boolean;
  /** Any withdrawal recorded (full or partial). */
  withdrawn: boolean;
  /** The subject's study has a visit schedule (else no visit-window query can open). */
  scheduled: boolean;
  /** The forms the study allows before consent (its settings in force). */
  formsBeforeConsent: string[];
  /**
   * The latest consent obtained (signed electronically or on paper, as consentStatus picks it) is countersigned (or
   * attested) and is to the document version in force: consentStatus would say "consented". False whenever that is
   * not plainly so (the per-record check then decides): among others when the latest consent is not one row but a
   * tie (two signatures, two paper consents, or a paper consent and a signature at the same instant), where which
   * one counts depends on an order the two checks need not share.
   */
  consented: boolean;
}

/** The document `d` (an id expression) is the approved version in force of its code (none later or undated). */
const inForce = (d: string) =>
  `EXISTS (SELECT 1 FROM consent_documents d WHERE d.id = ${d} AND d.status = 'approved'
     AND d.approved_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM consent_documents o
       WHERE o.study_id = d.study_id AND o.code = d.code AND o.status = 'approved' AND o.id <> d.id
         AND (o.approved_at IS NULL OR o.approved_at >= d.approved_at)))`;

/** Lock and consent facts of many participants in one statement (see SubjectFacts). */
export async function subjectFacts(tx: DbOrTx, participantIds: string[]): Promise<Map<string, SubjectFacts>> {
  const ids = [...new Set(participantIds)];
  const res = await tx.execute(sql`
    SELECT p.id,
      EXISTS (SELECT 1 FROM locks l WHERE l.study_id = p.study_id AND l.released_at IS NULL
        AND (l.scope = 'study' OR (l.scope = 'subject' AND l.target_id = p.id))) AS locked,
      EXISTS (SELECT 1 FROM consent_withdrawals w WHERE w.participant_id = p.id) AS withdrawn,
      EXISTS (SELECT 1 FROM visit_schedules vs WHERE vs.study_id = p.study_id) AS scheduled,
      (SELECT ss.forms_before_consent FROM study_settings ss WHERE ss.study_id = p.study_id
        ORDER BY ss.version DESC LIMIT 1) AS fbc,
      CASE
        WHEN sg.tied > 1 OR pc.tied > 1 OR pc.uploaded_at = sg.signed_at THEN false
        WHEN pc.uploaded_at IS NOT NULL AND (sg.signed_at IS NULL OR pc.uploaded_at >= sg.signed_at)
          THEN pc.attested_by IS NOT NULL AND ${sql.raw(inForce("pc.document_id"))}
        WHEN sg.id IS NOT NULL
          THEN EXISTS (SELECT 1 FROM consent_signatures c WHERE c.countersigns = sg.id AND c.signer_role = 'staff')
            AND ${sql.raw(inForce("sg.document_id"))}
        ELSE false
      END AS consented
    FROM participants p
    LEFT JOIN LATERAL (SELECT s.id, s.document_id, s.signed_at, count(*) OVER (PARTITION BY s.signed_at) AS tied
      FROM consent_signatures s WHERE s.participant_id = p.id AND s.countersigns IS NULL
      ORDER BY s.signed_at DESC LIMIT 1) sg ON true
    LEFT JOIN LATERAL (SELECT x.document_id, x.uploaded_at, x.attested_by,
        count(*) OVER (PARTITION BY x.uploaded_at) AS tied
      FROM paper_consents x WHERE x.participant_id = p.id ORDER BY x.uploaded_at DESC LIMIT 1) pc ON true
    WHERE p.id IN (${list(ids)})`);
  const out = new Map<string, SubjectFacts>();
  type Row = { id: string; locked: boolean; withdrawn: boolean; scheduled: boolean; fbc: unknown; consented: boolean };
  for (const r of rowsOf<Row>(res)) {
    const fbc = typeof r.fbc === "string" ? (JSON.parse(r.fbc) as unknown) : r.fbc;
    out.set(r.id, {
      locked: r.locked === true,
      withdrawn: r.withdrawn === true,
      scheduled: r.scheduled === true,
      formsBeforeConsent: Array.isArray(fbc) ? fbc.map(String) : [],
      consented: r.consented === true,
    });
  }
  return out;
}
