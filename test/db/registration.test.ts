/**
 * The public registration page (issue 20, ADR 0050) on PGlite and PostgreSQL: published and withdrawn by the
 * sponsor (row + entry + audit event), 404 (page and JSON) unless published; what it shows (sealed hashes, commit
 * times, anchors, outcome history with changes after first enrolment flagged) and what it never shows (participants,
 * staff, sites, free-text reasons, file names); a document row altered behind the log is not offered as registered;
 * the integrity audit names study_registrations rows changed, deleted and inserted behind the log.
 */
import { randomBytes } from "node:crypto";
import path from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeSigner } from "../../anchoring/adapters/crypto-node.ts";
import { LocalLedger } from "../../anchoring/adapters/local-ledger-file.ts";
import { anchorOnce } from "../../app/anchor-worker/anchor-worker.server.ts";
import { type AuditReport, runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import { checkVerdict } from "../../app/registration/pdf-check.tsx";
import { seedDemoOutcomesAndRegistration } from "../../app/registration/demo.server.ts";
import { publicRegistry } from "../../app/registration/public-registry.server.ts";
import { registrationPage, setRegistration } from "../../app/registration/registration.server.ts";
import { loader as jsonLoader } from "../../app/routes/public/registry.$code[.json].ts";
import { loader as pageLoader } from "../../app/routes/public/registry.$code.tsx";
import { createStudy } from "../../app/studies/studies.server.ts";
import { setOutcomes } from "../../app/study-documents/sap-outcomes.server.ts";
import { engineUnderTest, openTestDatabase, type TestDb } from "../helpers/db.ts";
import { insertStudyDocument, tinyPdf } from "../helpers/study-document-rows.ts";
import { createStaff } from "../helpers/study-staff.ts";

let t: TestDb;
let p: Record<string, Principal>;
let ids: Record<string, string>;
let studyId: string;
const rows = async (q: string) => (await t.database.execute(q)) as Record<string, unknown>[];
const tamperFindings = (r: AuditReport) => r.findings.filter((f) => f.severity === "tamper");
const audit = async () => tamperFindings(await runIntegrityAudit(t.ctx, { study: "REG-1" }));
async function tamper(statements: string[]) {
  await t.ctx.db.transaction(async (tx) => {
    await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
    for (const s of statements) await tx.execute(sql.raw(s));
  });
}
const args = (code: string) =>
  ({
    request: new Request(`http://portal.test/registry/${code}`),
    context: { ctx: t.ctx },
    params: { code },
  }) as never;
const OUTCOME = {
  type: "primary",
  name: "Change in HbA1c",
  measure: "HbA1c (%)",
  timePoint: "Week 26",
  analysis: "ANCOVA",
};
const PROTOCOL_1 = tinyPdf("protocol 1.0");
const PROTOCOL_2 = tinyPdf("protocol 2.0");

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(
    t.ctx,
    { code: "REG-1", title: "Registered trial", sites: [{ code: "BER", name: "Charité Mitte" }] },
    null,
  );
  const s = await createStaff(t.ctx, "REG-1", "reg.test", [
    ["sponsoradmin", "admin"],
    ["investigatorwho", "investigator", "BER"],
  ]);
  p = s.principals;
  ids = s.userIds;
  studyId = String((await rows(`SELECT id FROM studies WHERE code = 'REG-1'`))[0].id);
  t.ctx.ledgers = [
    {
      ledger: new LocalLedger({
        name: "local",
        ledgerId: "test/local",
        dir: path.join(t.ctx.env.dataDir, "ledger"),
        signer: nodeSigner(new Uint8Array(randomBytes(32))),
        crypto: t.ctx.crypto,
      }),
      intervalMs: 200,
    },
  ];
});
afterAll(async () => {
  await t?.close();
});

describe(`public registration page on ${engineUnderTest()}`, () => {
  it("is not found (page and JSON) until published; only registration.manage switches it", async () => {
    expect(await publicRegistry(t.ctx, "REG-1")).toBeNull();
    expect(await publicRegistry(t.ctx, "NOPE")).toBeNull();
    const res = (await jsonLoader(args("REG-1"))) as Response;
    expect(res.status).toBe(404);
    const thrown = await Promise.resolve(pageLoader(args("REG-1"))).catch((e) => e);
    expect(thrown).toBeInstanceOf(Response);
    expect((thrown as Response).status).toBe(404);
    await expect(setRegistration(t.ctx, p.investigatorwho, "REG-1", { published: true })).rejects.toMatchObject({
      code: "forbidden",
    });
    await expect(setRegistration(t.ctx, p.sponsoradmin, "REG-1", { published: "yes" })).rejects.toMatchObject({
      code: "invalid",
      field: "published",
    });
    await expect(setRegistration(t.ctx, p.sponsoradmin, "REG-1", { published: false })).rejects.toMatchObject({
      code: "conflict",
      message: "The public page is not published.",
    });
    expect(await rows(`SELECT 1 FROM study_registrations`)).toHaveLength(0);
  });

  it("publishes and withdraws: row, sealed entry and audit event each time", async () => {
    await setRegistration(t.ctx, p.sponsoradmin, "REG-1", { published: true });
    expect((await registrationPage(t.ctx, studyId)).published).toBe(true);
    await expect(setRegistration(t.ctx, p.sponsoradmin, "REG-1", { published: true })).rejects.toMatchObject({
      code: "conflict",
    });
    expect(await publicRegistry(t.ctx, "REG-1")).not.toBeNull();
    await setRegistration(t.ctx, p.sponsoradmin, "REG-1", { published: false });
    expect(await publicRegistry(t.ctx, "REG-1")).toBeNull();
    await setRegistration(t.ctx, p.sponsoradmin, "REG-1", { published: true });
    const entries = await rows(
      `SELECT payload_text FROM ledger_entries WHERE kind = 'registration.published' ORDER BY at, id`,
    );
    expect(entries.map((e) => JSON.parse(String(e.payload_text)).published)).toEqual([true, false, true]);
    expect(JSON.parse(String(entries[0].payload_text)).actor).toBe(ids.sponsoradmin);
    const events = await rows(
      `SELECT action FROM audit_events WHERE action LIKE 'registration.%' AND study_id = '${studyId}' ORDER BY id`,
    );
    expect(events.map((e) => e.action)).toEqual([
      "registration.published",
      "registration.withdrawn",
      "registration.published",
    ]);
    const res = (await jsonLoader(args("REG-1"))) as Response;
    expect(res.status).toBe(200);
  });

  it("shows sealed hashes, commit times, anchors and the flagged outcome history, and nothing personal", async () => {
    await insertStudyDocument(t.ctx, "REG-1", ids.sponsoradmin, {
      type: "protocol",
      version: "1.0",
      content: PROTOCOL_1,
    });
    await insertStudyDocument(t.ctx, "REG-1", ids.sponsoradmin, { type: "sap", version: "1.0", content: tinyPdf("s") });
    await setOutcomes(t.ctx, p.sponsoradmin, "REG-1", { outcomes: [OUTCOME] });
    const enrolled = await enrollParticipant(t.ctx, p.investigatorwho, {
      study: "REG-1",
      site: "BER",
      personal: { fullName: "Erika Mustermann", email: "erika@example.org" },
    });
    await insertStudyDocument(t.ctx, "REG-1", ids.sponsoradmin, {
      type: "protocol",
      version: "2.0",
      content: PROTOCOL_2,
      replaces: "1.0",
      reason: `safety finding in ${enrolled.subjectCode} at Charité Mitte`,
    });
    await setOutcomes(t.ctx, p.sponsoradmin, "REG-1", {
      outcomes: [{ ...OUTCOME, timePoint: "Week 52" }],
      reason: `longer follow-up after ${enrolled.subjectCode}'s event`,
    });
    await sealAll(t.ctx);
    await anchorOnce(t.ctx);

    const r = await publicRegistry(t.ctx, "REG-1");
    if (!r) throw new Error("published page missing");
    expect(r.study).toEqual({ code: "REG-1", title: "Registered trial" });
    expect(r.documents.map((d) => [d.type, d.version, d.replaces, d.matchesSeal])).toEqual([
      ["protocol", "1.0", null, true],
      ["protocol", "2.0", "1.0", true],
      ["sap", "1.0", null, true],
    ]);
    const p2 = r.documents[1];
    expect(p2.sha256).toBe(Buffer.from(t.ctx.crypto.sha256(PROTOCOL_2)).toString("hex"));
    expect(p2.seal.status).toBe("sealed");
    expect(p2.seal.sealedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(p2.seal.anchors.map((a) => a.ledger)).toEqual(["local"]);
    expect(p2.seal.anchors[0].at).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(r.outcomes.map((o) => [o.version, o.afterFirstEnrolment, o.reasonRecorded, o.matchesSeal])).toEqual([
      [1, false, false, true],
      [2, true, true, true],
    ]);
    expect(r.outcomes[1].changes).toEqual(['changed primary outcome "Change in HbA1c": time point']);
    expect(r.databaseLocks).toEqual([]);
    expect(r.unblindings).toEqual([]);
    expect(r.proofBundles).toBe("sign-in required");
    // The browser's verdict, from the page's own data.
    expect(checkVerdict(p2.sha256, r.documents)).toMatchObject({ registered: true });
    expect(checkVerdict(p2.sha256, r.documents).words).toContain("version 2.0 of the protocol, committed on ");
    expect(checkVerdict(p2.sha256, r.documents).words).toContain(
      "anchored in the deployment's own signed ledger (local) on ",
    );
    expect(p2.seal.anchors[0].words).toBe("the deployment's own signed ledger (local)");
    // The outcome list names the SAP it was sealed with; the SAP in force; no list committed yet.
    expect(r.sapInForce).toBe("1.0");
    expect(r.randomizationCommitted).toBeNull();
    expect(checkVerdict("0".repeat(64), r.documents)).toEqual({
      registered: false,
      words: "This file is not a registered version of any document of this study.",
    });

    // Nothing personal, in the page's data and in the JSON twin: no participant, staff, site, reason, file name.
    const res = (await jsonLoader(args("REG-1"))) as Response;
    const body = await res.text();
    expect(JSON.parse(body)).toEqual(JSON.parse(JSON.stringify(r)));
    const users = await rows(`SELECT id, email, full_name FROM users`);
    const forbidden = [
      enrolled.subjectCode,
      enrolled.id,
      "Erika",
      "erika@example.org",
      "BER",
      "Charité",
      "safety finding",
      "longer follow-up",
      "protocol-1.0.pdf",
      ...users.flatMap((u) => [String(u.id), String(u.email), String(u.full_name)]),
    ];
    for (const s of forbidden) expect(body, s).not.toContain(s);
  });

  it("does not offer a document whose row was altered behind the log as registered", async () => {
    const [row] = await rows(`SELECT id FROM study_documents WHERE type = 'protocol' AND version = '1.0'`);
    const fake = Buffer.from(t.ctx.crypto.sha256(tinyPdf("a forged protocol"))).toString("hex");
    await tamper([`UPDATE study_documents SET sha256 = '\\x${fake}' WHERE id = '${row.id}'`]);
    const r = await publicRegistry(t.ctx, "REG-1");
    const doc = r?.documents.find((d) => d.version === "1.0" && d.type === "protocol");
    expect(doc?.matchesSeal).toBe(false);
    expect(doc?.sha256).toBe(Buffer.from(t.ctx.crypto.sha256(PROTOCOL_1)).toString("hex"));
    expect(checkVerdict(fake, r?.documents ?? []).registered).toBe(false);
    await tamper([
      `UPDATE study_documents SET sha256 = '\\x${Buffer.from(t.ctx.crypto.sha256(PROTOCOL_1)).toString("hex")}'
       WHERE id = '${row.id}'`,
    ]);
    expect((await publicRegistry(t.ctx, "REG-1"))?.documents.every((d) => d.matchesSeal)).toBe(true);
  });

  it("names every field changed behind the log (approving body, size, stored PDF), never as registered", async () => {
    const [row] = await rows(`SELECT id FROM study_documents WHERE type = 'protocol' AND version = '2.0'`);
    const sha = Buffer.from(t.ctx.crypto.sha256(PROTOCOL_2)).toString("hex");
    const doc = async () => {
      const r = await publicRegistry(t.ctx, "REG-1");
      const d = r?.documents.find((x) => x.type === "protocol" && x.version === "2.0");
      return { d, verdict: checkVerdict(sha, r?.documents ?? []) };
    };
    await tamper([`UPDATE study_documents SET approving_body = 'FDA' WHERE id = '${row.id}'`]);
    let got = await doc();
    expect([got.d?.matchesSeal, got.d?.differences, got.verdict.registered]).toEqual([
      false,
      ["approving body"],
      false,
    ]);
    // The page says so in words, naming the field.
    const thrown = await Promise.resolve(pageLoader(args("REG-1")));
    expect(
      ((await (thrown as Response).json()) as { documents: { differences: string[] }[] }).documents,
    ).toContainEqual(expect.objectContaining({ differences: ["approving body"], approvingBody: "FDA" }));
    await tamper([
      `UPDATE study_documents SET approving_body = 'Ethics Committee of the test university', bytes = bytes + 1
       WHERE id = '${row.id}'`,
    ]);
    got = await doc();
    expect([got.d?.matchesSeal, got.d?.differences, got.verdict.registered]).toEqual([false, ["size"], false]);
    await tamper([
      `UPDATE study_documents SET bytes = bytes - 1, content = '\\x255044462d312e340a2520666f72676564'
       WHERE id = '${row.id}'`,
    ]);
    got = await doc();
    expect([got.d?.matchesSeal, got.d?.differences, got.verdict.registered]).toEqual([false, ["stored PDF"], false]);
    await tamper([
      `UPDATE study_documents SET content = '\\x${Buffer.from(PROTOCOL_2).toString("hex")}' WHERE id = '${row.id}'`,
    ]);
    got = await doc();
    expect([got.d?.matchesSeal, got.d?.differences, got.verdict.registered]).toEqual([true, [], true]);
  });

  it("the integrity audit names a study_registrations row changed, deleted or inserted behind the log", async () => {
    const regs = () => audit().then((f) => f.filter((x) => x.table === "study_registrations"));
    expect(await regs()).toEqual([]);
    const [first] = await rows(`SELECT * FROM study_registrations ORDER BY created_at, id LIMIT 1`);
    await tamper([`UPDATE study_registrations SET published = false WHERE id = '${first.id}'`]);
    expect((await regs()).map((x) => [x.code, x.id, x.field])).toEqual([["DATA_ROW_MISMATCH", first.id, "published"]]);
    await tamper([`UPDATE study_registrations SET actor_user_id = '${ids.investigatorwho}' WHERE id = '${first.id}'`]);
    expect((await regs()).map((x) => x.field)).toEqual(["published", "actor"]);
    await tamper([
      `UPDATE study_registrations SET published = true, actor_user_id = '${ids.sponsoradmin}' WHERE id = '${first.id}'`,
    ]);
    expect(await regs()).toEqual([]);
    await tamper([`DELETE FROM study_registrations WHERE id = '${first.id}'`]);
    expect((await regs()).map((x) => x.code)).toEqual(["DATA_ROW_MISSING"]);
    await tamper([
      `INSERT INTO study_registrations (id, study_id, published, actor_user_id, created_at, entry_id)
       VALUES ('${first.id}', '${studyId}', true, '${ids.sponsoradmin}', now(), '${first.entry_id}')`,
    ]);
    expect(await regs()).toEqual([]);
    // A page switched off behind the log: a row with no entry of its own.
    await tamper([
      `INSERT INTO study_registrations (study_id, published, actor_user_id, created_at, entry_id)
       VALUES ('${studyId}', false, '${ids.sponsoradmin}', now() + interval '1 minute',
       (SELECT id FROM ledger_entries WHERE kind = 'participant.enrolled'))`,
    ]);
    expect((await regs()).map((x) => x.code)).toEqual(["DATA_ROW_UNLOGGED"]);
    expect(await audit()).toHaveLength(1);
  });

  it("the demo seed sets 1 primary and 2 secondary outcomes and publishes the page, once", async () => {
    await createStudy(t.ctx, { code: "REG-DEMO", title: "Demo", sites: [{ code: "S1", name: "One" }] }, null);
    const demoStaff = await createStaff(t.ctx, "REG-DEMO", "regdemo.test", [["admin", "admin"]]);
    const admin = demoStaff.principals.admin;
    await expect(seedDemoOutcomesAndRegistration(t.ctx, admin, "REG-DEMO")).rejects.toMatchObject({
      message: expect.stringContaining("upload the statistical analysis plan first"),
    });
    await insertStudyDocument(t.ctx, "REG-DEMO", demoStaff.userIds.admin, {
      type: "sap",
      version: "1",
      content: tinyPdf("d"),
    });
    await seedDemoOutcomesAndRegistration(t.ctx, admin, "REG-DEMO");
    await seedDemoOutcomesAndRegistration(t.ctx, admin, "REG-DEMO");
    const r = await publicRegistry(t.ctx, "REG-DEMO");
    expect(r?.outcomes).toHaveLength(1);
    expect(r?.outcomes[0].outcomes.map((o) => o.type)).toEqual(["primary", "secondary", "secondary"]);
    expect(r?.sapInForce).toBe("1");
    // A newer SAP in force, the outcome list left as it was: the page says which SAP sealed it (page data and JSON).
    await insertStudyDocument(t.ctx, "REG-DEMO", demoStaff.userIds.admin, {
      type: "sap",
      version: "1.1",
      content: tinyPdf("sap 1.1"),
      replaces: "1",
      reason: "typo",
    });
    const newer = await publicRegistry(t.ctx, "REG-DEMO");
    expect(newer?.outcomes.at(-1)?.sapVersion).toBe("1");
    expect(newer?.sapInForce).toBe("1.1");
    const j = JSON.parse(await ((await jsonLoader(args("REG-DEMO"))) as Response).text());
    expect(j.sapInForce).toBe("1.1");
    expect(j.randomizationCommitted).toBeNull();
  });
});
