import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { login, sessionPrincipal, logout } from "../../app/accounts/auth.server.ts";
import { createApiToken, tokenPrincipal } from "../../app/accounts/tokens.server.ts";
import { can } from "../../app/platform/permissions.server.ts";
import { seedDemo, DEMO_USERS } from "../../app/studies/demo-seed.server.ts";
import { runCommand } from "../../app/platform/commands.server.ts";
import { ServiceError } from "../../app/platform/errors.server.ts";
import { parsePayload } from "../../anchoring/log/payloads.ts";
import { toHex } from "../../anchoring/log/bytes.ts";

let t: TestDb;
const meta = { ip: "127.0.0.1", userAgent: "vitest" };
const PW = "amber otter winter forty-two";

beforeAll(async () => {
  t = await openTestDatabase();
});
afterAll(async () => {
  await t?.close();
});

describe(`services on ${engineUnderTest()}`, () => {
  it(
    "creates a study with sites, " + "writing one valid pending ledger entry per write in the same transaction",
    async () => {
      const { study, sites } = await createStudy(
        t.ctx,
        {
          code: "S-100",
          title: "Study 100",
          sites: [
            { code: "A", name: "Site A" },
            { code: "B", name: "Site B" },
          ],
        },
        null,
      );
      expect(sites.map((s) => s.code)).toEqual(["A", "B"]);
      const entries = await t.database.execute(
        `SELECT kind, payload_text, encode(payload_hash, 'hex') AS h, status FROM ledger_entries ` +
          `WHERE study_id = '${study.id}' ORDER BY kind`,
      );
      // ... and its audit-trail event (study.create), sealed with them (ADR 0016).
      expect(entries.map((e) => e.kind)).toEqual(["audit.event", "site.added", "site.added", "study.registered"]);
      for (const e of entries) {
        expect(e.status).toBe("pending");
        const payload = JSON.parse(String(e.payload_text));
        expect(parsePayload(String(e.kind), payload).success).toBe(true);
        expect(toHex(t.ctx.crypto.sha256(new TextEncoder().encode(String(e.payload_text))))).toBe(e.h);
      }
    },
  );

  it("rejects a duplicate study code and bad input with a specific error, storing nothing", async () => {
    const before = await t.database.execute(`SELECT count(*)::int AS n FROM ledger_entries`);
    await expect(
      createStudy(t.ctx, { code: "S-100", title: "again", sites: [{ code: "A", name: "A" }] }, null),
    ).rejects.toMatchObject({ code: "conflict", field: "code" });
    await expect(
      createStudy(t.ctx, { code: "bad code", title: "x", sites: [{ code: "A", name: "A" }] }, null),
    ).rejects.toMatchObject({ code: "invalid", field: "code" });
    await expect(createStudy(t.ctx, { code: "S-101", title: "x", sites: [] }, null)).rejects.toMatchObject({
      code: "invalid",
      field: "sites",
    });
    const after = await t.database.execute(`SELECT count(*)::int AS n FROM ledger_entries`);
    expect(after[0].n).toBe(before[0].n);
  });

  it("creates users with study roles and refuses incomplete role assignments", async () => {
    const u = await createUser(
      t.ctx,
      { email: "Coord@Example.test", fullName: "C", password: PW, role: "coordinator", study: "S-100", site: "A" },
      null,
    );
    expect(u.email).toBe("coord@example.test");
    expect(u.passwordHash).toMatch(/^\$argon2id\$/);
    await expect(
      createUser(
        t.ctx,
        { email: "c2@example.test", fullName: "C", password: PW, role: "coordinator", study: "S-100" },
        null,
      ),
    ).rejects.toMatchObject({ field: "site" });
    await expect(
      createUser(t.ctx, { email: "c3@example.test", fullName: "C", password: PW, role: "monitor" }, null),
    ).rejects.toMatchObject({ field: "study" });
    await expect(
      createUser(t.ctx, { email: "c4@example.test", fullName: "C", password: "short", role: "admin" }, null),
    ).rejects.toMatchObject({ field: "password" });
    await expect(
      createUser(t.ctx, { email: "coord@example.test", fullName: "C", password: PW, role: "admin" }, null),
    ).rejects.toMatchObject({ code: "conflict" });
    await expect(
      createUser(
        t.ctx,
        { email: "c5@example.test", fullName: "C", password: PW, role: "coordinator", study: "S-100", site: "Z" },
        null,
      ),
    ).rejects.toMatchObject({ code: "not_found" });
  });

  it("signs in with the right password only, keeps sessions server-side and ends them on logout", async () => {
    await expect(login(t.ctx, "coord@example.test", "wrong password!!", meta)).rejects.toThrow(ServiceError);
    await expect(login(t.ctx, "nobody@example.test", PW, meta)).rejects.toThrow("email or password is incorrect");
    const { token } = await login(t.ctx, "COORD@example.test", PW, meta);
    const p = await sessionPrincipal(t.ctx, token);
    expect(p?.email).toBe("coord@example.test");
    expect(p?.memberships.map((m) => [m.role, m.studyCode, m.siteCode])).toEqual([["coordinator", "S-100", "A"]]);
    // The database holds only the token's hash.
    const rows = await t.database.execute(`SELECT encode(token_hash, 'hex') AS h FROM sessions`);
    expect(rows.some((r) => String(r.h).includes(Buffer.from(token).toString("hex")))).toBe(false);
    await logout(t.ctx, token, meta);
    expect(await sessionPrincipal(t.ctx, token)).toBeNull();
    const events = await t.database.execute(
      `SELECT action, outcome FROM audit_events WHERE action IN ('login','logout') ORDER BY id`,
    );
    expect(events.map((e) => `${e.action}:${e.outcome}`)).toEqual([
      "login:failure",
      "login:failure",
      "login:success",
      "logout:success",
    ]);
  });

  it("scopes permissions by study, role and site", async () => {
    const { token } = await login(t.ctx, "coord@example.test", PW, meta);
    const p = (await sessionPrincipal(t.ctx, token))!;
    const [s] = await t.database.execute(
      `SELECT s.id AS study, a.id AS a, b.id AS b FROM studies s JOIN sites a ` +
        `ON a.study_id = s.id AND a.code = 'A' JOIN sites b ON b.study_id = s.id AND b.code = 'B' ` +
        `WHERE s.code = 'S-100'`,
    );
    const study = String(s.study);
    expect(can(p, "records.enter", { studyId: study, siteId: String(s.a) })).toBe(true);
    expect(can(p, "records.enter", { studyId: study, siteId: String(s.b) })).toBe(false);
    expect(can(p, "records.sign", { studyId: study, siteId: String(s.a) })).toBe(false);
    expect(can(p, "study.manage", { studyId: study })).toBe(false);
    expect(can(p, "study.view", { studyId: "00000000-0000-4000-8000-000000000000" })).toBe(false);
  });

  it("creates API tokens stored only as hashes, scoped to one study", async () => {
    const out = await runCommand(t.ctx, "tokens.create", { study: "S-100", name: "edc" });
    expect(out.exitCode ?? 0).toBe(0);
    const token = out.stdout.trim();
    expect(token).toMatch(/^ts_[A-Za-z0-9_-]{43}$/);
    const p = await tokenPrincipal(t.ctx, token);
    expect(p?.memberships.every((m) => m.studyCode === "S-100")).toBe(true);
    expect(await tokenPrincipal(t.ctx, token.slice(0, -1) + (token.endsWith("A") ? "B" : "A"))).toBeNull();
    const stored = await t.database.execute(`SELECT token_prefix FROM api_tokens`);
    expect(stored.map((r) => r.token_prefix)).toEqual([token.slice(0, 10)]);
    const bad = await runCommand(t.ctx, "tokens.create", { study: "NOPE", name: "edc" });
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toBe("trialseal: no study NOPE\n");
    const created = await createApiToken(t.ctx, { study: "S-100", name: "second" }, null);
    expect(created.token).not.toBe(token);
  });

  it("seeds the demo study once: site, consent document, forms, records, pre-commitment, a user per role", async () => {
    const password = await seedDemo(t.ctx, { password: "demo-password-for-tests" });
    expect(password).toBe("demo-password-for-tests");
    expect(await seedDemo(t.ctx)).toBeNull();
    const forms = await t.database.execute(
      `SELECT f.code, f.version, f.status, f.approval_entry_id IS NOT NULL AS sealed FROM forms f ` +
        `JOIN studies s ON s.id = f.study_id WHERE s.code = 'DEMO-001' ORDER BY code, version`,
    );
    expect(forms).toEqual([
      { code: "AE", version: 1, status: "approved", sealed: true },
      { code: "DEMOG", version: 1, status: "approved", sealed: true },
      { code: "DEMOG", version: 2, status: "approved", sealed: true },
      { code: "VITALS", version: 1, status: "approved", sealed: true },
      { code: "VITALS", version: 2, status: "approved", sealed: true },
    ]);
    // The demo's records show the form model (issue 17): no data for the first two subjects.
    const recs = (await t.database.execute(
      `SELECT p.subject_code AS subject, r.form_code AS form, r.instance, v.data_text, v.missing_text,
              v.calculated_text
         FROM records r JOIN participants p ON p.id = r.participant_id
         JOIN record_versions v ON v.record_id = r.id
         JOIN studies s ON s.id = r.study_id WHERE s.code = 'DEMO-001'
        ORDER BY p.subject_code, r.form_code, r.instance`,
    )) as Record<string, any>[];
    expect(recs.map((r) => [r.subject, r.form, r.instance])).toEqual([
      ["SITE-01-003", "DEMOG", 1],
      ["SITE-01-003", "VITALS", 1],
      ["SITE-01-004", "AE", 1],
      ["SITE-01-004", "AE", 2],
      ["SITE-01-004", "DEMOG", 1],
      ["SITE-01-004", "VITALS", 1],
      ["SITE-01-007", "VITALS", 1],
      ["SITE-01-008", "VITALS", 1],
      ["SITE-01-009", "VITALS", 1],
    ]);
    const vitals = recs.find((r) => r.subject === "SITE-01-003" && r.form === "VITALS")!;
    expect(JSON.parse(vitals.calculated_text)).toEqual({ bmi: 22.7 });
    expect(JSON.parse(vitals.missing_text)).toEqual({
      temp: { code: "NOT_DONE", reason: "Thermometer out of service at the screening visit" },
    });
    const manDemog = recs.find((r) => r.subject === "SITE-01-004" && r.form === "DEMOG")!;
    expect(JSON.parse(manDemog.data_text)).not.toHaveProperty("pregnant");
    const serious = recs.find((r) => r.form === "AE" && r.instance === 2)!;
    expect(JSON.parse(serious.data_text)).toMatchObject({ serious: true, hosp_date: expect.any(String) });
    const queries = await t.database.execute(
      `SELECT q.field, q.text FROM queries q JOIN studies s ON s.id = q.study_id WHERE s.code = 'DEMO-001'`,
    );
    expect(queries).toEqual([
      { field: "sbp", text: "Systolic BP 172 mmHg is outside the expected range 90–160 mmHg (confirmed at entry)" },
    ]);
    const docs = await t.database.execute(
      `SELECT d.status FROM consent_documents d JOIN studies s ON s.id = d.study_id WHERE s.code = 'DEMO-001'`,
    );
    expect(docs).toEqual([{ status: "approved" }]);
    // Pre-commitment (issue 20): protocol and SAP 1.0, the outcome list sealed before the first enrolment, the public
    // page published, a committed list with every enrolled, consented participant randomized; no lock, blinded.
    const q = (text: string) =>
      t.database.execute(text.replaceAll("$S", "(SELECT id FROM studies WHERE code = 'DEMO-001')"));
    expect(await q(`SELECT type, version FROM study_documents WHERE study_id = $S ORDER BY type`)).toEqual([
      { type: "protocol", version: "1.0" },
      { type: "sap", version: "1.0" },
    ]);
    expect(await q(`SELECT count(*)::int AS n FROM document_site_approvals WHERE study_id = $S`)).toEqual([{ n: 1 }]);
    expect(await q(`SELECT version, after_first_enrolment AS late FROM sap_outcome_sets WHERE study_id = $S`)).toEqual([
      { version: 1, late: false },
    ]);
    expect(await q(`SELECT published FROM study_registrations WHERE study_id = $S`)).toEqual([{ published: true }]);
    expect(
      await q(`SELECT count(*)::int AS n FROM randomization_lists WHERE study_id = $S AND committed_at IS NOT NULL`),
    ).toEqual([{ n: 1 }]);
    const allocated = await q(
      `SELECT p.subject_code AS subject, p.disposition FROM randomization_allocations a
         JOIN participants p ON p.id = a.participant_id WHERE a.study_id = $S ORDER BY p.subject_code`,
    );
    expect(allocated).toEqual(
      ["SITE-01-001", "SITE-01-002", "SITE-01-003", "SITE-01-004"].map((subject) => ({
        subject,
        disposition: "randomized",
      })),
    );
    expect(await q(`SELECT count(*)::int AS n FROM database_locks WHERE study_id = $S`)).toEqual([{ n: 0 }]);
    expect(await q(`SELECT count(*)::int AS n FROM randomization_unblindings WHERE study_id = $S`)).toEqual([{ n: 0 }]);
    // The drug supply (issue 21): three lots released (one recalled), two shipments received (one quarantined, no
    // decision yet), a kit dispensed to each randomized participant, one returned and destroyed with a witness.
    expect(
      await q(`SELECT l.lot_number AS lot, (r.id IS NOT NULL) AS released, (c.id IS NOT NULL) AS recalled
        FROM supply_lots l LEFT JOIN supply_lot_releases r ON r.lot_id = l.id
        LEFT JOIN supply_lot_recalls c ON c.lot_id = l.id WHERE l.study_id = $S ORDER BY l.lot_number`),
    ).toEqual([
      { lot: "LOT-2605-A", released: true, recalled: true },
      { lot: "LOT-2609-A", released: true, recalled: false },
      { lot: "LOT-2609-B", released: true, recalled: false },
    ]);
    expect(await q(`SELECT excursion FROM supply_shipment_receipts WHERE study_id = $S ORDER BY excursion`)).toEqual([
      { excursion: false },
      { excursion: true },
    ]);
    expect(await q(`SELECT count(*)::int AS n FROM supply_quarantine_decisions WHERE study_id = $S`)).toEqual([
      { n: 0 },
    ]);
    // Each dispensed kit is of its participant's allocated kit type.
    expect(
      await q(`SELECT p.subject_code AS subject, (k.kit_type = s.kit_type) AS matches FROM supply_dispensings d
        JOIN supply_kits k ON k.id = d.kit_id JOIN participants p ON p.id = d.participant_id
        JOIN randomization_allocations a ON a.id = d.allocation_id JOIN randomization_slots s ON s.id = a.slot_id
        WHERE d.study_id = $S ORDER BY p.subject_code`),
    ).toEqual(allocated.map((a) => ({ subject: a.subject, matches: true })));
    expect(
      await q(`SELECT (SELECT count(*)::int FROM supply_returns WHERE study_id = $S) AS returns,
        (SELECT count(*)::int FROM supply_destruction_witnesses WHERE study_id = $S) AS witnessed,
        (SELECT count(*)::int FROM supply_reconciliations WHERE study_id = $S) AS reconciliations`),
    ).toEqual([{ returns: 1, witnessed: 1, reconciliations: 1 }]);
    // Data sharing (issue 22): 007 to 009 signed electronically with future research, 008 said no afterwards on
    // their page; the researcher's DSRCH request was approved and delivered with 007 and 009.
    expect(
      await q(`SELECT p.subject_code AS subject, c.choices, c.by_participant AS "byParticipant"
        FROM consent_choice_changes c JOIN participants p ON p.id = c.participant_id WHERE c.study_id = $S`),
    ).toEqual([{ subject: "SITE-01-008", choices: { future_research: false }, byParticipant: true }]);
    expect(
      await q(`SELECT r.purpose, d.outcome, v.participant_count AS n, v.excluded
        FROM data_use_requests r JOIN data_use_decisions d ON d.request_id = r.id
        JOIN data_use_deliveries v ON v.request_id = r.id WHERE r.study_id = $S`),
    ).toEqual([{ purpose: "DSRCH", outcome: "approved", n: 2, excluded: { declined: 1, withdrawn: 0, notAsked: 6 } }]);
    expect(
      await q(`SELECT p.subject_code AS subject FROM data_use_delivery_participants m
        JOIN participants p ON p.id = m.participant_id WHERE p.study_id = $S ORDER BY 1`),
    ).toEqual([{ subject: "SITE-01-007" }, { subject: "SITE-01-009" }]);
    for (const u of DEMO_USERS) {
      const { token, stage } = await login(t.ctx, u.email, "demo-password-for-tests", meta);
      // Admins, investigators and regulators must enrol a second factor before anything else.
      const mfa = [
        "admin",
        "investigator",
        "regulator",
        "unblinded_statistician",
        "unblinded_pharmacist",
        "depot_manager",
        "data_access_committee",
      ].includes(u.role);
      expect(stage, u.email).toBe(mfa ? "enroll" : "full");
      expect((await sessionPrincipal(t.ctx, token))?.email ?? null).toBe(mfa ? null : u.email);
    }
  });
});
