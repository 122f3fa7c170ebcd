/**
 * The study the data-use tests share (not a test file): one site, a consent document whose optional item
 * `future_research` governs other medical research (HRESCH), participants who said yes, said no, withdrew after
 * saying yes, and one consented on paper (never asked), each with a VITALS record; researchers, the data access
 * committee (two members; an external researcher holds no other role of the study, ADR 0069), a regulator
 * (data_use.view) and the investigator.
 */
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { addConsentDocument, importForm } from "../../app/records/forms.server.ts";
import { countersignConsent } from "../../app/consent/countersigning.server.ts";
import { createInvitation } from "../../app/consent/invitations.server.ts";
import { sendIdentityCode, verifyIdentityCode } from "../../app/consent/identity-code.server.ts";
import { signConsent } from "../../app/consent/signing.server.ts";
import { recordWithdrawal } from "../../app/consent/withdrawal.server.ts";
import { saveRecord } from "../../app/records/records.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import { confirmSignerContact } from "../helpers/signer-contact.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import type { TestDb } from "../helpers/db.ts";

export const STUDY = "DU-1";
export const PW = "amber otter winter forty-two";
const meta = { ip: "127.0.0.1", userAgent: "vitest data use" };
const DOC = [
  "# Consent",
  "",
  "## Purpose",
  "Why we ask.",
  "",
  "## Optional",
  "[optional:future_research for:HRESCH,BIORCH] My data may be used for other medical research.",
  "",
].join("\n");
export const VITALS = {
  code: "VITALS",
  title: "Vital signs",
  version: 1,
  visits: ["SCREENING"],
  fields: [
    { name: "sbp", label: "Systolic BP", type: "number", integer: true, min: 50, max: 250, required: true },
    { name: "dbp", label: "Diastolic BP", type: "number", integer: true, min: 30, max: 150 },
    { name: "initials", label: "Initials", type: "text", class: "identifier" },
    { name: "note", label: "Note", type: "text" },
  ],
};

export interface DataUseStudy {
  p: Record<string, Principal>;
  ids: Record<string, string>;
  /** Subject code by key. */
  subj: Record<string, string>;
  /** Participant id by key. */
  pid: Record<string, string>;
  /** The VITALS record's id by key. */
  rid: Record<string, string>;
}

/** Who is in the study: key -> [agreed to future research at signing, full withdrawal after]. */
export const PEOPLE = {
  yes1: { agree: true, withdraw: false },
  yes2: { agree: true, withdraw: false },
  yes3: { agree: true, withdraw: false },
  no1: { agree: false, withdraw: false },
  wd: { agree: true, withdraw: true },
} as const;

export async function dataUseStudy(t: TestDb): Promise<DataUseStudy> {
  const ctx = t.ctx;
  await createStudy(ctx, { code: STUDY, title: "Data use study", sites: [{ code: "S1", name: "Site one" }] }, null);
  const p: Record<string, Principal> = {};
  const ids: Record<string, string> = {};
  for (const [k, role, site] of [
    ["admin", "admin", undefined],
    ["inv", "investigator", "S1"],
    ["res", "external_researcher", undefined],
    ["res2", "external_researcher", undefined],
    ["dac", "data_access_committee", undefined],
    ["both", "data_access_committee", undefined],
    ["reg", "regulator", undefined],
  ] as const) {
    const u = await createUser(
      ctx,
      {
        email: `${k}@du.test`,
        fullName: `${k} person`,
        password: PW,
        role,
        study: role === "admin" ? undefined : STUDY,
        site,
      },
      null,
    );
    ids[k] = u.id;
  }
  p.admin = (await principalForUser(ctx, ids.admin))!;
  for (const k of Object.keys(ids)) p[k] = (await principalForUser(ctx, ids[k]))!;
  const doc = { code: "ICF", title: "Consent", irbName: "IRB", irbApprovedOn: "2026-01-01" };
  await addConsentDocument(ctx, p.admin, STUDY, { ...doc, version: "1.0", bodyMarkdown: DOC });
  await importForm(ctx, STUDY, VITALS, { actorId: null });
  const subj: Record<string, string> = {};
  const pid: Record<string, string> = {};
  const enrol = async (k: string) => {
    const s = await enrollParticipant(ctx, p.inv, {
      study: STUDY,
      site: "S1",
      personal: { fullName: `Person ${k}`, email: `${k}@people.du.test` },
    });
    subj[k] = s.subjectCode;
    pid[k] = s.id;
  };
  for (const [k, how] of Object.entries(PEOPLE)) {
    await enrol(k);
    await confirmSignerContact(ctx, STUDY, subj[k]);
    const inv = await createInvitation(ctx, p.inv, STUDY, { subject: subj[k] }, "http://portal.test");
    await sendIdentityCode(ctx, inv.token);
    const [row] = await t.database.execute(
      `SELECT body FROM outbox WHERE to_address = '${k}@people.du.test' AND kind = 'consent_code' ` +
        "ORDER BY created_at DESC LIMIT 1",
    );
    const v = await verifyIdentityCode(ctx, inv.token, /is (\d{6})\./.exec(String(row.body))![1], meta);
    await signConsent(
      ctx,
      inv.token,
      v,
      {
        acknowledged: ["s1", "s2"],
        answers: {},
        options: { future_research: how.agree ? "yes" : "no" },
        typedName: `Person ${k}`,
        confirm: true,
      },
      { fromStaffDevice: false, meta },
    );
    await countersignConsent(ctx, p.inv, STUDY, subj[k], { password: PW }, meta);
  }
  // Consented on paper: never asked about future research.
  await enrol("paper");
  await giveCompleteConsent(ctx, STUDY, subj.paper);
  const rid: Record<string, string> = {};
  for (const [i, k] of ["yes1", "yes2", "yes3", "no1", "wd", "paper"].entries())
    rid[k] = (
      await saveRecord(ctx, p.inv, STUDY, {
        subject: subj[k],
        form: "VITALS",
        visit: "SCREENING",
        data: { sbp: 110 + i, dbp: 70 + i, initials: "AB", note: `note of ${subj[k]}` },
      })
    ).id;
  for (const k of Object.keys(PEOPLE) as (keyof typeof PEOPLE)[])
    if (PEOPLE[k].withdraw) await recordWithdrawal(ctx, p.inv, STUDY, subj[k], { scope: "full", reason: "moved away" });
  return { p, ids, subj, pid, rid };
}

/** A valid request body (override any part). */
export function requestBody(over: Record<string, unknown> = {}) {
  return {
    purpose: "HRESCH",
    fields: ["VITALS.sbp", "VITALS.dbp"],
    periodFrom: "2020-01-01",
    periodTo: "2099-12-31",
    institution: "Institute of Examples",
    justification: "A study of blood pressure across trials.",
    ...over,
  };
}
