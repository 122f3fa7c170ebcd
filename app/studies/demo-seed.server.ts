/**
 * The demo study (DEMO-001): one site, an approved consent document, approved CRF forms (demographics, vital signs, the
 * adverse-event log), records that show the form model, a demo user per role, and (issue 20) the protocol and SAP, the
 * outcome list, the published registration page and a committed randomization list with its first allocations. A random
 * demo password is generated once, printed and written to <DATA_DIR>/demo-credentials.txt.
 */
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import { findStudyByCode } from "../../db/queries/studies.ts";
import type { Role } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import { createStudy } from "./studies.server.ts";
import { createUser } from "../accounts/users.server.ts";
import { grantDelegation } from "./delegations.server.ts";
import { principalForUser } from "../accounts/auth.server.ts";
import { importForm, createApprovedConsentDocument } from "../records/forms.server.ts";
import { packagePath } from "../platform/package-root.server.ts";
import { enrollParticipant } from "../participants/participants.server.ts";
import { attestPaperConsent, hashScan, recordPaperConsent } from "../consent/paper-consent.server.ts";
import { setEnrolmentTargets, setFormsBeforeConsent } from "./settings.server.ts";
import { saveRecord } from "../records/records.server.ts";
import type { Principal } from "../platform/permissions.server.ts";
import { setSchedule } from "../visit-schedule/schedule-setup.server.ts";
import { setDisposition } from "../participants/disposition.server.ts";
import { seedDemoDocuments } from "../study-documents/demo.server.ts";
import { seedDemoOutcomesAndRegistration } from "../registration/demo.server.ts";
import { seedDemoSupply } from "../drug-supply/demo.server.ts";
import { seedDemoRandomization } from "../randomization/demo.server.ts";
import { seedDemoDataSharing } from "../data-sharing/demo.server.ts";

export const DEMO_STUDY = "DEMO-001";
export const DEMO_SITE = "SITE-01";

/**
 * Participants the demo enrols with a complete (paper) consent and no data: subjects SITE-01-001 and SITE-01-002.
 * Two more (SITE-01-003, a woman, and SITE-01-004, a man) come with records that show the form model (`DEMO_DATA`).
 * SITE-01-005 and SITE-01-006 were consented for screening (issue 18): 005 is in screening, 006 a screen failure.
 */
export const DEMO_CONSENTED = 2;

/** The demo's form versions, approved in this order (the latest version of a form is the one entered). */
export const DEMO_FORMS = [
  "demog.form.json",
  "vitals.form.json",
  "demog-v2.form.json",
  "vitals-v2.form.json",
  "ae.form.json",
];

/**
 * The demo's records (issue 17), by the coordinator: a calculated BMI; a man's demographics, whose pregnancy field
 * is hidden; a temperature not taken (a missing-data code with its reason); a systolic pressure outside its
 * expected range, confirmed, with the automatic query it opened; and two rows of the adverse-event log, one serious.
 * Dates are of the day before the seed (never in the future at any site).
 */
async function seedDemoRecords(ctx: AppContext, coordinator: Principal, [woman, man]: string[]) {
  const now = Date.now();
  const day = new Date(now - 24 * 3600_000).toISOString().slice(0, 10);
  const consentedAt = new Date(now - 25 * 3600_000).toISOString();
  const save = (subject: string, form: string, data: Record<string, unknown>, more: Record<string, unknown> = {}) =>
    saveRecord(ctx, coordinator, DEMO_STUDY, { subject, form, visit: "SCREENING", data, ...more });
  const demog = { age: 47, height: 164, weight: 61, consent_datetime: consentedAt };
  await save(woman, "DEMOG", { initials: "MK", sex: "F", pregnant: false, ...demog });
  await save(
    woman,
    "VITALS",
    { visit_date: day, sbp: 172, dbp: 95, height: 164, weight: 61, smoker: "N" },
    {
      missing: { temp: { code: "NOT_DONE", reason: "Thermometer out of service at the screening visit" } },
      confirmed: ["sbp"],
    },
  );
  await save(man, "DEMOG", {
    initials: "TR",
    sex: "M",
    age: 58,
    height: 178,
    weight: 84,
    consent_datetime: consentedAt,
  });
  await save(man, "VITALS", { visit_date: day, sbp: 128, dbp: 82, temp: 36.8, height: 178, weight: 84, smoker: "Y" });
  const ae = { onset: day, severity: "MILD", outcome: "RECOVERED", serious: false };
  await save(man, "AE", { term: "Headache after the first dose", ...ae });
  await save(man, "AE", {
    ...ae,
    term: "Dizziness on standing, fell at home",
    severity: "MODERATE",
    outcome: "RECOVERING",
    serious: true,
    hosp_date: day,
  });
}
/**
 * The demo's dispositions (issue 18, ADR 0033), by the coordinator: SITE-01-005 still in screening, SITE-01-006 a
 * screen failure with its reason. The enrolled participants become randomized by the demo's randomization (issue
 * 20: once a list is committed, "randomized" comes only with an allocation, never by hand).
 */
async function seedDemoDispositions(ctx: AppContext, coordinator: Principal, failed: string) {
  const date = new Date(Date.now() - 24 * 3600_000).toISOString().slice(0, 10);
  await setDisposition(ctx, coordinator, DEMO_STUDY, failed, {
    status: "screen_failed",
    date,
    reason: "Systolic pressure above the inclusion limit at both screening readings",
  });
}
const DEMO_META = { ip: "127.0.0.1", userAgent: "trialseal demo seed" };

/** The demo study's files, found from the package root (this module may be bundled into build/). */
const DEMO_DIR = packagePath("app", "studies", "demo");

export const DEMO_USERS: { email: string; fullName: string; role: Role; study?: string; site?: string }[] = [
  { email: "admin@demo.trialseal.test", fullName: "Ada Admin", role: "admin" },
  {
    email: "investigator@demo.trialseal.test",
    fullName: "Ian Investigator",
    role: "investigator",
    study: DEMO_STUDY,
    site: DEMO_SITE,
  },
  {
    email: "coordinator@demo.trialseal.test",
    fullName: "Cora Coordinator",
    role: "coordinator",
    study: DEMO_STUDY,
    site: DEMO_SITE,
  },
  { email: "monitor@demo.trialseal.test", fullName: "Mona Monitor", role: "monitor", study: DEMO_STUDY },
  { email: "datamanager@demo.trialseal.test", fullName: "Dana Datamanager", role: "data_manager", study: DEMO_STUDY },
  { email: "regulator@demo.trialseal.test", fullName: "Rex Regulator", role: "regulator", study: DEMO_STUDY },
  // Issue 20: the only roles that see arms before unblinding (ADR 0053).
  {
    email: "statistician@demo.trialseal.test",
    fullName: "Stella Statistician",
    role: "unblinded_statistician",
    study: DEMO_STUDY,
  },
  {
    email: "pharmacist@demo.trialseal.test",
    fullName: "Phil Pharmacist",
    role: "unblinded_pharmacist",
    study: DEMO_STUDY,
    site: DEMO_SITE,
  },
  // Issue 21: the sponsor (the study's admin: releases lots, decides on quarantines, recalls), the depot (sees kit
  // types) and the site's blinded pharmacist.
  { email: "sponsor@demo.trialseal.test", fullName: "Sofia Sponsor", role: "admin", study: DEMO_STUDY },
  { email: "depot@demo.trialseal.test", fullName: "Dora Depot", role: "depot_manager", study: DEMO_STUDY },
  {
    email: "sitepharmacist@demo.trialseal.test",
    fullName: "Sami Sitepharmacist",
    role: "site_pharmacist",
    study: DEMO_STUDY,
    site: DEMO_SITE,
  },
  // Issue 22: the sponsor's data access committee and a researcher outside the study team (ADR 0069).
  { email: "dac@demo.trialseal.test", fullName: "Dalia Committee", role: "data_access_committee", study: DEMO_STUDY },
  {
    email: "researcher@demo.trialseal.test",
    fullName: "Rae Researcher",
    role: "external_researcher",
    study: DEMO_STUDY,
  },
];

/**
 * Where the demo logins of this database are written: one file per database, so a start on PostgreSQL with the
 * same DATA_DIR never overwrites the embedded database's password (issue 16 item 13).
 */
export function demoCredentialsFile(env: { dataDir: string; databaseUrl?: string }): string {
  if (!env.databaseUrl) return path.join(env.dataDir, "demo-credentials.txt");
  const u = new URL(env.databaseUrl);
  const where = `${u.hostname}-${u.port || "5432"}-${u.pathname.slice(1) || "postgres"}`;
  const name = where.replace(/[^A-Za-z0-9._-]/g, "_");
  return path.join(env.dataDir, `demo-credentials-postgres-${name}.txt`);
}

/** Seed the demo study unless it exists. Returns the demo password when it seeded, null otherwise. */
export async function seedDemo(
  ctx: AppContext,
  opts: { password?: string; credentialsFile?: string } = {},
): Promise<string | null> {
  if (await findStudyByCode(ctx.db, DEMO_STUDY)) return null;
  const password = opts.password ?? `demo-${randomBytes(9).toString("base64url")}`;
  await createStudy(
    ctx,
    { code: DEMO_STUDY, title: "Demo blood pressure study", sites: [{ code: DEMO_SITE, name: "Demo site 01" }] },
    null,
  );
  let adminId: string | null = null;
  let investigatorId: string | null = null;
  let coordinatorId: string | null = null;
  let statisticianId: string | null = null;
  const idByRole = new Map<Role, string>();
  for (const u of DEMO_USERS) {
    const user = await createUser(ctx, { ...u, password }, adminId);
    if (u.role === "admin" && !u.study) adminId = user.id;
    if (u.role === "investigator") investigatorId = user.id;
    if (u.role === "coordinator") coordinatorId = user.id;
    if (u.role === "unblinded_statistician") statisticianId = user.id;
    if (u.study) idByRole.set(u.role, user.id);
  }
  // The investigator delegates site work to the coordinator (ICH E6(R3) delegation log), with GCP training.
  const investigator = (await principalForUser(ctx, investigatorId!))!;
  const gcpCertificate = createHash("sha256").update("Demo GCP certificate for Cora Coordinator").digest("hex");
  for (const task of ["consent", "enrollment", "data_entry"] as const) {
    await grantDelegation(ctx, investigator, {
      study: DEMO_STUDY,
      site: DEMO_SITE,
      delegate: "coordinator@demo.trialseal.test",
      task,
      startsOn: "2026-01-01",
      endsOn: null,
      training: [
        { course: "ICH E6(R3) Good Clinical Practice", completedOn: "2025-12-01", evidenceSha256: gcpCertificate },
      ],
    });
  }
  await createApprovedConsentDocument(
    ctx,
    DEMO_STUDY,
    {
      code: "ICF",
      version: "1.0",
      title: "Informed consent form",
      bodyMarkdown: readFileSync(path.join(DEMO_DIR, "consent.md"), "utf8"),
      irbName: "Demo Central IRB",
      irbApprovedOn: "2026-01-15",
    },
    adminId,
  );
  // Version 1 of each form, then the issue-17 versions (sections, branching, a calculation, missing-data codes,
  // soft limits, field classes) and the repeating adverse-event log.
  for (const f of DEMO_FORMS) {
    await importForm(ctx, DEMO_STUDY, JSON.parse(readFileSync(path.join(DEMO_DIR, f), "utf8")), { actorId: adminId });
  }
  // The visit schedule (issue 18, ADR 0032): screening up to 14 days before enrolment, week 4 at day 28 +/- 3,
  // each visit's date read from VITALS.visit_date; set before the records, so their saves check the windows.
  await setSchedule(
    ctx,
    (await principalForUser(ctx, adminId!))!,
    DEMO_STUDY,
    readFileSync(path.join(DEMO_DIR, "schedule.json"), "utf8"),
  );
  // Pre-commitment before any participant (issue 20, ADRs 0048-0050), as a trial registers before enrolling: the
  // protocol and SAP versions 1.0 (the protocol approved at the site), the SAP's outcome list (so it is not flagged
  // as set after the first enrolment) and the published registration page /registry/DEMO-001.
  const admin = (await principalForUser(ctx, adminId!))!;
  await seedDemoDocuments(ctx, admin, DEMO_STUDY);
  await seedDemoOutcomesAndRegistration(ctx, admin, DEMO_STUDY);
  // Consented participants (ADR 0021: no CRF data before a complete consent): consents obtained on paper, the
  // scan's SHA-256 sealed by the coordinator and attested by the investigator. Demographics may be recorded before
  // consent (pre-screening), so the settings page and the review page's pre-consent list have something to show.
  const coordinator = (await principalForUser(ctx, coordinatorId!))!;
  const consentedOnPaper = async (disposition?: "screening") => {
    const { subjectCode } = await enrollParticipant(ctx, coordinator, {
      study: DEMO_STUDY,
      site: DEMO_SITE,
      disposition,
    });
    const scan = await hashScan([new TextEncoder().encode(`Demo scan of the signed consent form of ${subjectCode}`)]);
    const paper = await recordPaperConsent(
      ctx,
      coordinator,
      DEMO_STUDY,
      subjectCode,
      { document: "ICF", version: "1.0" },
      scan,
    );
    await attestPaperConsent(ctx, investigator, DEMO_STUDY, subjectCode, paper.id, { password }, DEMO_META);
    return subjectCode;
  };
  for (let n = 0; n < DEMO_CONSENTED; n++) await consentedOnPaper();
  const [woman, man] = [await consentedOnPaper(), await consentedOnPaper()];
  await seedDemoRecords(ctx, coordinator, [woman, man]);
  await consentedOnPaper("screening"); // SITE-01-005, still in screening
  await seedDemoDispositions(ctx, coordinator, await consentedOnPaper("screening"));
  await setFormsBeforeConsent(ctx, (await principalForUser(ctx, adminId!))!, DEMO_STUDY, {
    formsBeforeConsent: "DEMOG",
  });
  // Enrolment targets (issue 18), so the home page's progress panel charts enrolment against them.
  await setEnrolmentTargets(ctx, (await principalForUser(ctx, adminId!))!, DEMO_STUDY, {
    total: 40,
    sites: { [DEMO_SITE]: 40 },
  });
  // Randomization (issue 20, ADRs 0051-0053): a list committed by the unblinded statistician, then the enrolled,
  // consented participants randomized by the coordinator. The database stays unlocked and the study blinded (no
  // lock, no unblinding), so the demo can still be edited.
  await seedDemoRandomization(ctx, (await principalForUser(ctx, statisticianId!))!, coordinator, DEMO_STUDY);
  // Drug supply (issue 21, ADRs 0056-0065): lots released, kits shipped and received (one shipment quarantined
  // after an excursion, awaiting the sponsor), a kit dispensed to each randomized participant by allocation, one
  // returned and destroyed with a witness, the site reconciled, a lot recalled.
  const principalOf = async (role: Role) => (await principalForUser(ctx, idByRole.get(role)!))!;
  await seedDemoSupply(
    ctx,
    {
      sponsor: await principalOf("admin"),
      depot: await principalOf("depot_manager"),
      sitePharmacist: await principalOf("site_pharmacist"),
      unblindedPharmacist: await principalOf("unblinded_pharmacist"),
      monitor: await principalOf("monitor"),
      password,
    },
    DEMO_STUDY,
    DEMO_SITE,
  );
  // Data sharing (issue 22, ADRs 0066-0070): two participants consent electronically and agree to future research,
  // one says no afterwards; the researcher's request is approved and delivered without them.
  await seedDemoDataSharing(
    ctx,
    {
      coordinator,
      investigator,
      committee: await principalOf("data_access_committee"),
      researcher: await principalOf("external_researcher"),
      password,
    },
    DEMO_STUDY,
    DEMO_SITE,
  );
  const file = opts.credentialsFile ?? demoCredentialsFile(ctx.env);
  mkdirSync(path.dirname(file), { recursive: true });
  const lines = [
    `TrialSeal demo logins (study ${DEMO_STUDY}); password for every account: ${password}`,
    ...DEMO_USERS.map((u) => `${u.role.padEnd(13)} ${u.email}`),
    "",
  ];
  writeFileSync(file, lines.join("\n"), { mode: 0o600 });
  return password;
}
