/**
 * The SAP's outcome list as data (issue 20, ADR 0049) on PGlite and PostgreSQL: versions sealed with the SAP version
 * in force, a reason required once a participant is enrolled (optional before), bad input refused naming the outcome
 * and field in words, the history in words; the integrity audit names rows changed, deleted and inserted behind the
 * log, and the named broken case "a SAP outcome changed after first enrolment without a reason".
 */
import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import { type AuditReport, runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import { appendEntry } from "../../app/log/append-entry.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { outcomesFromForm, outcomesText } from "../../app/study-documents/outcome-list.ts";
import { outcomeHistory, setOutcomes } from "../../app/study-documents/sap-outcomes.server.ts";
import { engineUnderTest, openTestDatabase, type TestDb } from "../helpers/db.ts";
import { insertStudyDocument, tinyPdf } from "../helpers/study-document-rows.ts";
import { createStaff } from "../helpers/study-staff.ts";

let t: TestDb;
let p: Record<string, Principal>;
let ids: Record<string, string>;
let studyId: string;
const rows = async (q: string) => (await t.database.execute(q)) as Record<string, unknown>[];
const tamperFindings = (r: AuditReport) => r.findings.filter((f) => f.severity === "tamper");
const audit = async () => tamperFindings(await runIntegrityAudit(t.ctx, { study: "OUT-1" }));
async function tamper(statements: string[]) {
  await t.ctx.db.transaction(async (tx) => {
    await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
    for (const s of statements) await tx.execute(sql.raw(s));
  });
}

const PRIMARY = {
  type: "primary",
  name: "Change in HbA1c",
  measure: "HbA1c (%) from central laboratory",
  timePoint: "Week 26",
  analysis: "ANCOVA adjusted for baseline HbA1c and site",
};
const SECONDARY = {
  type: "secondary",
  name: "Body weight",
  measure: "Weight (kg)",
  timePoint: "Week 26",
  analysis: "Mixed model for repeated measures",
};
const HYPO = {
  type: "secondary",
  name: "Hypoglycaemia",
  measure: "Number of events below 3.0 mmol/L",
  timePoint: "Weeks 0 to 26",
  analysis: "Negative binomial regression",
};

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(t.ctx, { code: "OUT-1", title: "Outcomes", sites: [{ code: "S1", name: "One" }] }, null);
  const s = await createStaff(t.ctx, "OUT-1", "out.test", [
    ["admin", "admin"],
    ["inv", "investigator", "S1"],
  ]);
  p = s.principals;
  ids = s.userIds;
  studyId = String((await rows(`SELECT id FROM studies WHERE code = 'OUT-1'`))[0].id);
});
afterAll(async () => {
  await t?.close();
});

describe(`SAP outcome list on ${engineUnderTest()}`, () => {
  it("is refused until a SAP is uploaded, and for a role that does not manage documents", async () => {
    await expect(setOutcomes(t.ctx, p.admin, "OUT-1", { outcomes: [PRIMARY] })).rejects.toMatchObject({
      code: "conflict",
      field: "sap",
      message: expect.stringContaining("upload the statistical analysis plan first"),
    });
    await insertStudyDocument(t.ctx, "OUT-1", ids.admin, { type: "sap", version: "1.0", content: tinyPdf("sap1") });
    await expect(setOutcomes(t.ctx, p.inv, "OUT-1", { outcomes: [PRIMARY] })).rejects.toMatchObject({
      code: "forbidden",
    });
  });

  it("refuses bad lists, naming the outcome and the field in words", async () => {
    const bad = async (outcomes: unknown, message: string, field?: string) => {
      const err = await setOutcomes(t.ctx, p.admin, "OUT-1", { outcomes }).catch((e) => e);
      expect(err).toMatchObject({ code: "invalid", message });
      if (field) expect(err.field).toBe(field);
    };
    await bad([], "outcomes: name at least one outcome", "outcomes");
    await bad("x", "outcomes: expected a list of outcomes");
    await bad([SECONDARY], "outcomes: name at least one primary outcome");
    await bad([PRIMARY, { ...SECONDARY, timePoint: "  " }], "outcome 2 time point: is empty", "o-1-timePoint");
    await bad([{ ...PRIMARY, type: "tertiary" }], "outcome 1 type: must be primary or secondary", "o-0-type");
    await bad([{ ...PRIMARY, analysis: "x".repeat(2001) }], "outcome 1 analysis: is longer than 2000 characters");
    await bad(
      [PRIMARY, { ...SECONDARY, name: "change in hba1c" }],
      'outcome 2 name: the name "change in hba1c" is used twice',
    );
    await bad([{ ...PRIMARY, extra: 1 }], "outcome 1: unknown extra");
    await bad(
      Array.from({ length: 201 }, (_, i) => ({ ...PRIMARY, name: `o${i}` })),
      "outcomes: at most 200 outcomes",
    );
    await expect(
      setOutcomes(t.ctx, p.admin, "OUT-1", { outcomes: [PRIMARY], reason: "x".repeat(2001) }),
    ).rejects.toMatchObject({ field: "reason" });
    expect(await rows(`SELECT 1 FROM sap_outcome_sets`)).toHaveLength(0);
  });

  it("reads a plain form: blank and removed rows are left out", () => {
    const list = outcomesFromForm([
      ["o-1-type", "secondary"],
      ["o-1-name", "B"],
      ["o-0-type", "primary"],
      ["o-0-name", "A"],
      ["o-2-type", "secondary"],
      ["o-2-name", " "],
      ["o-3-name", "C"],
      ["o-3-remove", "on"],
    ]);
    expect(list).toEqual([
      { type: "primary", name: "A" },
      { type: "secondary", name: "B" },
    ]);
  });

  it("seals versions before enrolment (reason optional) and requires a reason after, flagging them", async () => {
    const v1 = await setOutcomes(t.ctx, p.admin, "OUT-1", { outcomes: [PRIMARY, SECONDARY] });
    expect(v1).toMatchObject({ version: 1, sapVersion: "1.0", afterFirstEnrolment: false, count: 2 });
    const v2 = await setOutcomes(t.ctx, p.admin, "OUT-1", {
      outcomes: [PRIMARY, SECONDARY, HYPO],
      reason: "hypoglycaemia added at the DSMB's request",
    });
    expect(v2).toMatchObject({ version: 2, afterFirstEnrolment: false });
    await enrollParticipant(t.ctx, p.inv, { study: "OUT-1", site: "S1" });
    const err = await setOutcomes(t.ctx, p.admin, "OUT-1", { outcomes: [PRIMARY, HYPO], reason: "  " }).catch((e) => e);
    expect(err).toMatchObject({ code: "invalid", field: "reason" });
    expect(err.message).toBe(
      "reason: a participant is already enrolled, so a change to the outcome list needs a reason",
    );
    // A new SAP version: the next list is sealed with it.
    await insertStudyDocument(t.ctx, "OUT-1", ids.admin, {
      type: "sap",
      version: "2.0",
      content: tinyPdf("sap2"),
      replaces: "1.0",
    });
    const v3 = await setOutcomes(t.ctx, p.admin, "OUT-1", {
      outcomes: [{ ...PRIMARY, timePoint: "Week 52" }, HYPO],
      reason: "weight dropped: not collected after amendment 2",
    });
    expect(v3).toMatchObject({ version: 3, sapVersion: "2.0", afterFirstEnrolment: true });

    const [row] = await rows(`SELECT * FROM sap_outcome_sets WHERE version = 3`);
    const [e] = await rows(`SELECT payload_text FROM ledger_entries WHERE id = '${row.entry_id}'`);
    const payload = JSON.parse(String(e.payload_text));
    expect(row.outcomes_text).toBe(outcomesText([{ ...PRIMARY, timePoint: "Week 52" } as never, HYPO as never]));
    expect(payload).toMatchObject({
      outcomes: row.id,
      version: 3,
      count: 2,
      primary: 1,
      afterFirstEnrolment: true,
      actor: ids.admin,
      outcomesHash: saltedTextHash(t.ctx.crypto, payload.salt, String(row.outcomes_text)),
      reasonHash: saltedTextHash(t.ctx.crypto, payload.salt, "weight dropped: not collected after amendment 2"),
    });
    // Free text never enters the payload in clear.
    expect(String(e.payload_text)).not.toContain("HbA1c");
    expect(String(e.payload_text)).not.toContain("weight dropped");
    const events = await rows(`SELECT detail FROM audit_events WHERE action = 'sap.outcomes_set' ORDER BY id`);
    expect(events).toHaveLength(3);

    const h = await outcomeHistory(t.ctx, studyId);
    expect(h.map((x) => [x.version, x.sapVersion, x.afterFirstEnrolment])).toEqual([
      [1, "1.0", false],
      [2, "1.0", false],
      [3, "2.0", true],
    ]);
    expect(h[0].changes.map((c) => c.words)).toEqual([
      'added primary outcome "Change in HbA1c"',
      'added secondary outcome "Body weight"',
    ]);
    expect(h[1].changes.map((c) => c.words)).toEqual(['added secondary outcome "Hypoglycaemia"']);
    expect(h[2].changes.map((c) => c.words)).toEqual([
      'changed primary outcome "Change in HbA1c": time point',
      'removed secondary outcome "Body weight"',
    ]);
    expect(h[2].reason).toBe("weight dropped: not collected after amendment 2");
  });

  it("the integrity audit names a row changed, deleted or inserted behind the log", async () => {
    expect(await audit()).toEqual([]);
    const [v1] = await rows(`SELECT * FROM sap_outcome_sets WHERE version = 1`);
    const text = String(v1.outcomes_text);
    const named = async () => (await audit()).map((x) => [x.code, x.table, x.id, x.field]);
    await tamper([
      `UPDATE sap_outcome_sets SET outcomes_text = '${text.replace("Week 26", "Week 52")}' WHERE id = '${v1.id}'`,
    ]);
    expect(await named()).toEqual([["DATA_ROW_MISMATCH", "sap_outcome_sets", v1.id, "outcomesText"]]);
    await tamper([`UPDATE sap_outcome_sets SET outcomes_text = '${text}' WHERE id = '${v1.id}'`]);
    for (const [set, field] of [
      ["reason = 'made up later'", "reason"],
      ["after_first_enrolment = true", "afterFirstEnrolment"],
      ["actor_token_id = '00000000-0000-4000-8000-000000000001'", "token"],
    ]) {
      await tamper([`UPDATE sap_outcome_sets SET ${set} WHERE id = '${v1.id}'`]);
      expect(await named()).toEqual([["DATA_ROW_MISMATCH", "sap_outcome_sets", v1.id, field]]);
      await tamper([
        `UPDATE sap_outcome_sets SET reason = NULL, after_first_enrolment = false, actor_token_id = NULL
         WHERE id = '${v1.id}'`,
      ]);
    }
    expect(await audit()).toEqual([]);
    await tamper([`DELETE FROM sap_outcome_sets WHERE id = '${v1.id}'`]);
    const deleted = await audit();
    expect(deleted.map((x) => [x.code, x.table])).toEqual([["DATA_ROW_MISSING", "sap_outcome_sets"]]);
    await tamper([
      `INSERT INTO sap_outcome_sets (id, study_id, version, sap_document_id, outcomes_text, after_first_enrolment,
         reason, actor_user_id, created_at, entry_id)
       VALUES ('${v1.id}', '${studyId}', 1, '${v1.sap_document_id}', '${text}', false, NULL, '${ids.admin}',
         now(), '${v1.entry_id}')`,
    ]);
    expect(await audit()).toEqual([]);
    await tamper([
      `INSERT INTO sap_outcome_sets (study_id, version, sap_document_id, outcomes_text, after_first_enrolment,
         entry_id)
       VALUES ('${studyId}', 9, '${v1.sap_document_id}', '${text}', false,
         (SELECT id FROM ledger_entries WHERE kind = 'participant.enrolled'))`,
    ]);
    expect((await audit()).map((x) => [x.code, x.table])).toEqual([["DATA_ROW_UNLOGGED", "sap_outcome_sets"]]);
    await tamper([`DELETE FROM sap_outcome_sets WHERE version = 9`]);
    expect(await audit()).toEqual([]);
  });

  it("names a SAP outcome changed after first enrolment without a reason (written behind the service)", async () => {
    const study = { id: studyId, code: "OUT-1" };
    const [sap] = await rows(`SELECT id FROM study_documents WHERE type = 'sap' AND version = '2.0'`);
    const list = [{ ...PRIMARY, name: "Fasting glucose" }];
    const text = outcomesText(list as never);
    // Row and entry agree with each other, and the entry says "before first enrolment", with no reason.
    const id = randomUUID();
    await t.ctx.db.transaction(async (tx) => {
      const e = await appendEntry(tx, t.ctx.crypto, study, "sap.outcomes_set", (salt) => ({
        outcomes: id,
        version: 4,
        sap: String(sap.id),
        outcomesHash: saltedTextHash(t.ctx.crypto, salt, text),
        count: 1,
        primary: 1,
        afterFirstEnrolment: false,
        reasonHash: null,
        actor: ids.admin,
      }));
      await tx.execute(
        sql`INSERT INTO sap_outcome_sets (id, study_id, version, sap_document_id, outcomes_text,
              after_first_enrolment, reason, actor_user_id, entry_id)
            VALUES (${id}, ${studyId}, 4, ${String(sap.id)}, ${text}, false, NULL, ${ids.admin}, ${e.id})`,
      );
    });
    const f = await audit();
    expect(f.map((x) => [x.code, x.table, x.id, x.field])).toEqual([
      ["OUTCOME_CHANGED_WITHOUT_REASON", "sap_outcome_sets", id, "afterFirstEnrolment"],
    ]);
    expect(f[0].message).toBe(
      "a SAP outcome changed after first enrolment without a reason: outcome list version 4 of OUT-1 was sealed " +
        "after the first participant.enrolled entry but says it was set before the first participant was enrolled",
    );
  });

  it("names a SAP outcome flagged after first enrolment but sealed without a reason (behind the service)", async () => {
    const study = { id: studyId, code: "OUT-1" };
    const [sap] = await rows(`SELECT id FROM study_documents WHERE type = 'sap' AND version = '2.0'`);
    const list = [{ ...PRIMARY, name: "Fasting insulin" }];
    const text = outcomesText(list as never);
    // Row and entry agree with each other, and the entry says "after first enrolment", with no reason.
    const id = randomUUID();
    await t.ctx.db.transaction(async (tx) => {
      const e = await appendEntry(tx, t.ctx.crypto, study, "sap.outcomes_set", (salt) => ({
        outcomes: id,
        version: 5,
        sap: String(sap.id),
        outcomesHash: saltedTextHash(t.ctx.crypto, salt, text),
        count: 1,
        primary: 1,
        afterFirstEnrolment: true,
        reasonHash: null,
        actor: ids.admin,
      }));
      await tx.execute(
        sql`INSERT INTO sap_outcome_sets (id, study_id, version, sap_document_id, outcomes_text,
              after_first_enrolment, reason, actor_user_id, entry_id)
            VALUES (${id}, ${studyId}, 5, ${String(sap.id)}, ${text}, true, NULL, ${ids.admin}, ${e.id})`,
      );
    });
    // Only the outcome list of this test (version 4 of the test before is named by it) is looked at here.
    const f = (await audit()).filter((x) => x.id === id);
    expect(f.map((x) => [x.code, x.table, x.id, x.field])).toEqual([
      ["OUTCOME_CHANGED_WITHOUT_REASON", "sap_outcome_sets", id, "reason"],
    ]);
    expect(f[0].message).toBe(
      "a SAP outcome changed after first enrolment without a reason: outcome list version 5 of OUT-1 was sealed " +
        "after the first participant.enrolled entry but carries no reason",
    );
  });
});
