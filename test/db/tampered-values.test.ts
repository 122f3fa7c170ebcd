/**
 * A CRF value altered behind the log (issue 15 item 6), on PGlite and PostgreSQL: an attacker with superuser
 * rights switches the append-only triggers off (session_replication_role = replica) and rewrites one version's
 * stored value text. The records service recomputes that version's sealed payload from the row and reports it as
 * not matching its sealed entry (that version only); the review data flags the record; every export (ODM, FHIR,
 * CSV, evidence package) and `trialseal export` are refused naming the record, subject, form, visit and version.
 * An untampered study still exports.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { correctRecord, recordHistory, saveRecord } from "../../app/records/records.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { anchorOnce } from "../../app/anchor-worker/anchor-worker.server.ts";
import { studyReview } from "../../app/integrity-audit/review.server.ts";
import { EXPORT_FORMATS, exportStudy } from "../../app/exports/study-exports.server.ts";

import { runCommand } from "../../app/platform/commands.server.ts";
import { sealText } from "../../app/log/seal-text.ts";
import { ServiceError } from "../../app/platform/errors.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";

/**
 * The exports that carry record values. The allocations file (issue 20) holds the randomization list and its
 * entries, no record value, and exists only after unblinding: its own tamper checks are in verify-allocations.
 */
const RECORD_EXPORTS = EXPORT_FORMATS.filter((f) => f !== "allocations");

const PW = "amber otter winter forty-two";
let t: TestDb;
const p: Record<string, Principal> = {};
/** TAM-1's records: the victim (corrected once, then its version 2 tampered) and an untouched neighbour. */
let victim: { id: string; subject: string };
let neighbour: { id: string; subject: string };

const FORM = {
  code: "VITALS",
  title: "Vitals",
  version: 1,
  visits: ["SCREENING", "WEEK4"],
  fields: [
    { name: "sbp", label: "SBP", type: "number", integer: true, min: 50, max: 250 },
    { name: "temp", label: "Temp", type: "number", min: 30, max: 45 },
  ],
};

async function tamper(statements: string[]) {
  await t.ctx.db.transaction(async (tx) => {
    await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
    for (const s of statements) await tx.execute(sql.raw(s));
  });
}

async function refusal(run: () => Promise<unknown>): Promise<ServiceError> {
  try {
    await run();
  } catch (err) {
    if (err instanceof ServiceError) return err;
    throw err;
  }
  throw new Error("the export succeeded with a value that does not match its sealed entry");
}

beforeAll(async () => {
  t = await openTestDatabase();
  for (const code of ["TAM-1", "TAM-2"]) {
    await createStudy(t.ctx, { code, title: `Study ${code}`, sites: [{ code: "S1", name: "Site one" }] }, null);
    await importForm(t.ctx, code, FORM, { actorId: null });
  }
  for (const [k, role, study, site] of [
    ["admin", "admin", undefined, undefined],
    ["inv1", "investigator", "TAM-1", "S1"],
    ["inv2", "investigator", "TAM-2", "S1"],
  ] as const) {
    const u = await createUser(
      t.ctx,
      { email: `${k}@tam.test`, fullName: `${k} person`, password: PW, role, study, site },
      null,
    );
    p[k] = (await principalForUser(t.ctx, u.id))!;
  }
  const ids: { id: string; subject: string }[] = [];
  for (const [study, inv] of [
    ["TAM-1", p.inv1],
    ["TAM-2", p.inv2],
  ] as const) {
    for (let i = 0; i < 2; i++) {
      const s = await enrollParticipant(t.ctx, inv, {
        study,
        site: "S1",
        personal: { fullName: `Person ${study} ${i}`, email: `p${i}@${study.toLowerCase()}.test` },
      });
      await giveCompleteConsent(t.ctx, study, s.subjectCode);
      const r = await saveRecord(t.ctx, inv, study, {
        subject: s.subjectCode,
        form: "VITALS",
        visit: "SCREENING",
        data: { sbp: 120 + i, temp: 36.6 },
      });
      if (study === "TAM-1") ids.push({ id: r.id, subject: s.subjectCode });
    }
  }
  [victim, neighbour] = ids;
  await correctRecord(t.ctx, p.inv1, "TAM-1", victim.id, {
    data: { sbp: 125, temp: 36.6 },
    reason: "transcription error",
  });
  await sealAll(t.ctx);
  await anchorOnce(t.ctx);
  await tamper([
    `UPDATE record_versions SET data_text = '{"sbp":180,"temp":36.6}'
     WHERE record_id = '${victim.id}' AND version = 2`,
  ]);
}, 120_000);
afterAll(async () => {
  await t?.close();
});

describe(`a value altered behind the log on ${engineUnderTest()}`, () => {
  it("the record's history reports the tampered version, and only it, as not matching its sealed entry", async () => {
    const h = await recordHistory(t.ctx, p.inv1, "TAM-1", victim.id);
    expect(h.data).toEqual({ sbp: 180, temp: 36.6 });
    expect(h.history.map((v) => [v.version, v.matchesSeal])).toEqual([
      [1, true],
      [2, false],
    ]);
    const v2 = h.history[1];
    expect(sealText(v2.entry)).toBe("does not match its sealed entry");
    expect(sealText(v2.entry)).not.toMatch(/sealed in batch|anchored/);
    expect(sealText(h.history[0].entry)).toMatch(/^sealed in batch \d+ \(seq \d+\)/);
    const n = await recordHistory(t.ctx, p.inv1, "TAM-1", neighbour.id);
    expect(n.history.map((v) => v.matchesSeal)).toEqual([true]);
  });

  it("the review data flags the tampered record and no other", async () => {
    const r = await studyReview(t.ctx, p.admin, "TAM-1");
    const flags = Object.fromEntries(r.records.map((x) => [x.id, x.matchesSeal]));
    expect(flags).toEqual({ [victim.id]: false, [neighbour.id]: true });
    expect(r.mismatches).toEqual([
      expect.objectContaining({ record: victim.id, subject: victim.subject, form: "VITALS", version: 2 }),
    ]);
    const clean = await studyReview(t.ctx, p.admin, "TAM-2");
    expect(clean.records.every((x) => x.matchesSeal)).toBe(true);
    expect(clean.mismatches).toEqual([]);
  });

  it.each(RECORD_EXPORTS)("the %s export is refused naming the record, subject, form, visit and version", async (f) => {
    const err = await refusal(() => exportStudy(t.ctx, p.admin, "TAM-1", f));
    expect(err.code).toBe("conflict");
    expect(err.message).toContain(`record ${victim.id}`);
    expect(err.message).toContain(`subject ${victim.subject}`);
    expect(err.message).toContain("form VITALS");
    expect(err.message).toContain("visit SCREENING");
    expect(err.message).toContain("version 2");
    expect(err.message).toContain("does not match its sealed entry");
    expect(err.message).not.toContain(neighbour.id);
  });

  it("`trialseal export` exits 1 with one line naming the record", async () => {
    const out = await runCommand(t.ctx, "export", { study: "TAM-1", format: "odm", cwd: "/nonexistent" });
    expect(out.exitCode).toBe(1);
    expect(out.stdout).toBe("");
    expect(String(out.stderr).trimEnd().split("\n")).toHaveLength(1);
    expect(out.stderr).toContain(`record ${victim.id}`);
  });

  it.each(RECORD_EXPORTS)("an untampered study still exports as %s", async (f) => {
    const file = await exportStudy(t.ctx, p.admin, "TAM-2", f);
    expect(file.data.length).toBeGreaterThan(0);
  });
});
