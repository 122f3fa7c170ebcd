/** Delegation of authority log on PGlite and PostgreSQL: who may delegate, what is enforced, what is sealed. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import {
  delegationLog,
  grantDelegation,
  requireSiteAction,
  revokeDelegation,
} from "../../app/studies/delegations.server.ts";
import { parsePayload } from "../../anchoring/log/payloads.ts";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";

const PW = "amber otter winter forty-two";
const EVIDENCE = "ab".repeat(32);
const training = [{ course: "GCP", completedOn: "2025-12-01", evidenceSha256: EVIDENCE }];
let t: TestDb;
let inv: Principal;
let invB: Principal;
let coord: Principal;
let coordB: Principal;
let monitor: Principal;
let siteA: string;
let siteB: string;
let studyId: string;

const as = async (email: string) =>
  (await principalForUser(
    t.ctx,
    (
      await t.database.execute(`SELECT id FROM users WHERE email = '${email}'`)
    )[0].id as string,
  ))!;

beforeAll(async () => {
  t = await openTestDatabase();
  const { study, sites } = await createStudy(
    t.ctx,
    {
      code: "DEL-1",
      title: "Delegation",
      sites: [
        { code: "A", name: "A" },
        { code: "B", name: "B" },
      ],
    },
    null,
  );
  studyId = study.id;
  [siteA, siteB] = sites.map((s) => s.id);
  for (const [email, role, site] of [
    ["inv@del.test", "investigator", "A"],
    ["invb@del.test", "investigator", "B"],
    ["coord@del.test", "coordinator", "A"],
    ["coordb@del.test", "coordinator", "B"],
    ["mon@del.test", "monitor", undefined],
  ] as const) {
    await createUser(t.ctx, { email, fullName: email.split("@")[0], password: PW, role, study: "DEL-1", site }, null);
  }
  [inv, invB, coord, coordB, monitor] = await Promise.all(
    ["inv@del.test", "invb@del.test", "coord@del.test", "coordb@del.test", "mon@del.test"].map(as),
  );
});
afterAll(async () => {
  await t?.close();
});

const grant = (by: Principal, over: Record<string, unknown> = {}) =>
  grantDelegation(t.ctx, by, {
    study: "DEL-1",
    site: "A",
    delegate: "coord@del.test",
    task: "data_entry",
    startsOn: "2026-01-01",
    endsOn: null,
    training,
    ...over,
  } as never);
const enterA = (p: Principal) => requireSiteAction(t.ctx, p, "records.enter", { studyId, siteId: siteA });

describe(`delegation log on ${engineUnderTest()}`, () => {
  it(
    "site staff may do delegable work only under a current delegation; the investigator always may; " +
      "other roles never",
    async () => {
      await expect(enterA(coord)).rejects.toMatchObject({
        code: "forbidden",
        message: expect.stringMatching(/data entry at this site has not been delegated to you/),
      });
      await expect(enterA(inv)).resolves.toBeUndefined();
      await expect(enterA(monitor)).rejects.toMatchObject({ message: "not permitted: records.enter" });
      await expect(requireSiteAction(t.ctx, coordB, "records.enter", { studyId, siteId: siteA })).rejects.toMatchObject(
        {
          message: "not permitted: records.enter",
        },
      );

      const d = await grant(inv);
      await expect(enterA(coord)).resolves.toBeUndefined();
      // Only the delegated task: enrollment is still refused.
      await expect(
        requireSiteAction(t.ctx, coord, "participants.enroll", { studyId, siteId: siteA }),
      ).rejects.toMatchObject({ message: expect.stringMatching(/enrollment/) });
      const [e] = await t.database.execute(`SELECT kind, payload_text FROM ledger_entries WHERE id = '${d.entryId}'`);
      expect(e.kind).toBe("delegation.granted");
      const payload = JSON.parse(String(e.payload_text));
      expect(parsePayload("delegation.granted", payload).success).toBe(true);
      expect(payload).toMatchObject({
        delegation: d.id,
        site: "A",
        task: "data_entry",
        startsOn: "2026-01-01",
        endsOn: null,
        // Course names as their salted hashes (ADR 0020).
        training: training.map(({ course, ...x }) => ({
          courseHash: saltedTextHash(t.ctx.crypto, payload.salt, course),
          ...x,
        })),
        actor: inv.userId,
      });

      await revokeDelegation(t.ctx, inv, { study: "DEL-1", id: d.id, reason: "left the site" });
      await expect(enterA(coord)).rejects.toMatchObject({ code: "forbidden" });
      await expect(revokeDelegation(t.ctx, inv, { study: "DEL-1", id: d.id, reason: "again" })).rejects.toMatchObject({
        code: "conflict",
      });
      const kinds = (await t.database.execute(`SELECT kind FROM ledger_entries WHERE kind LIKE 'delegation.%'`)).map(
        (r) => r.kind,
      );
      expect(kinds.sort()).toEqual(["delegation.granted", "delegation.revoked"]);
    },
  );

  it("a delegation counts only between its dates", async () => {
    await grant(inv, { startsOn: "2999-01-01" });
    await expect(enterA(coord)).rejects.toMatchObject({ code: "forbidden" });
    await grant(inv, { startsOn: "2020-01-01", endsOn: "2020-12-31" });
    await expect(enterA(coord)).rejects.toMatchObject({ code: "forbidden" });
    await grant(inv, { startsOn: "2020-01-01", endsOn: "2999-12-31" });
    await expect(enterA(coord)).resolves.toBeUndefined();
    const log = await delegationLog(t.ctx, studyId);
    expect(log.map((l) => l.status)).toEqual(["revoked", "not started", "ended", "current"]);
    expect(log[3]).toMatchObject({ site: "A", task: "data_entry", delegate: "coord", delegator: "inv", training });
  });

  it(
    "only an investigator of that site (or a study admin) delegates, to staff of that site, " +
      "with valid dates and training",
    async () => {
      await expect(grant(coord)).rejects.toMatchObject({ code: "forbidden" });
      await expect(grant(invB)).rejects.toMatchObject({ code: "forbidden" });
      await expect(grant(inv, { delegate: "coordb@del.test" })).rejects.toMatchObject({ field: "delegate" });
      await expect(grant(inv, { delegate: "inv@del.test" })).rejects.toMatchObject({ field: "delegate" });
      await expect(grant(inv, { startsOn: "2026-05-01", endsOn: "2026-04-30" })).rejects.toMatchObject({
        field: "endsOn",
      });
      await expect(grant(inv, { startsOn: "2026-02-30" })).rejects.toMatchObject({ field: "startsOn" });
      await expect(grant(inv, { task: "everything" })).rejects.toMatchObject({ field: "task" });
      await expect(grant(inv, { training: [] })).rejects.toMatchObject({ field: "training" });
      await expect(
        grant(inv, { training: [{ course: "GCP", completedOn: "2025-12-01", evidenceSha256: "nope" }] }),
      ).rejects.toMatchObject({ field: "training.0.evidenceSha256" });
      await expect(grant(inv, { site: "Z" })).rejects.toMatchObject({ code: "not_found", field: "site" });
      // Site B's investigator delegates at site B.
      await expect(
        grantDelegation(t.ctx, invB, {
          study: "DEL-1",
          site: "B",
          delegate: "coordb@del.test",
          task: "consent",
          startsOn: "2026-01-01",
          training,
        }),
      ).resolves.toMatchObject({ task: "consent" });
      void siteB;
    },
  );
});
