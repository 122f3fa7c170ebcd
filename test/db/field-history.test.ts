/**
 * Field-level history (issue 17) on PGlite and PostgreSQL: each field's versions where its value changed, with who
 * (a user, or a token's name and id), when, old -> new in words (choice labels, units, Yes/No, missing-data codes
 * with their reason, calculated values), the reason for change and the seal state of the version's entry; a version
 * altered behind the log is named in every field's history and never shown as sealed.
 */
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { createApiToken, tokenPrincipal } from "../../app/accounts/tokens.server.ts";
import { grantDelegation } from "../../app/studies/delegations.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { correctRecord, saveRecord } from "../../app/records/records.server.ts";
import { recordFieldHistory, type FieldHistory } from "../../app/records/field-history.server.ts";
import { sealNow } from "../../app/log/sealer.server.ts";
import { sealText } from "../../app/log/seal-text.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";

const STUDY = "FH-1";
let t: TestDb;
const p: Record<string, Principal> = {};
let recordId: string;
let tokenId: string;

const FORM = {
  code: "VS",
  title: "Vital signs",
  version: 1,
  visits: ["V1"],
  fields: [
    {
      name: "sex",
      label: "Sex",
      type: "choice",
      options: [
        { value: "F", label: "Female" },
        { value: "M", label: "Male" },
      ],
    },
    { name: "weight", label: "Weight", type: "number", unit: "kg", missingCodes: ["NOT_DONE", "UNK"] },
    { name: "height", label: "Height", type: "number", unit: "cm" },
    {
      name: "bmi",
      label: "BMI",
      type: "calc",
      expression: "[weight] / (([height] / 100) ^ 2)",
      unit: "kg/m2",
      decimals: 1,
    },
    { name: "smoker", label: "Current smoker", type: "boolean" },
    { name: "temp", label: "Temperature", type: "number", unit: "Cel" },
  ],
};

const byField = (fields: FieldHistory[], name: string) => fields.find((f) => f.field === name)!;
const lines = (f: FieldHistory) =>
  f.changes.map((c) => `v${c.version} ${c.who}: ${c.old.text} -> ${c.new.text} (${c.reason ?? "first entry"})`);

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(
    t.ctx,
    {
      code: STUDY,
      title: "Field history",
      sites: [
        { code: "S1", name: "1" },
        { code: "S2", name: "2" },
      ],
    },
    null,
  );
  for (const [k, role, site] of [
    ["inv", "investigator", "S1"],
    ["coord", "coordinator", "S1"],
    ["other", "coordinator", "S2"],
  ] as const) {
    const u = await createUser(
      t.ctx,
      {
        email: `${k}@fh.test`,
        fullName: `${k} person`,
        password: "sage lantern ninety-seven",
        role,
        study: STUDY,
        site,
      },
      null,
    );
    p[k] = (await principalForUser(t.ctx, u.id))!;
  }
  await grantDelegation(t.ctx, p.inv, {
    study: STUDY,
    site: "S1",
    delegate: "coord@fh.test",
    task: "data_entry",
    startsOn: "2026-01-01",
    training: [{ course: "GCP", completedOn: "2025-01-01", evidenceSha256: "ab".repeat(32) }],
  });
  await importForm(t.ctx, STUDY, FORM, { actorId: null });
  const subject = (await enrollParticipant(t.ctx, p.inv, { study: STUDY, site: "S1" })).subjectCode;
  await giveCompleteConsent(t.ctx, STUDY, subject);
  const created = await createApiToken(t.ctx, { study: STUDY, name: "EDC bridge" }, null);
  tokenId = created.id;
  p.token = (await tokenPrincipal(t.ctx, created.token))!;
  const v1 = { sex: "F", weight: 70, height: 175, smoker: false };
  recordId = (await saveRecord(t.ctx, p.coord, STUDY, { subject, form: "VS", visit: "V1", data: v1 })).id;
  await sealNow(t.ctx);
  await correctRecord(t.ctx, p.coord, STUDY, recordId, {
    data: { ...v1, weight: 72 },
    reason: "scale recalibrated",
  });
  await correctRecord(t.ctx, p.token, STUDY, recordId, {
    data: { sex: "F", height: 175, smoker: true },
    missing: { weight: { code: "NOT_DONE", reason: "participant declined the scale" } },
    reason: "synchronised from the clinic system",
  });
});
afterAll(async () => {
  await t?.close();
});

describe(`field-level history on ${engineUnderTest()}`, () => {
  it("lists, per field, each version where its value changed: who, old -> new in words, why", async () => {
    const { fields } = await recordFieldHistory(t.ctx, p.coord, STUDY, recordId);
    expect(fields.map((f) => f.field)).toEqual(["sex", "weight", "height", "bmi", "smoker", "temp"]);
    const token = `API token EDC bridge (${tokenId.slice(0, 8)})`;
    expect(lines(byField(fields, "weight"))).toEqual([
      "v1 coord person: no value -> 70 kg (first entry)",
      "v2 coord person: 70 kg -> 72 kg (scale recalibrated)",
      `v3 ${token}: 72 kg -> Not done (NOT_DONE) (synchronised from the clinic system)`,
    ]);
    expect(byField(fields, "weight").current).toEqual({
      kind: "missing",
      text: "Not done (NOT_DONE)",
      reason: "participant declined the scale",
    });
    expect(lines(byField(fields, "sex"))).toEqual(["v1 coord person: no value -> Female (first entry)"]);
    expect(lines(byField(fields, "smoker"))).toEqual([
      "v1 coord person: no value -> No (first entry)",
      `v3 ${token}: No -> Yes (synchronised from the clinic system)`,
    ]);
    // The calculated value follows its inputs, computed by the server.
    const bmi = byField(fields, "bmi");
    expect(bmi.calculated).toBe(true);
    expect(lines(bmi)).toEqual([
      "v1 coord person: no value -> 22.9 kg/m² (first entry)",
      "v2 coord person: 22.9 kg/m² -> 23.5 kg/m² (scale recalibrated)",
      `v3 ${token}: 23.5 kg/m² -> not calculated (an input has no value) (synchronised from the clinic system)`,
    ]);
    expect(byField(fields, "height").changes).toHaveLength(1);
    expect(byField(fields, "temp")).toMatchObject({ label: "Temperature", changes: [], current: { kind: "empty" } });
  });

  it("gives each change its time and the seal state of its version's entry", async () => {
    const { record, fields } = await recordFieldHistory(t.ctx, p.coord, STUDY, recordId);
    const weight = byField(fields, "weight").changes;
    expect(weight.map((c) => c.at)).toEqual(record.history.map((h) => h.at));
    expect(weight.map((c) => c.entryId)).toEqual(record.history.map((h) => h.entry.id));
    expect(sealText(weight[0].seal)).toMatch(/^sealed in batch \d+ \(seq \d+\)/);
    expect(sealText(weight[1].seal)).toBe("pending seal");
    await sealNow(t.ctx);
    const after = byField((await recordFieldHistory(t.ctx, p.coord, STUDY, recordId)).fields, "weight").changes;
    expect(after.map((c) => sealText(c.seal))).toEqual(after.map(() => expect.stringMatching(/^sealed in batch/)));
    expect(byField(fields, "weight").mismatchedVersions).toEqual([]);
  });

  it("is refused (not found) to staff of another site", async () => {
    await expect(recordFieldHistory(t.ctx, p.other, STUDY, recordId)).rejects.toMatchObject({ code: "not_found" });
  });

  it("names a version altered behind the log in every field's history, never as sealed", async () => {
    await t.database.db.transaction(async (tx) => {
      await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
      await tx.execute(
        sql.raw(`UPDATE record_versions SET data_text = replace(data_text, '"weight":72', '"weight":62')
          WHERE record_id = '${recordId}' AND version = 2`),
      );
    });
    const { fields } = await recordFieldHistory(t.ctx, p.coord, STUDY, recordId);
    for (const f of fields) expect(f.mismatchedVersions, f.field).toEqual([2]);
    const weight = byField(fields, "weight").changes;
    expect(weight[1]).toMatchObject({ old: { text: "70 kg" }, new: { text: "62 kg" } });
    expect(sealText(weight[1].seal)).toBe("does not match its sealed entry");
    expect(sealText(weight[0].seal)).toMatch(/^sealed in batch/);
  });
});
