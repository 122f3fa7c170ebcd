/**
 * Grants of roles that unblind or lock a study (issue 20 review, ADR 0053) on PGlite and PostgreSQL: nobody gives
 * themselves the unblinded statistician, unblinded pharmacist or data manager role (by their own e-mail, in any
 * case), neither a platform admin nor a study admin; other roles they may; every grant of an unblinded role, by
 * invitation or by the command line, tells the study's admins who granted which role to whom.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import { inviteStaff } from "../../app/studies/staff.server.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { engineUnderTest, openTestDatabase, type TestDb } from "../helpers/db.ts";
import { STAFF_PASSWORD, createStaff } from "../helpers/study-staff.ts";

let t: TestDb;
let p: Record<string, Principal>;
let platformAdmin: Principal;
const rows = async (q: string) => (await t.database.execute(q)) as Record<string, unknown>[];
const BASE = "http://portal.test";
const grantMail = () =>
  rows(`SELECT to_address, subject, body FROM outbox WHERE kind = 'unblinded_role_granted' ORDER BY created_at, id`);
const memberships = async (email: string) =>
  (
    await rows(
      `SELECT m.role FROM memberships m JOIN users u ON u.id = m.user_id
       WHERE u.email = '${email}' AND m.revoked_at IS NULL ORDER BY m.role`,
    )
  ).map((r) => String(r.role));

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(t.ctx, { code: "URG-1", title: "Grants", sites: [{ code: "S1", name: "Site one" }] }, null);
  ({ principals: p } = await createStaff(t.ctx, "URG-1", "urg.test", [
    ["admin", "admin"],
    ["admin2", "admin"],
  ]));
  const pa = await createUser(
    t.ctx,
    { email: "root@urg.test", fullName: "Root Operator", password: STAFF_PASSWORD, role: "admin" },
    null,
  );
  platformAdmin = (await principalForUser(t.ctx, pa.id))!;
});
afterAll(async () => {
  await t?.close();
});

describe(`grants of unblinded roles on ${engineUnderTest()}`, () => {
  it("a platform admin cannot give himself unblinded statistician (refused, role named)", async () => {
    await expect(
      inviteStaff(
        t.ctx,
        platformAdmin,
        { study: "URG-1", email: "root@urg.test", fullName: "Root", role: "unblinded_statistician" },
        BASE,
      ),
    ).rejects.toMatchObject({
      code: "forbidden",
      field: "role",
      message:
        "role: you cannot give yourself the unblinded statistician role; ask another administrator: " +
        "one person cannot give themselves a role that unblinds or locks the study",
    });
    expect(await memberships("root@urg.test")).toEqual([]);
  });

  it("a study admin cannot give himself data manager or unblinded pharmacist, by his e-mail in any case", async () => {
    await expect(
      inviteStaff(
        t.ctx,
        p.admin,
        { study: "URG-1", email: "ADMIN@urg.test", fullName: "A", role: "data_manager" },
        BASE,
      ),
    ).rejects.toMatchObject({ code: "forbidden", message: expect.stringContaining("data manager") });
    await expect(
      inviteStaff(
        t.ctx,
        p.admin,
        { study: "URG-1", email: "admin@urg.test", fullName: "A", role: "unblinded_pharmacist", site: "s1" },
        BASE,
      ),
    ).rejects.toMatchObject({ code: "forbidden", message: expect.stringContaining("unblinded pharmacist") });
    expect(await memberships("admin@urg.test")).toEqual(["admin"]);
    expect(await grantMail()).toEqual([]);
  });

  it("a role that neither unblinds nor locks he may give himself; it tells nobody of an unblinded grant", async () => {
    await inviteStaff(
      t.ctx,
      p.admin,
      { study: "URG-1", email: "admin@urg.test", fullName: "A", role: "monitor" },
      BASE,
    );
    expect(await memberships("admin@urg.test")).toEqual(["admin", "monitor"]);
    expect(await grantMail()).toEqual([]);
  });

  it("another admin grants an unblinded role: the other admins are told who gave which role to whom", async () => {
    await inviteStaff(
      t.ctx,
      p.admin2,
      { study: "URG-1", email: "root@urg.test", fullName: "Root", role: "unblinded_statistician" },
      BASE,
    );
    expect(await memberships("root@urg.test")).toEqual(["unblinded_statistician"]);
    await inviteStaff(
      t.ctx,
      p.admin,
      { study: "URG-1", email: "pharm@urg.test", fullName: "Pia Pharm", role: "unblinded_pharmacist", site: "S1" },
      BASE,
    );
    const mail = await grantMail();
    expect(mail.map((m) => m.to_address)).toEqual(["admin@urg.test", "admin2@urg.test"]);
    expect(mail[0].subject).toBe("URG-1: unblinded statistician role granted to Root Operator");
    expect(mail[0].body).toContain("admin2 person (admin2@urg.test) gave Root Operator (root@urg.test)");
    expect(mail[0].body).toContain("the unblinded statistician role in study URG-1");
    expect(mail[1].body).toContain("admin person (admin@urg.test) gave Pia Pharm (pharm@urg.test)");
    expect(mail[1].body).toContain("the unblinded pharmacist role at site S1 in study URG-1");
  });

  it("a user created with an unblinded role on the command line: admins are told it came from the server", async () => {
    await createUser(
      t.ctx,
      {
        email: "stat@urg.test",
        fullName: "Sam Stat",
        password: STAFF_PASSWORD,
        role: "unblinded_statistician",
        study: "URG-1",
      },
      null,
    );
    const mail = (await grantMail()).filter((m) => String(m.body).includes("stat@urg.test"));
    expect(mail.map((m) => m.to_address).sort()).toEqual(["admin2@urg.test", "admin@urg.test"]);
    expect(mail[0].body).toContain("the command line on the server gave Sam Stat (stat@urg.test)");
    // A role that unblinds nothing is not announced.
    const before = (await grantMail()).length;
    await createUser(
      t.ctx,
      { email: "dm@urg.test", fullName: "Dee", password: STAFF_PASSWORD, role: "data_manager", study: "URG-1" },
      null,
    );
    expect(await grantMail()).toHaveLength(before);
  });
});
