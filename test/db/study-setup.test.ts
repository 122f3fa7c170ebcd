/** Study setup by its administrators on PGlite and PostgreSQL: sites, invitations, role revocation, draft approval. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { login, principalForUser, resetPassword, sessionPrincipal } from "../../app/accounts/auth.server.ts";
import { addSite, inviteStaff, revokeRole, studyStaff } from "../../app/studies/staff.server.ts";
import { addConsentDocument, approveForm, importForm } from "../../app/records/forms.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";

const PW = "amber otter winter forty-two";
const meta = { ip: null, userAgent: null };
let t: TestDb;
let admin: Principal;
let monitor: Principal;
let studyId: string;
const sql = (q: string) => t.database.execute(q);

beforeAll(async () => {
  t = await openTestDatabase();
  const { study } = await createStudy(
    t.ctx,
    { code: "SET-1", title: "Setup", sites: [{ code: "A", name: "A" }] },
    null,
  );
  studyId = study.id;
  await createUser(
    t.ctx,
    { email: "sadmin@set.test", fullName: "Study Admin", password: PW, role: "admin", study: "SET-1" },
    null,
  );
  await createUser(
    t.ctx,
    { email: "mon@set.test", fullName: "Mon", password: PW, role: "monitor", study: "SET-1" },
    null,
  );
  const id = async (e: string) => String((await sql(`SELECT id FROM users WHERE email = '${e}'`))[0].id);
  admin = (await principalForUser(t.ctx, await id("sadmin@set.test")))!;
  monitor = (await principalForUser(t.ctx, await id("mon@set.test")))!;
});
afterAll(async () => {
  await t?.close();
});

const kinds = async () =>
  (await sql(`SELECT kind FROM ledger_entries WHERE study_id = '${studyId}'`)).map((r) => String(r.kind));

describe(`study setup on ${engineUnderTest()}`, () => {
  it("a study admin adds a site (a ledger entry); others cannot; codes are checked", async () => {
    const site = await addSite(t.ctx, admin, { study: "SET-1", code: "B", name: "Second site" });
    expect(site.code).toBe("B");
    expect((await kinds()).filter((k) => k === "site.added")).toHaveLength(2);
    await expect(addSite(t.ctx, admin, { study: "SET-1", code: "B", name: "dup" })).rejects.toMatchObject({
      code: "conflict",
      field: "code",
    });
    await expect(addSite(t.ctx, admin, { study: "SET-1", code: "b c", name: "x" })).rejects.toMatchObject({
      field: "code",
    });
    await expect(addSite(t.ctx, monitor, { study: "SET-1", code: "C", name: "x" })).rejects.toMatchObject({
      code: "forbidden",
    });
  });

  it(
    "invites a new person with a role: account, role.granted entry, " +
      "a 7-day link in the outbox that sets the password",
    async () => {
      const r = await inviteStaff(
        t.ctx,
        admin,
        { study: "SET-1", email: "New.Coord@Set.test", fullName: "New Coord", role: "coordinator", site: "b" },
        "http://portal.test",
      );
      expect(r.invited).toBe(true);
      const [mail] = await sql(`SELECT to_address, kind, body FROM outbox WHERE kind = 'invitation'`);
      expect(mail).toMatchObject({ to_address: "new.coord@set.test", kind: "invitation" });
      expect(String(mail.body)).toContain("coordinator at site B in study SET-1");
      // Nobody can sign in with the random initial password; the link sets a real one.
      await expect(login(t.ctx, "new.coord@set.test", PW, meta)).rejects.toMatchObject({ code: "unauthenticated" });
      const token = /reset-password\/(\S+)/.exec(String(mail.body))![1];
      await resetPassword(t.ctx, token, "my own new passphrase", meta);
      const { token: session } = await login(t.ctx, "new.coord@set.test", "my own new passphrase", meta);
      expect((await sessionPrincipal(t.ctx, session))?.memberships.map((m) => [m.role, m.siteCode])).toEqual([
        ["coordinator", "B"],
      ]);
      const entry = (
        await sql(
          `SELECT payload_text FROM ledger_entries WHERE kind = 'role.granted' AND study_id = ` +
            `'${studyId}' ORDER BY seq NULLS LAST`,
        )
      ).map((e) => JSON.parse(String(e.payload_text)));
      expect(
        entry.some(
          (p) => p.user === r.user.id && p.role === "coordinator" && p.site === "B" && p.actor === admin.userId,
        ),
      ).toBe(true);
      // An existing person gets the new role and a notice, no new account.
      const again = await inviteStaff(
        t.ctx,
        admin,
        { study: "SET-1", email: "new.coord@set.test", fullName: "ignored", role: "monitor" },
        "http://portal.test",
      );
      expect(again.invited).toBe(false);
      expect((await sql(`SELECT count(*)::int AS n FROM users WHERE email = 'new.coord@set.test'`))[0].n).toBe(1);
      await expect(
        inviteStaff(
          t.ctx,
          admin,
          { study: "SET-1", email: "new.coord@set.test", fullName: "x", role: "monitor" },
          "http://portal.test",
        ),
      ).rejects.toMatchObject({ code: "conflict" });
    },
  );

  it("refuses incomplete or foreign invitations, and revokes roles with a ledger entry", async () => {
    const inv = (over: Record<string, unknown>, who = admin) =>
      inviteStaff(
        t.ctx,
        who,
        { study: "SET-1", email: "x@set.test", fullName: "X", role: "coordinator", site: "A", ...over } as never,
        "http://p",
      );
    await expect(inv({ site: undefined })).rejects.toMatchObject({ field: "site" });
    await expect(inv({ role: "monitor" })).rejects.toMatchObject({ field: "site" });
    await expect(inv({ site: "Z" })).rejects.toMatchObject({ code: "not_found" });
    await expect(inv({ email: "not-an-email" })).rejects.toMatchObject({ field: "email" });
    await expect(inv({ role: "participant" })).rejects.toMatchObject({ field: "role" });
    await expect(inv({}, monitor)).rejects.toMatchObject({ code: "forbidden" });
    const staff = await studyStaff(t.ctx, studyId);
    const coord = staff.find((s) => s.email === "new.coord@set.test" && s.role === "coordinator")!;
    await revokeRole(t.ctx, admin, { study: "SET-1", membership: coord.id });
    await expect(revokeRole(t.ctx, admin, { study: "SET-1", membership: coord.id })).rejects.toMatchObject({
      code: "conflict",
    });
    const mine = staff.find((s) => s.email === "sadmin@set.test")!;
    await expect(revokeRole(t.ctx, admin, { study: "SET-1", membership: mine.id })).rejects.toMatchObject({
      field: "membership",
    });
    expect((await kinds()).filter((k) => k === "role.revoked")).toHaveLength(1);
    expect((await studyStaff(t.ctx, studyId)).find((s) => s.id === coord.id)?.revokedAt).not.toBeNull();
  });

  it("approves a draft form version (a ledger entry); an approved one cannot be approved again", async () => {
    const def = {
      code: "AE",
      title: "AE",
      version: 1,
      visits: ["ANY"],
      fields: [{ name: "term", label: "Term", type: "text" }],
    };
    await importForm(t.ctx, "SET-1", def, { draft: true, actorId: admin.userId });
    await expect(approveForm(t.ctx, monitor, { study: "SET-1", code: "AE", version: 1 })).rejects.toMatchObject({
      code: "forbidden",
    });
    const f = await approveForm(t.ctx, admin, { study: "SET-1", code: "AE", version: 1 });
    expect(f).toMatchObject({ status: "approved", approvedBy: admin.userId });
    expect((await kinds()).filter((k) => k === "form.approved")).toHaveLength(1);
    await expect(approveForm(t.ctx, admin, { study: "SET-1", code: "AE", version: 1 })).rejects.toMatchObject({
      code: "conflict",
    });
    await expect(approveForm(t.ctx, admin, { study: "SET-1", code: "AE", version: 9 })).rejects.toMatchObject({
      code: "not_found",
    });
  });

  it(
    "records an IRB-approved consent document version (validated; " + "the approval carries the text's SHA-256)",
    async () => {
      const doc = {
        code: "ICF",
        version: "2.0",
        title: "Consent",
        language: "es",
        bodyMarkdown: "# Consentimiento\n\n## Propósito\nTexto del documento aprobado.",
        irbName: "Comité Ético",
        irbApprovedOn: "2026-02-01",
      };
      const d = await addConsentDocument(t.ctx, admin, "SET-1", doc);
      expect(d).toMatchObject({ status: "approved", language: "es" });
      const [e] = await sql(
        `SELECT payload_text FROM ledger_entries WHERE kind = 'consent_document.approved' AND study_id = '${studyId}'`,
      );
      const { createHash } = await import("node:crypto");
      const approved = JSON.parse(String(e.payload_text));
      expect(approved).toMatchObject({
        document: "ICF",
        version: "2.0",
        bodySha256: createHash("sha256").update(doc.bodyMarkdown).digest("hex"),
        // The IRB's name as its salted hash (ADR 0020).
        irbNameHash: saltedTextHash(t.ctx.crypto, approved.salt, "Comité Ético"),
      });
      expect(approved.irbName).toBeUndefined();
      await expect(addConsentDocument(t.ctx, admin, "SET-1", doc)).rejects.toMatchObject({
        code: "conflict",
        field: "version",
      });
      await expect(
        addConsentDocument(t.ctx, admin, "SET-1", { ...doc, version: "3", irbApprovedOn: "2999-01-01" }),
      ).rejects.toMatchObject({ field: "irbApprovedOn" });
      await expect(
        addConsentDocument(t.ctx, admin, "SET-1", { ...doc, version: "3", bodyMarkdown: "" }),
      ).rejects.toMatchObject({ field: "bodyMarkdown" });
      await expect(
        addConsentDocument(t.ctx, admin, "SET-1", { ...doc, version: "3", language: "Spanish!" }),
      ).rejects.toMatchObject({ field: "language" });
      await expect(addConsentDocument(t.ctx, monitor, "SET-1", { ...doc, version: "3" })).rejects.toMatchObject({
        code: "forbidden",
      });
    },
  );
});
