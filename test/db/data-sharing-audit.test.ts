/**
 * Issue 22's tables in the integrity audit (ADR 0066-0072, 0071) on PGlite and PostgreSQL: clean after choice
 * changes, a data-use request, its decision and a delivery; then, behind the portal's back (the append-only
 * triggers off), a changed, a deleted and an inserted row of each table is named with its table and row, never its
 * free text; a delivery's participant row deleted or inserted is named by participant; a deleted read event
 * (participant.view) is named (AUDIT_EVENT_MISSING).
 * Rows are written as the services write them (appendEntry + insert in one transaction), in `seal*` below, until
 * the services replace them.
 */
import { randomUUID } from "node:crypto";
import { sql } from "drizzle-orm";
import { unzipSync, zipSync } from "fflate";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import type { AuditFinding } from "../../anchoring/verifier/log-auditor.ts";
import { auditRead } from "../../app/audit-trail/record-event.server.ts";
import { recordChoiceChange } from "../../app/data-sharing/choices.server.ts";
import { decideDataUseRequest } from "../../app/data-sharing/decisions.server.ts";
import { makeDelivery } from "../../app/data-sharing/deliveries.server.ts";
import { membersHash } from "../../app/data-sharing/members-hash.ts";
import { submitDataUseRequest } from "../../app/data-sharing/requests.server.ts";
import { runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import { appendEntry } from "../../app/log/append-entry.server.ts";
import type { AppContext } from "../../app/platform/context.server.ts";
import { openTestDatabase, type TestDb } from "../helpers/db.ts";
import { type SupplyStudy, supplyStudy } from "../helpers/supply-study.ts";
import { type DataUseStudy, dataUseStudy, requestBody, STUDY as DU } from "./data-use-setup.ts";

let t: TestDb;
let s: SupplyStudy;
let study: { id: string; code: string };
const STUDY = "DSA-1";
const INSTITUTION = "Institute of Secret Words";
const JUSTIFICATION = "Because the justification is private";
const REASON = "Committee reason in clear";
const rows = async (q: string) => (await t.database.execute(q)) as Record<string, unknown>[];
const one = async (q: string) => (await rows(q))[0] as Record<string, unknown>;
async function tamper(statements: string[]) {
  await t.ctx.db.transaction(async (tx) => {
    await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
    for (const x of statements) await tx.execute(sql.raw(x));
  });
}
const audit = async () =>
  (await runIntegrityAudit(t.ctx, { study: STUDY })).findings.filter((f) => f.severity === "tamper");
function named(f: AuditFinding[], code: string, table: string, id: string, field?: string) {
  const hits = f.filter(
    (x) => x.code === code && x.table === table && x.id === id && (field === undefined || x.field === field),
  );
  expect(hits, `${code} ${table} ${id} ${field ?? ""} in ${JSON.stringify(f, null, 1)}`).toHaveLength(1);
  expect(hits[0].message).toContain(table);
  return hits[0];
}

async function sealChoiceChange(ctx: AppContext, subject: string, choices: Record<string, boolean>) {
  const p = await one(`SELECT id FROM participants WHERE subject_code = '${subject}' AND study_id = '${study.id}'`);
  const id = randomUUID();
  await ctx.db.transaction(async (tx) => {
    const e = await appendEntry(tx, ctx.crypto, study, "consent.choices_changed", {
      change: id,
      subject,
      choices,
      byParticipant: true,
      actor: null,
    });
    await tx.execute(sql`INSERT INTO consent_choice_changes (id, study_id, participant_id, choices, by_participant,
      entry_id) VALUES (${id}, ${study.id}, ${String(p.id)}, ${JSON.stringify(choices)}::jsonb, true, ${e.id})`);
  });
  return id;
}
async function sealRequest(ctx: AppContext, actor: string) {
  const id = randomUUID();
  await ctx.db.transaction(async (tx) => {
    const e = await appendEntry(tx, ctx.crypto, study, "data_use.requested", (salt) => ({
      request: id,
      purpose: "HRESCH",
      fields: ["DM.age"],
      periodFrom: "2020-01-01",
      periodTo: "2030-12-31",
      institutionHash: saltedTextHash(ctx.crypto, salt, INSTITUTION),
      justificationHash: saltedTextHash(ctx.crypto, salt, JUSTIFICATION),
      actor,
    }));
    await tx.execute(sql`INSERT INTO data_use_requests (id, study_id, purpose, fields, period_from, period_to,
      institution, justification, actor_user_id, entry_id) VALUES (${id}, ${study.id}, 'HRESCH', '["DM.age"]'::jsonb,
      '2020-01-01', '2030-12-31', ${INSTITUTION}, ${JUSTIFICATION}, ${actor}, ${e.id})`);
  });
  return id;
}
async function sealDecision(ctx: AppContext, request: string, actor: string) {
  const id = randomUUID();
  await ctx.db.transaction(async (tx) => {
    const e = await appendEntry(tx, ctx.crypto, study, "data_use.decided", (salt) => ({
      decision: id,
      request,
      outcome: "approved" as const,
      reasonHash: saltedTextHash(ctx.crypto, salt, REASON),
      expiresInDays: 30,
      actor,
    }));
    await tx.execute(sql`INSERT INTO data_use_decisions (id, study_id, request_id, outcome, reason, expires_in_days,
      actor_user_id, entry_id) VALUES (${id}, ${study.id}, ${request}, 'approved', ${REASON}, 30, ${actor}, ${e.id})`);
  });
  return id;
}
async function sealDelivery(ctx: AppContext, request: string, actor: string, members: string[]) {
  const id = randomUUID();
  const csv = new TextEncoder().encode("pseudonym\n");
  const csvSha = Buffer.from(ctx.crypto.sha256(csv)).toString("hex");
  const manifest = JSON.stringify({
    delivery: id,
    purpose: "HRESCH",
    participants: members.length,
    files: { "data.csv": { sha256: csvSha, rows: 0 } },
  });
  const zip = Buffer.from(zipSync({ "manifest.json": new TextEncoder().encode(manifest), "data.csv": csv }));
  const sha = Buffer.from(ctx.crypto.sha256(new TextEncoder().encode(manifest))).toString("hex");
  const expiresAt = new Date(Date.now() + 30 * 86_400_000).toISOString();
  await ctx.db.transaction(async (tx) => {
    const e = await appendEntry(tx, ctx.crypto, study, "data_use.delivered", (salt) => ({
      delivery: id,
      request,
      purpose: "HRESCH",
      manifestSha256: sha,
      participants: members.length,
      excluded: { declined: 1, withdrawn: 0, notAsked: 0 },
      membersHash: membersHash(ctx.crypto, salt, members),
      expiresAt,
      actor,
    }));
    await tx.execute(sql`INSERT INTO data_use_deliveries (id, study_id, request_id, manifest, manifest_sha256, content,
      pseudonym_key_enc, participant_count, excluded, expires_at, actor_user_id, entry_id) VALUES (${id}, ${study.id},
      ${request}, ${manifest}, decode(${sha}, 'hex'), decode(${zip.toString("hex")}, 'hex'), '\\x00'::bytea,
      ${members.length},
      '{"declined":1,"withdrawn":0,"notAsked":0}'::jsonb, ${expiresAt}, ${actor}, ${e.id})`);
    for (const m of members)
      await tx.execute(sql`INSERT INTO data_use_delivery_participants (delivery_id, study_id, participant_id)
        VALUES (${id}, ${study.id}, ${m})`);
  });
  return id;
}

let ids: Record<string, string>;
let members: string[];
let readEvent: string;

beforeAll(async () => {
  t = await openTestDatabase();
  s = await supplyStudy(t.ctx, STUDY, { participants: 4, randomize: false });
  study = { id: String((await one(`SELECT id FROM studies WHERE code = '${STUDY}'`)).id), code: STUDY };
  const parts = await rows(`SELECT id, subject_code FROM participants WHERE study_id = '${study.id}' ORDER BY id`);
  members = parts.slice(0, 2).map((x) => String(x.id));
  const request = await sealRequest(t.ctx, s.userIds.mon);
  ids = {
    consent_choice_changes: await sealChoiceChange(t.ctx, s.subjects[0], { future_research: false }),
    consent_choice_changes2: await sealChoiceChange(t.ctx, s.subjects[1], { future_research: true }),
    data_use_requests: request,
    data_use_requests2: await sealRequest(t.ctx, s.userIds.mon),
    data_use_decisions: await sealDecision(t.ctx, request, s.userIds.admin),
    data_use_deliveries: await sealDelivery(t.ctx, request, s.userIds.admin, members),
  };
  ids.data_use_decisions2 = await sealDecision(t.ctx, ids.data_use_requests2, s.userIds.admin);
  ids.data_use_deliveries2 = await sealDelivery(t.ctx, ids.data_use_requests2, s.userIds.admin, members);
  await auditRead(t.ctx.db, {
    action: "participant.view",
    actorUserId: s.userIds.mon,
    studyId: study.id,
    siteId: null,
    participantId: String(parts[3].id),
  });
  readEvent = String(
    (await one(`SELECT id FROM audit_events WHERE action = 'participant.view' AND participant_id = '${parts[3].id}'`))
      .id,
  );
}, 120_000);

afterAll(async () => {
  await t?.close();
});

describe("participant-controlled sharing in the integrity audit", () => {
  it("is clean after choice changes, a request, its decision, a delivery and a read", async () => {
    expect(await audit()).toEqual([]);
  });

  it("names a changed row of each table, field by field, never its free text", async () => {
    const other = String(
      (await one(`SELECT id FROM participants WHERE subject_code = '${s.subjects[2]}' AND study_id = '${study.id}'`))
        .id,
    );
    await tamper([
      `UPDATE consent_choice_changes SET choices = '{"future_research": true}'
         WHERE id = '${ids.consent_choice_changes}'`,
      `UPDATE consent_choice_changes SET participant_id = '${other}' WHERE id = '${ids.consent_choice_changes2}'`,
      `UPDATE data_use_requests SET institution = 'Other place' WHERE id = '${ids.data_use_requests}'`,
      `UPDATE data_use_decisions SET reason = 'edited reason' WHERE id = '${ids.data_use_decisions}'`,
      `UPDATE data_use_deliveries SET manifest = manifest || ' ' WHERE id = '${ids.data_use_deliveries}'`,
      `UPDATE data_use_deliveries SET created_at = created_at - interval '2 days'
         WHERE id = '${ids.data_use_deliveries2}'`,
    ]);
    const f = await audit();
    named(f, "DATA_ROW_MISMATCH", "consent_choice_changes", ids.consent_choice_changes, "choices");
    named(f, "DATA_ROW_MISMATCH", "consent_choice_changes", ids.consent_choice_changes2, "subject");
    named(f, "DATA_ROW_MISMATCH", "data_use_requests", ids.data_use_requests, "institution");
    named(f, "DATA_ROW_MISMATCH", "data_use_decisions", ids.data_use_decisions, "reason");
    named(f, "DATA_ROW_MISMATCH", "data_use_deliveries", ids.data_use_deliveries, "manifest");
    named(f, "DATA_ROW_MISMATCH", "data_use_deliveries", ids.data_use_deliveries2, "createdAt");
    const text = JSON.stringify(f);
    for (const secret of [INSTITUTION, "Other place", REASON, "edited reason", JUSTIFICATION, "future_research"])
      expect(text).not.toContain(secret);
  });

  it("names a delivery's participant row deleted or inserted, by participant", async () => {
    const outsider = String(
      (await one(`SELECT id FROM participants WHERE study_id = '${study.id}' AND id NOT IN ('${members.join("','")}')`))
        .id,
    );
    await tamper([
      `DELETE FROM data_use_delivery_participants WHERE delivery_id = '${ids.data_use_deliveries}'
         AND participant_id = '${members[0]}'`,
      `INSERT INTO data_use_delivery_participants (delivery_id, study_id, participant_id)
         VALUES ('${ids.data_use_deliveries2}', '${study.id}', '${outsider}')`,
    ]);
    const f = await audit();
    named(f, "DATA_ROW_MISSING", "data_use_delivery_participants", `${ids.data_use_deliveries}/${members[0]}`);
    named(f, "DATA_ROW_UNLOGGED", "data_use_delivery_participants", `${ids.data_use_deliveries2}/${outsider}`);
  });

  it("names an inserted row of each table (no entry behind it)", async () => {
    const p = String((await one(`SELECT participant_id FROM consent_choice_changes LIMIT 1`)).participant_id);
    const [c, r, d, v] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    const fake = randomUUID();
    await tamper([
      `INSERT INTO consent_choice_changes (id, study_id, participant_id, choices, by_participant, entry_id)
         VALUES ('${c}', '${study.id}', '${p}', '{"future_research": true}', true, '${fake}')`,
      `INSERT INTO data_use_requests (id, study_id, purpose, fields, period_from, period_to, institution,
         justification, actor_user_id, entry_id) VALUES ('${r}', '${study.id}', 'HRESCH', '["DM.age"]', '2020-01-01',
         '2020-12-31', 'x', 'y', '${s.userIds.mon}', '${fake}')`,
      `INSERT INTO data_use_decisions (id, study_id, request_id, outcome, reason, expires_in_days, actor_user_id,
         entry_id) VALUES ('${d}', '${study.id}', '${r}', 'approved', 'z', 5, '${s.userIds.admin}', '${fake}')`,
      `INSERT INTO data_use_deliveries (id, study_id, request_id, manifest, manifest_sha256, content,
         pseudonym_key_enc, participant_count, excluded, expires_at, actor_user_id, entry_id) VALUES ('${v}',
         '${study.id}', '${r}', '{}', '\\x00', '\\x00', '\\x00', 0, '{"declined":0,"withdrawn":0,"notAsked":0}',
         now(), '${s.userIds.admin}', '${fake}')`,
    ]);
    const f = await audit();
    named(f, "DATA_ROW_UNLOGGED", "consent_choice_changes", c);
    named(f, "DATA_ROW_UNLOGGED", "data_use_requests", r);
    named(f, "DATA_ROW_UNLOGGED", "data_use_decisions", d);
    named(f, "DATA_ROW_UNLOGGED", "data_use_deliveries", v);
  });

  it("names a deleted row of each table by its id and what it was, and a deleted read event", async () => {
    await tamper([
      `DELETE FROM consent_choice_changes WHERE id = '${ids.consent_choice_changes}'`,
      `DELETE FROM data_use_delivery_participants WHERE delivery_id = '${ids.data_use_deliveries}'`,
      `DELETE FROM data_use_deliveries WHERE id = '${ids.data_use_deliveries}'`,
      `DELETE FROM data_use_decisions WHERE id = '${ids.data_use_decisions}'`,
      `DELETE FROM data_use_requests WHERE id = '${ids.data_use_requests}'`,
      `DELETE FROM audit_events WHERE id = '${readEvent}'`,
    ]);
    const f = await audit();
    expect(named(f, "DATA_ROW_MISSING", "consent_choice_changes", ids.consent_choice_changes).message).toContain(
      s.subjects[0],
    );
    named(f, "DATA_ROW_MISSING", "data_use_requests", ids.data_use_requests);
    named(f, "DATA_ROW_MISSING", "data_use_decisions", ids.data_use_decisions);
    named(f, "DATA_ROW_MISSING", "data_use_deliveries", ids.data_use_deliveries);
    const gone = f.filter((x) => x.code === "AUDIT_EVENT_MISSING");
    expect(gone.map((x) => x.message).join("\n")).toContain("participant.view");
  });

  it("names a delivery whose stored ZIP's manifest.json is not the sealed one (by delivery id)", async () => {
    const [row] = await rows(`SELECT content FROM data_use_deliveries WHERE id = '${ids.data_use_deliveries2}'`);
    const files = unzipSync(new Uint8Array(row.content as Uint8Array));
    const manifest = JSON.parse(new TextDecoder().decode(files["manifest.json"]));
    manifest.purpose = "TRAIN";
    files["manifest.json"] = new TextEncoder().encode(JSON.stringify(manifest));
    const hex = Buffer.from(zipSync(files)).toString("hex");
    await tamper([
      `UPDATE data_use_deliveries SET content = '\\x${hex}'::bytea WHERE id = '${ids.data_use_deliveries2}'`,
    ]);
    const f = await audit();
    const hit = named(f, "DATA_ROW_MISMATCH", "data_use_deliveries", ids.data_use_deliveries2, "content");
    expect(hit.message).toContain(ids.data_use_deliveries2);
    expect(hit.message).toMatch(/manifest\.json/);
  });
});

describe("rows written by the services (choices, requests, decisions, deliveries) in the integrity audit", () => {
  let u: DataUseStudy;
  let delivery: { id: string };
  let request = "";
  beforeAll(async () => {
    u = await dataUseStudy(t);
    await recordChoiceChange(t.ctx, u.p.inv, DU, u.subj.yes3, { choices: { future_research: false } });
    request = (await submitDataUseRequest(t.ctx, u.p.res, DU, requestBody())).id;
    await decideDataUseRequest(t.ctx, u.p.dac, DU, request, { outcome: "approved", reason: "ok", expiresInDays: 7 });
    delivery = await makeDelivery(t.ctx, u.p.dac, DU, request);
  }, 240_000);
  const auditDu = async () =>
    (await runIntegrityAudit(t.ctx, { study: DU })).findings.filter((f) => f.severity === "tamper");

  it("is clean, then names a delivery's participant row deleted and a request's justification changed", async () => {
    expect(await auditDu()).toEqual([]);
    await tamper([
      `DELETE FROM data_use_delivery_participants WHERE delivery_id = '${delivery.id}'
         AND participant_id = '${u.pid.yes1}'`,
      `UPDATE data_use_requests SET justification = 'rewritten' WHERE id = '${request}'`,
    ]);
    const f = await auditDu();
    named(f, "DATA_ROW_MISSING", "data_use_delivery_participants", `${delivery.id}/${u.pid.yes1}`);
    named(f, "DATA_ROW_MISMATCH", "data_use_requests", request, "justification");
    expect(JSON.stringify(f)).not.toContain("rewritten");
  });
});
