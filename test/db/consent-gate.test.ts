/**
 * Issue 15 item 11, "CRF data before consent" (ADR 0021), on PGlite and PostgreSQL: no record (service, page action
 * and API) for a participant without a complete consent, with a 409 naming the participant and the reason; the
 * study's forms allowed before consent (pre-screening) as a sealed settings change (service and CLI); consent on
 * paper (the scan's SHA-256 sealed as it streams in, attested by another investigator of the site); the review
 * page's list of data recorded before consent.
 */
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { createApiToken } from "../../app/accounts/tokens.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { addConsentDocument, importForm } from "../../app/records/forms.server.ts";
import { correctRecord, saveRecord } from "../../app/records/records.server.ts";
import { consentStatus } from "../../app/consent/status.server.ts";
import { attestPaperConsent, hashScan, recordPaperConsent } from "../../app/consent/paper-consent.server.ts";
import { setFormsBeforeConsent, studySettingsOf } from "../../app/studies/settings.server.ts";
import { studyReview } from "../../app/integrity-audit/review.server.ts";
import { runCommand } from "../../app/platform/commands.server.ts";
import { parsePayload } from "../../anchoring/log/payloads.ts";
import { action as recordsAction } from "../../app/routes/api/api.v1.studies.$code.records.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import { runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { sql } from "drizzle-orm";

const PW = "amber otter winter forty-two";
const meta = { ip: "127.0.0.1", userAgent: "test" };
const DOC = "# Consent\n\n## Purpose\nWhy.\n";
let t: TestDb;
let token: string;
const p: Record<string, Principal> = {};

const scanOf = (text: string) => hashScan(Readable.from([Buffer.from(text)]));
const count = async (sql: string) => Number((await t.database.execute(sql))[0].n);
const entries = async (kind: string) =>
  (await t.database.execute(`SELECT payload_text FROM ledger_entries WHERE kind = '${kind}' ORDER BY at`)).map(
    (r) => JSON.parse(String(r.payload_text)) as Record<string, unknown>,
  );

beforeAll(async () => {
  t = await openTestDatabase();
  t.ctx.env = { ...t.ctx.env, apiRatePerSecond: 100_000 };
  await createStudy(
    t.ctx,
    {
      code: "GATE-1",
      title: "Consent gate",
      sites: [
        { code: "S1", name: "1" },
        { code: "S2", name: "2" },
      ],
    },
    null,
  );
  for (const [k, role, site] of [
    ["admin", "admin", undefined],
    ["inv", "investigator", "S1"],
    ["inv2", "investigator", "S1"],
    ["invS2", "investigator", "S2"],
    ["coord", "coordinator", "S1"],
  ] as const) {
    const u = await createUser(
      t.ctx,
      {
        email: `${k}@gate.test`,
        fullName: `${k} person`,
        password: PW,
        role,
        study: role === "admin" ? undefined : "GATE-1",
        site,
      },
      null,
    );
    p[k] = (await principalForUser(t.ctx, u.id))!;
  }
  await addConsentDocument(t.ctx, p.admin, "GATE-1", {
    code: "ICF",
    version: "1.0",
    title: "Consent",
    bodyMarkdown: DOC,
    irbName: "Test IRB",
    irbApprovedOn: "2026-01-01",
  });
  for (const code of ["VITALS", "PRESCREEN"])
    await importForm(
      t.ctx,
      "GATE-1",
      {
        code,
        title: code,
        version: 1,
        visits: ["SCREENING", "WEEK4"],
        fields: [{ name: "sbp", label: "SBP", type: "number", integer: true, min: 50, max: 250 }],
      },
      { actorId: null },
    );
  token = (await createApiToken(t.ctx, { study: "GATE-1", name: "edc" }, null)).token;
});
afterAll(async () => {
  await t?.close();
});

async function enrol(site = "S1") {
  return (await enrollParticipant(t.ctx, site === "S1" ? p.inv : p.invS2, { study: "GATE-1", site })).subjectCode;
}
const rec = (subject: string, form = "VITALS", visit = "SCREENING") => ({ subject, form, visit, data: { sbp: 120 } });

describe(`CRF data before consent on ${engineUnderTest()}`, () => {
  it("refuses a record for a subject without consent (service and API: 409, naming them); stores nothing", async () => {
    const subject = await enrol();
    const before = await count("SELECT count(*)::int AS n FROM ledger_entries");
    await expect(saveRecord(t.ctx, p.inv, "GATE-1", rec(subject))).rejects.toMatchObject({
      code: "conflict",
      field: "subject",
      message: expect.stringMatching(
        new RegExp(`^subject ${subject} has not consented yet: no CRF data may be recorded before a complete consent`),
      ),
    });
    const res = await recordsAction({
      request: new Request("http://portal.test/api/v1/studies/GATE-1/records", {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(rec(subject)),
      }),
      context: { ctx: t.ctx },
      params: { code: "GATE-1" },
    } as never);
    expect(res.status).toBe(409);
    const body = await res.json();
    expect(body.error).toMatchObject({ code: "conflict", field: "subject" });
    expect(body.error.message).toContain(`subject ${subject} has not consented yet`);
    expect(await count("SELECT count(*)::int AS n FROM records")).toBe(0);
    expect(await count("SELECT count(*)::int AS n FROM ledger_entries")).toBe(before);
  });

  it(
    "paper consent: the scan is hashed and sealed, refused over the limit or empty; another investigator of the " +
      "site attests it; only then may data be recorded",
    async () => {
      const subject = await enrol();
      await expect(hashScan(Readable.from([Buffer.alloc(600), Buffer.alloc(600)]), 1024)).rejects.toMatchObject({
        code: "invalid",
        field: "scan",
      });
      await expect(scanOf("")).rejects.toMatchObject({ field: "scan", message: expect.stringMatching(/empty/) });
      const scan = await scanOf("scanned pages of the signed form");
      expect(scan).toEqual({
        sha256: t.ctx.crypto
          .sha256(new TextEncoder().encode("scanned pages of the signed form"))
          .reduce((s, b) => s + b.toString(16).padStart(2, "0"), ""),
        bytes: 32,
      });
      await expect(
        recordPaperConsent(t.ctx, p.inv, "GATE-1", subject, { document: "ICF", version: "9.9" }, scan),
      ).rejects.toMatchObject({ code: "invalid", field: "document" });
      // The coordinator has no consent delegation yet.
      await expect(
        recordPaperConsent(t.ctx, p.coord, "GATE-1", subject, { document: "ICF", version: "1.0" }, scan),
      ).rejects.toMatchObject({ code: "forbidden" });
      const paper = await recordPaperConsent(
        t.ctx,
        p.inv,
        "GATE-1",
        subject,
        { document: "icf", version: "1.0" },
        scan,
      );
      const st = await consentStatus(t.ctx, (await participantId(subject))!);
      expect(st.state).toBe("awaiting_attestation");
      await expect(saveRecord(t.ctx, p.inv, "GATE-1", rec(subject))).rejects.toMatchObject({
        code: "conflict",
        message: expect.stringMatching(new RegExp(`^subject ${subject}'s paper consent is awaiting an investigator`)),
      });

      // Not the uploader, not a coordinator, not an investigator of another site; the password is checked.
      await expect(
        attestPaperConsent(t.ctx, p.inv, "GATE-1", subject, paper.id, { password: PW }, meta),
      ).rejects.toMatchObject({ code: "forbidden", message: expect.stringMatching(/not be the person who uploaded/) });
      await expect(
        attestPaperConsent(t.ctx, p.coord, "GATE-1", subject, paper.id, { password: PW }, meta),
      ).rejects.toMatchObject({ code: "forbidden" });
      await expect(
        attestPaperConsent(t.ctx, p.invS2, "GATE-1", subject, paper.id, { password: PW }, meta),
      ).rejects.toMatchObject({ code: "forbidden" });
      await expect(
        attestPaperConsent(t.ctx, p.inv2, "GATE-1", subject, paper.id, { password: "not the password" }, meta),
      ).rejects.toMatchObject({ field: "password" });
      await attestPaperConsent(t.ctx, p.inv2, "GATE-1", subject, paper.id, { password: PW }, meta);
      await expect(
        attestPaperConsent(t.ctx, p.inv2, "GATE-1", subject, paper.id, { password: PW }, meta),
      ).rejects.toMatchObject({ code: "conflict" });
      const done = await consentStatus(t.ctx, (await participantId(subject))!);
      expect(done).toMatchObject({ state: "consented", summary: "consented ICF 1.0 (on paper)" });
      const saved = await saveRecord(t.ctx, p.inv, "GATE-1", rec(subject));
      expect(saved.version).toBe(1);

      const [scanned] = await entries("consent.paper_scanned");
      expect(scanned).toMatchObject({ paper: paper.id, subject, document: "ICF", version: "1.0" });
      expect(scanned.scanSha256).toBe(scan.sha256);
      const [attested] = await entries("consent.paper_attested");
      expect(attested).toMatchObject({ paper: paper.id, scanSha256: scan.sha256, investigator: p.inv2.userId });
      expect(parsePayload("consent.paper_attested", attested).success).toBe(true);
      // The row is append-only but for its one attestation.
      await expect(
        t.database.execute(`UPDATE paper_consents SET scan_sha256 = '\\x00' WHERE id = '${paper.id}'`),
      ).rejects.toThrow(/append-only/);
      await expect(t.database.execute(`DELETE FROM paper_consents WHERE id = '${paper.id}'`)).rejects.toThrow(
        /append-only/,
      );
    },
  );

  it(
    "allows named forms before consent as a sealed settings change (page service and CLI), lists them on the " +
      "review page, and refuses the other forms",
    async () => {
      await expect(
        setFormsBeforeConsent(t.ctx, p.inv, "GATE-1", { formsBeforeConsent: "PRESCREEN" }),
      ).rejects.toMatchObject({ code: "forbidden" });
      await expect(
        setFormsBeforeConsent(t.ctx, p.admin, "GATE-1", { formsBeforeConsent: "PRESCREEN, NOPE" }),
      ).rejects.toMatchObject({ code: "invalid", field: "formsBeforeConsent", message: expect.stringMatching(/NOPE/) });
      expect((await studySettingsOf(t.ctx, (await studyId())!)).formsBeforeConsent).toEqual([]);
      const bad = await runCommand(t.ctx, "studies.set", { study: "GATE-1", formsBeforeConsent: "NOPE" });
      expect(bad).toMatchObject({
        exitCode: 1,
        stderr: expect.stringMatching(/^trialseal: forms before consent: NOPE/),
      });
      const out = await runCommand(t.ctx, "studies.set", { study: "GATE-1", formsBeforeConsent: "prescreen" });
      expect(out.exitCode ?? 0).toBe(0);
      expect(out.stdout).toMatch(/^GATE-1 settings v1: forms before consent: PRESCREEN \(entry [0-9a-f-]{36}\)\n$/);
      const [changed] = await entries("study.settings_changed");
      expect(changed).toMatchObject({ version: 1, formsBeforeConsent: ["PRESCREEN"], actor: null });

      const subject = await enrol();
      const pre = await saveRecord(t.ctx, p.inv, "GATE-1", rec(subject, "PRESCREEN"));
      await expect(saveRecord(t.ctx, p.inv, "GATE-1", rec(subject, "VITALS"))).rejects.toMatchObject({
        code: "conflict",
        message: expect.stringMatching(/form VITALS is not allowed before consent in GATE-1/),
      });
      let review = await studyReview(t.ctx, p.admin, "GATE-1");
      expect(review.beforeConsent).toEqual([
        expect.objectContaining({
          record: pre.id,
          subject,
          form: "PRESCREEN",
          consentCompleteAt: null,
          why: "pre-screening form allowed before consent (study settings v1)",
        }),
      ]);
      // Consent completes later: the pre-screening record stays listed, with the time consent was complete.
      await giveCompleteConsent(t.ctx, "GATE-1", subject);
      await saveRecord(t.ctx, p.inv, "GATE-1", rec(subject, "VITALS"));
      review = await studyReview(t.ctx, p.admin, "GATE-1");
      expect(review.beforeConsent.map((x) => [x.subject, x.form])).toEqual([[subject, "PRESCREEN"]]);
      expect(review.beforeConsent[0].consentCompleteAt).not.toBeNull();

      // The page's setting back to none: pre-screening data are refused again.
      const s = await setFormsBeforeConsent(t.ctx, p.admin, "GATE-1", { formsBeforeConsent: [] });
      expect(s).toMatchObject({ version: 2, formsBeforeConsent: [], changedBy: "admin person" });
      const other = await enrol();
      await expect(saveRecord(t.ctx, p.inv, "GATE-1", rec(other, "PRESCREEN"))).rejects.toMatchObject({
        code: "conflict",
      });
      await expect(t.database.execute(`DELETE FROM study_settings`)).rejects.toThrow(/append-only/);
    },
  );

  it("requires consent to the current document version; corrections of earlier data are not gated", async () => {
    const subject = await enrol("S2");
    await giveCompleteConsent(t.ctx, "GATE-1", subject);
    const r = await saveRecord(t.ctx, p.invS2, "GATE-1", rec(subject));
    await addConsentDocument(t.ctx, p.admin, "GATE-1", {
      code: "ICF",
      version: "2.0",
      title: "Consent",
      bodyMarkdown: `${DOC}\nAmended.\n`,
      irbName: "Test IRB",
      irbApprovedOn: "2026-02-01",
    });
    await expect(saveRecord(t.ctx, p.invS2, "GATE-1", rec(subject, "VITALS", "WEEK4"))).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringMatching(new RegExp(`^subject ${subject} must re-consent to the current document version`)),
    });
    const c = await correctRecord(t.ctx, p.invS2, "GATE-1", r.id, { data: { sbp: 121 }, reason: "transcription" });
    expect(c.version).toBe(2);
    await giveCompleteConsent(t.ctx, "GATE-1", subject);
    expect((await saveRecord(t.ctx, p.invS2, "GATE-1", rec(subject, "VITALS", "WEEK4"))).version).toBe(1);
  });

  it("the integrity audit checks paper consent and settings rows against their entries", async () => {
    await sealAll(t.ctx);
    const rowFindings = async () =>
      (await runIntegrityAudit(t.ctx, { study: "GATE-1" })).findings
        .filter((f) => f.table === "paper_consents" || f.table === "study_settings")
        .map((f) => [f.code, f.table, f.field]);
    expect(await rowFindings()).toEqual([]);
    await t.ctx.db.transaction(async (tx) => {
      await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
      await tx.execute(sql.raw(`UPDATE study_settings SET forms_before_consent = '["VITALS"]' WHERE version = 2`));
      await tx.execute(sql.raw("UPDATE paper_consents SET scan_bytes = scan_bytes + 1"));
    });
    const found = await rowFindings();
    expect(found).toContainEqual(["DATA_ROW_MISMATCH", "study_settings", "formsBeforeConsent"]);
    expect(found).toContainEqual(["DATA_ROW_MISMATCH", "paper_consents", "scanBytes"]);
  });

  it("the integrity audit names a paper consent whose attestation differs from its paper_attested entry", async () => {
    const [current] = await t.database.execute(
      `SELECT version FROM consent_documents WHERE code = 'ICF' AND status = 'approved' ORDER BY created_at DESC`,
    );
    const version = String(current.version);
    const paperOf = async (attest: boolean) => {
      const subject = await enrol();
      const scan = await scanOf(`pages of ${subject}`);
      const pc = await recordPaperConsent(t.ctx, p.inv, "GATE-1", subject, { document: "ICF", version }, scan);
      if (attest) await attestPaperConsent(t.ctx, p.inv2, "GATE-1", subject, pc.id, { password: PW }, meta);
      return { subject, id: pc.id };
    };
    const altered = await paperOf(true);
    const forged = await paperOf(false);
    const undone = await paperOf(true);
    const moved = await paperOf(true);
    await sealAll(t.ctx);
    const attestFindings = async () =>
      (await runIntegrityAudit(t.ctx, { study: "GATE-1" })).findings
        .filter((f) => f.table === "paper_consents" && f.field !== "scanBytes")
        .map((f) => [f.code, f.id, f.field]);
    expect(await attestFindings()).toEqual([]);
    expect((await consentStatus(t.ctx, (await participantId(forged.subject))!)).state).toBe("awaiting_attestation");
    await t.ctx.db.transaction(async (tx) => {
      await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
      // Another investigator, another time; an attestation without an entry; an attestation undone; and the
      // attestation entry of another paper consent.
      await tx.execute(
        sql.raw(
          `UPDATE paper_consents SET attested_by = '${p.inv.userId}', attested_at = attested_at - interval '1 day'
            WHERE id = '${altered.id}'`,
        ),
      );
      await tx.execute(
        sql.raw(
          `UPDATE paper_consents SET attested_by = '${p.inv2.userId}', attested_at = now() WHERE id = '${forged.id}'`,
        ),
      );
      await tx.execute(
        sql.raw(
          `UPDATE paper_consents SET attested_by = NULL, attested_at = NULL, attest_entry_id = NULL
            WHERE id = '${undone.id}'`,
        ),
      );
      await tx.execute(
        sql.raw(
          `UPDATE paper_consents SET attest_entry_id = (SELECT attest_entry_id FROM paper_consents
            WHERE id = '${altered.id}') WHERE id = '${moved.id}'`,
        ),
      );
    });
    // The forged attestation opens the consent gate...
    expect((await consentStatus(t.ctx, (await participantId(forged.subject))!)).state).toBe("consented");
    // ...and the audit names each.
    const found = await attestFindings();
    expect(found).toContainEqual(["DATA_ROW_MISMATCH", altered.id, "attestedBy"]);
    expect(found).toContainEqual(["DATA_ROW_MISMATCH", altered.id, "attestedAt"]);
    expect(found).toContainEqual(["DATA_ROW_UNLOGGED", forged.id, "attestedAt"]);
    expect(found).toContainEqual(["DATA_ROW_MISMATCH", undone.id, "attestedAt"]);
    expect(found).toContainEqual(["DATA_ROW_MISMATCH", moved.id, "paper"]);
    expect(found).toContainEqual(["DATA_ROW_MISMATCH", moved.id, "attestedAt"]);
  });
});

async function participantId(subject: string) {
  const rows = await t.database.execute(`SELECT id FROM participants WHERE subject_code = '${subject}'`);
  return rows[0] ? String(rows[0].id) : null;
}
async function studyId() {
  const rows = await t.database.execute(`SELECT id FROM studies WHERE code = 'GATE-1'`);
  return rows[0] ? String(rows[0].id) : null;
}
