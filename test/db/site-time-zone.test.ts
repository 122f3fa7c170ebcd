/**
 * A site's time zone (ADR 0030): an IANA name chosen when a study or site is created (UTC when none is given),
 * changed by a study admin, refused in plain words when unknown; each choice is in the sealed audit trail.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { createStudy, siteTimeZone, studySites } from "../../app/studies/studies.server.ts";
import { addSite, setSiteTimeZone } from "../../app/studies/staff.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";

let t: TestDb;
let admin: Principal;
let coord: Principal;

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(
    t.ctx,
    {
      code: "TZ-1",
      title: "Clocks",
      sites: [
        { code: "BER", name: "Berlin", timeZone: "Europe/Berlin" },
        { code: "DEF", name: "Default" },
      ],
    },
    null,
  );
  const pw = "amber otter winter forty-two";
  const a = await createUser(t.ctx, { email: "a@tz.test", fullName: "A", password: pw, role: "admin" }, null);
  const c = await createUser(
    t.ctx,
    { email: "c@tz.test", fullName: "C", password: pw, role: "coordinator", study: "TZ-1", site: "BER" },
    null,
  );
  admin = (await principalForUser(t.ctx, a.id))!;
  coord = (await principalForUser(t.ctx, c.id))!;
});
afterAll(async () => {
  await t?.close();
});

describe(`site time zones on ${engineUnderTest()}`, () => {
  it("keeps the zone given at creation, UTC by default, and refuses an unknown one by name", async () => {
    const sites = await studySites(
      t.ctx,
      (await t.database.execute("SELECT id FROM studies WHERE code = 'TZ-1'"))[0].id as string,
    );
    expect(sites.map((s) => [s.code, s.timeZone])).toEqual([
      ["BER", "Europe/Berlin"],
      ["DEF", "UTC"],
    ]);
    expect(await siteTimeZone(t.ctx, sites[0].id)).toBe("Europe/Berlin");
    const ny = await addSite(t.ctx, admin, {
      study: "TZ-1",
      code: "NYC",
      name: "New York",
      timeZone: "America/New_York",
    });
    expect(ny.timeZone).toBe("America/New_York");
    await expect(
      addSite(t.ctx, admin, { study: "TZ-1", code: "MARS", name: "Mars", timeZone: "Mars/Olympus_Mons" }),
    ).rejects.toMatchObject({
      code: "invalid",
      field: "timeZone",
      message: "timeZone: choose a time zone from the list (an IANA name such as Europe/Berlin)",
    });
    await expect(
      createStudy(t.ctx, { code: "TZ-2", title: "x", sites: [{ code: "A", name: "A", timeZone: "CET+1" }] }, null),
    ).rejects.toMatchObject({ code: "invalid" });
  });

  it("lets a study admin change a site's zone, audited with the old and new zone; nobody else", async () => {
    await expect(
      setSiteTimeZone(t.ctx, coord, { study: "TZ-1", site: "DEF", timeZone: "Asia/Tokyo" }),
    ).rejects.toMatchObject({ code: "forbidden" });
    await expect(
      setSiteTimeZone(t.ctx, admin, { study: "TZ-1", site: "NOPE", timeZone: "Asia/Tokyo" }),
    ).rejects.toMatchObject({ code: "not_found", message: "no site NOPE in TZ-1" });
    await expect(
      setSiteTimeZone(t.ctx, admin, { study: "TZ-1", site: "DEF", timeZone: "Tokyo" }),
    ).rejects.toMatchObject({ code: "invalid", field: "timeZone" });
    const s = await setSiteTimeZone(t.ctx, admin, { study: "TZ-1", site: "def", timeZone: "Asia/Tokyo" });
    expect(s.timeZone).toBe("Asia/Tokyo");
    const events = await t.database.execute(
      "SELECT action, detail FROM audit_events WHERE action IN ('site.add', 'site.time_zone') ORDER BY id",
    );
    expect(events.map((e) => [e.action, e.detail])).toEqual([
      ["site.add", { site: "NYC", timeZone: "America/New_York" }],
      ["site.time_zone", { site: "DEF", from: "UTC", to: "Asia/Tokyo" }],
    ]);
  });
});
