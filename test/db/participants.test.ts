/** Enrolment on PGlite and PostgreSQL: delegation enforced, subject codes per site, a ledger entry each. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { grantDelegation } from "../../app/studies/delegations.server.ts";
import { enrollParticipant, listParticipants } from "../../app/participants/participants.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";

const PW = "amber otter winter forty-two";
let t: TestDb;
const p: Record<string, Principal> = {};
const a0 = "00000000-0000-4000-8000-000000000001";
let studyId: string;

beforeAll(async () => {
  t = await openTestDatabase();
  studyId = (
    await createStudy(
      t.ctx,
      {
        code: "ENR-1",
        title: "Enrol",
        sites: [
          { code: "S1", name: "1" },
          { code: "S2", name: "2" },
        ],
      },
      null,
    )
  ).study.id;
  for (const [k, role, site] of [
    ["inv", "investigator", "S1"],
    ["coord", "coordinator", "S1"],
    ["coord2", "coordinator", "S2"],
    ["mon", "monitor", undefined],
  ] as const) {
    const u = await createUser(
      t.ctx,
      { email: `${k}@enr.test`, fullName: k, password: PW, role, study: "ENR-1", site },
      null,
    );
    p[k] = (await principalForUser(t.ctx, u.id))!;
  }
});
afterAll(async () => {
  await t?.close();
});

describe(`participant enrolment on ${engineUnderTest()}`, () => {
  it("needs a current enrollment delegation for site staff; codes run per site; each enrolment is sealed", async () => {
    await expect(enrollParticipant(t.ctx, p.coord, { study: "ENR-1", site: "S1" })).rejects.toMatchObject({
      code: "forbidden",
      message: expect.stringMatching(/enrollment at this site has not been delegated/),
    });
    await expect(enrollParticipant(t.ctx, p.mon, { study: "ENR-1", site: "S1" })).rejects.toMatchObject({
      message: "not permitted: participants.enroll",
    });
    await expect(enrollParticipant(t.ctx, p.coord2, { study: "ENR-1", site: "S1" })).rejects.toMatchObject({
      code: "forbidden",
    });
    await expect(enrollParticipant(t.ctx, p.inv, { study: "ENR-1", site: "S9" })).rejects.toMatchObject({
      field: "site",
    });
    const a = await enrollParticipant(t.ctx, p.inv, { study: "ENR-1", site: "S1" });
    expect(a.subjectCode).toBe("S1-001");
    await grantDelegation(t.ctx, p.inv, {
      study: "ENR-1",
      site: "S1",
      delegate: "coord@enr.test",
      task: "enrollment",
      startsOn: "2026-01-01",
      training: [{ course: "GCP", completedOn: "2025-01-01", evidenceSha256: "cd".repeat(32) }],
    });
    const b = await enrollParticipant(t.ctx, p.coord, { study: "ENR-1", site: "s1" });
    expect(b.subjectCode).toBe("S1-002");
    const entries = await t.database.execute(
      `SELECT payload_text FROM ledger_entries WHERE kind = 'participant.enrolled'`,
    );
    expect(entries.map((e) => JSON.parse(String(e.payload_text))).map((x) => [x.subject, x.site, x.identity])).toEqual(
      expect.arrayContaining([
        ["S1-001", "S1", null],
        ["S1-002", "S1", null],
      ]),
    );
    // Site staff see their site's participants only; the monitor sees the study.
    expect((await listParticipants(t.ctx, p.coord2, studyId)).length).toBe(0);
    expect((await listParticipants(t.ctx, p.mon, studyId)).map((x) => x.subject)).toEqual(["S1-001", "S1-002"]);
    const [row] = await t.database.execute(
      `SELECT subject_key_enc IS NOT NULL AS keyed, entry_id IS NOT NULL AS sealed ` +
        `FROM participants WHERE subject_code = 'S1-002'`,
    );
    expect(row).toEqual({ keyed: true, sealed: true });
  });

  it(
    "personal data at enrolment is encrypted per field " + "and only an HMAC under the subject's key reaches the log",
    async () => {
      const { decryptField } = await import("../../app/participants/personal-data.server.ts");
      const personal = {
        fullName: "Zoë Quintessa-Marchetti",
        email: "Zoe.Q@Example.org",
        phone: "+44 20 7946 0000",
        birthDate: "1980-02-29",
      };
      const r = await enrollParticipant(t.ctx, p.inv, { study: "ENR-1", site: "S1", personal });
      const [row] = await t.database.execute(
        `SELECT p.name_enc, p.email_enc, p.birth_date_enc, e.payload_text FROM participants p ` +
          `JOIN ledger_entries e ON e.id = p.entry_id WHERE p.id = '${r.id}'`,
      );
      const payload = JSON.parse(String(row.payload_text));
      expect(payload.identity).toMatch(/^[0-9a-f]{64}$/);
      const all = (await t.database.execute(`SELECT payload_text FROM ledger_entries`))
        .map((x) => String(x.payload_text))
        .join("\n");
      // The phone number as given and as its digits (a 4-digit run like "7946" also turns up in random hex hashes).
      for (const s of ["Quintessa", "Zoe.Q", "zoe.q", "20 7946 0000", "442079460000", "1980-02-29"])
        expect(all).not.toContain(s);
      expect(decryptField(t.ctx.env.dataKey, row.name_enc as Uint8Array, `participants.name:${r.id}`)).toBe(
        "Zoë Quintessa-Marchetti",
      );
      expect(decryptField(t.ctx.env.dataKey, row.email_enc as Uint8Array, `participants.email:${r.id}`)).toBe(
        "zoe.q@example.org",
      );
      // Bound to its row: the same ciphertext does not decrypt as another participant's field.
      expect(() => decryptField(t.ctx.env.dataKey, row.name_enc as Uint8Array, `participants.name:${a0}`)).toThrow();
      await expect(
        enrollParticipant(t.ctx, p.inv, { study: "ENR-1", site: "S1", personal: { email: "not-an-email" } }),
      ).rejects.toMatchObject({ field: "email" });
      await expect(
        enrollParticipant(t.ctx, p.inv, { study: "ENR-1", site: "S1", personal: { ssn: "123" } }),
      ).rejects.toMatchObject({ code: "invalid" });
      await expect(
        enrollParticipant(t.ctx, p.inv, { study: "ENR-1", site: "S1", personal: { birthDate: "2999-01-01" } }),
      ).rejects.toMatchObject({ field: "birthDate" });
    },
  );

  it(
    "concurrent enrolments at one site get consecutive codes (none refused); " +
      "an Idempotency-Key replay enrols nobody twice",
    async () => {
      const before = (await listParticipants(t.ctx, p.mon, studyId)).filter((x) => x.site === "S1").length;
      const got = await Promise.all(
        Array.from({ length: 12 }, () => enrollParticipant(t.ctx, p.inv, { study: "ENR-1", site: "S1" })),
      );
      const codes = got.map((g) => g.subjectCode).sort();
      expect(codes).toEqual(Array.from({ length: 12 }, (_, i) => `S1-${String(before + i + 1).padStart(3, "0")}`));
      const idem = { scope: "test:ENR-1:participants", key: "enrol-once", requestHash: new Uint8Array(32).fill(7) };
      const [x, y] = await Promise.all([
        enrollParticipant(t.ctx, p.inv, { study: "ENR-1", site: "S1" }, idem),
        enrollParticipant(t.ctx, p.inv, { study: "ENR-1", site: "S1" }, idem),
      ]);
      const z = await enrollParticipant(t.ctx, p.inv, { study: "ENR-1", site: "S1" }, idem).catch((e) => e);
      // The route replays before calling the service; the service itself answers a racing duplicate from the
      // stored row.
      expect(y).toEqual(x);
      expect(z).toEqual(x);
      const all = (await listParticipants(t.ctx, p.mon, studyId)).filter((r) => r.site === "S1");
      expect(all.length).toBe(before + 13);
      await expect(
        enrollParticipant(
          t.ctx,
          p.inv,
          { study: "ENR-1", site: "S1" },
          { ...idem, requestHash: new Uint8Array(32).fill(8) },
        ),
      ).rejects.toMatchObject({ code: "conflict", field: "Idempotency-Key" });
    },
  );
});
