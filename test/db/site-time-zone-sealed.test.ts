/**
 * A site's time zone is sealed (ADR 0030): `site.added` v2 carries the zone a site is created with, each change is a
 * `site.time_zone_set` entry naming the previous zone and who changed it, and the integrity audit names a site whose
 * zone was changed behind the log.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sql } from "drizzle-orm";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { addSite, setSiteTimeZone } from "../../app/studies/staff.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import { parsePayload } from "../../anchoring/log/payloads.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";

let t: TestDb;
let admin: Principal;

/** In the order written; entries of one transaction (the same instant) by site code, not by their random ids. */
const entries = async (kind: string) =>
  (
    await t.database.execute(
      `SELECT e.payload_text FROM ledger_entries e JOIN studies s ON s.id = e.study_id
       WHERE s.code = 'TZS-1' AND e.kind = '${kind}' ORDER BY e.at, e.payload_text::jsonb->>'site', e.id`,
    )
  ).map((r) => JSON.parse(String(r.payload_text)) as Record<string, unknown>);

/** Run SQL as an attacker with superuser rights would: with the append-only triggers switched off. */
async function tamper(statement: string) {
  await t.ctx.db.transaction(async (tx) => {
    await tx.execute(sql.raw("SET LOCAL session_replication_role = replica"));
    await tx.execute(sql.raw(statement));
  });
}
const siteFindings = async () =>
  (await runIntegrityAudit(t.ctx, { study: "TZS-1" })).findings.filter((f) => f.table === "sites");

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(
    t.ctx,
    {
      code: "TZS-1",
      title: "Sealed clocks",
      sites: [
        { code: "BER", name: "Berlin", timeZone: "Europe/Berlin" },
        { code: "DEF", name: "Default" },
      ],
    },
    null,
  );
  const pw = "amber otter winter forty-two";
  const a = await createUser(t.ctx, { email: "a@tzs.test", fullName: "A", password: pw, role: "admin" }, null);
  admin = (await principalForUser(t.ctx, a.id))!;
});
afterAll(async () => {
  await t?.close();
});

describe(`sealed site time zones on ${engineUnderTest()}`, () => {
  it("seals the zone a site is created with (site.added v2), UTC when none is given", async () => {
    await addSite(t.ctx, admin, { study: "TZS-1", code: "NYC", name: "New York", timeZone: "America/New_York" });
    const added = await entries("site.added");
    expect(added.map((p) => [p.v, p.site, p.timeZone])).toEqual([
      [2, "BER", "Europe/Berlin"],
      [2, "DEF", "UTC"],
      [2, "NYC", "America/New_York"],
    ]);
    expect(added[2].actor).toBe(admin.userId);
    for (const p of added) expect(parsePayload("site.added", p).success).toBe(true);
  });

  it("keeps parsing site.added v1 and refuses a site.time_zone_set naming both a user and a token", () => {
    const salt = "AAAAAAAAAAAAAAAAAAAAAA";
    expect(parsePayload("site.added", { v: 1, salt, site: "OLD", actor: null }).success).toBe(true);
    const both = {
      v: 1,
      salt,
      site: "BER",
      timeZone: "Asia/Tokyo",
      previous: "UTC",
      actor: admin.userId,
      token: { id: admin.userId, name: "robot" },
    };
    expect(parsePayload("site.time_zone_set", both).success).toBe(false);
    expect(parsePayload("site.time_zone_set", { ...both, actor: null }).success).toBe(true);
  });

  it("seals a change of zone as site.time_zone_set naming the previous zone and the actor", async () => {
    await setSiteTimeZone(t.ctx, admin, { study: "TZS-1", site: "DEF", timeZone: "Asia/Tokyo" });
    const set = await entries("site.time_zone_set");
    expect(set).toHaveLength(1);
    expect(set[0]).toMatchObject({
      v: 1,
      site: "DEF",
      timeZone: "Asia/Tokyo",
      previous: "UTC",
      actor: admin.userId,
    });
    expect(set[0].token).toBeUndefined();
    expect(parsePayload("site.time_zone_set", set[0]).success).toBe(true);
    const events = await t.database.execute(
      "SELECT detail FROM audit_events WHERE action = 'site.time_zone' ORDER BY id DESC LIMIT 1",
    );
    expect(events[0].detail).toEqual({ site: "DEF", from: "UTC", to: "Asia/Tokyo" });
  });

  it("finds nothing to report about sites when every zone matches the log", async () => {
    expect(await siteFindings()).toEqual([]);
  });

  it("names a site whose zone was changed behind the log, and one without a sealed zone that is not UTC", async () => {
    await tamper("UPDATE sites SET time_zone = 'Pacific/Auckland' WHERE code = 'BER'");
    // A site as created before zones were sealed: site.added v1 only, no zone in the log, so it must be UTC.
    await tamper("UPDATE sites SET time_zone = 'Europe/Paris' WHERE code = 'DEF'");
    await tamper(
      `DELETE FROM ledger_entries WHERE kind = 'site.time_zone_set'
        AND study_id = (SELECT id FROM studies WHERE code = 'TZS-1')`,
    );
    const f = await siteFindings();
    expect(f.map((x) => [x.code, x.severity, x.field, x.message])).toEqual([
      [
        "DATA_ROW_MISMATCH",
        "tamper",
        "timeZone",
        'site BER of TZS-1: the time zone is "Pacific/Auckland" in the database but "Europe/Berlin" in the sealed log',
      ],
      [
        "DATA_ROW_MISMATCH",
        "tamper",
        "timeZone",
        'site DEF of TZS-1: the time zone is "Europe/Paris" in the database but "UTC" in the sealed log',
      ],
    ]);
    const ids = await t.database.execute("SELECT id, code FROM sites WHERE code IN ('BER', 'DEF') ORDER BY code");
    expect(f.map((x) => x.id)).toEqual(ids.map((r) => String(r.id)));
  });
});
