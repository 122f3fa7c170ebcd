/**
 * The integrity audit's checks of signer contacts (ADR 0018), from their HMACs (never decrypted for the report):
 * a contact equal to a staff account's (CONTACT_OF_STAFF: the one-time code would reach a member of staff), one
 * contact used for several participants (CONTACT_SHARED: reported; a parent of two enrolled children is
 * legitimate), and each confirmation against its sealed `consent.contact_confirmed` entry (who confirmed, how).
 */
import type { AuditFinding } from "../../anchoring/verifier/log-auditor.ts";
import { rowsWithEntries } from "../../db/queries/integrity-audit.ts";
import type { AppContext } from "../platform/context.server.ts";
import { contactRefs, staffContactHmacs, type ContactRef } from "../consent/contact-hmac.server.ts";

const roleWords = {
  participant: "the participant's contact",
  lar: "a representative's contact",
  parent: "a parent's contact",
};

/** Which contacts of a study equal a staff account's, and which are shared with another participant. */
export async function contactCollisions(ctx: AppContext, studyId: string) {
  const [all, staff] = await Promise.all([contactRefs(ctx), staffContactHmacs(ctx)]);
  const byHmac = new Map<string, ContactRef[]>();
  for (const r of all) byHmac.set(r.hmac, [...(byHmac.get(r.hmac) ?? []), r]);
  const out: { ref: ContactRef; staff?: string; sharedWith?: ContactRef[] }[] = [];
  for (const r of all) {
    if (r.studyId !== studyId) continue;
    const s = staff.get(r.hmac);
    if (s) out.push({ ref: r, staff: s.name });
    const others = (byHmac.get(r.hmac) ?? []).filter((o) => o.participantId !== r.participantId);
    if (others.length) out.push({ ref: r, sharedWith: others });
  }
  return out;
}

export async function contactFindings(ctx: AppContext, study: { id: string; code: string }, findings: AuditFinding[]) {
  let rows = 0;
  for (const c of await contactCollisions(ctx, study.id)) {
    const who = `subject ${c.ref.subject} (${roleWords[c.ref.role]})`;
    if (c.staff)
      findings.push({
        code: "CONTACT_OF_STAFF",
        severity: "tamper",
        study: study.code,
        table: "signer_contacts",
        message: `${who}: the contact is that of staff account ${c.staff}; the one-time code reaches staff`,
      });
    if (c.sharedWith)
      findings.push({
        code: "CONTACT_SHARED",
        severity: "info",
        study: study.code,
        table: "signer_contacts",
        message: `${who}: the same contact is used for ${[...new Set(c.sharedWith.map((o) => o.subject))].join(", ")}`,
      });
  }
  // Each confirmation names its sealed entry, which names the same confirmer, contact and method.
  for (const r of await rowsWithEntries(ctx.db, "signer_contacts", "confirm_entry_id", study.id)) {
    if (r.confirmed_at === null || r.confirmed_at === undefined) continue;
    rows++;
    let p: Record<string, unknown> | null = null;
    try {
      p = r.e_payload ? JSON.parse(String(r.e_payload)) : null;
    } catch {
      p = null;
    }
    const base = { study: study.code, table: "signer_contacts", id: String(r.id), severity: "tamper" as const };
    if (!p || r.e_kind !== "consent.contact_confirmed")
      findings.push({
        ...base,
        code: "DATA_ROW_UNLOGGED",
        message: `signer_contacts row ${r.id} is confirmed without a consent.contact_confirmed entry`,
      });
    else
      for (const [field, a, b] of [
        ["contact", r.id, p.contact],
        ["confirmedBy", r.confirmed_by, p.actor],
        ["method", r.method, p.method],
        ["enteredBy", r.entered_by ?? null, p.enteredBy ?? null],
      ] as const)
        if (a !== b)
          findings.push({
            ...base,
            code: "DATA_ROW_MISMATCH",
            field,
            message:
              `signer_contacts row ${r.id}: ${field} is ${JSON.stringify(a)} in the database ` +
              `but ${JSON.stringify(b)} in its ledger entry`,
          });
  }
  return { rows };
}
