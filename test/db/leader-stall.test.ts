/**
 * The duties holder's connection check after an event-loop stall (ADR 0043), on PostgreSQL: an answer that arrived
 * while the loop was blocked longer than the check's limit (large synchronous import parsing) counts, so the holder
 * does not resign over a healthy connection; no answer at all still fails the check.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import postgres from "postgres";
import { answerWithin } from "../../app/platform/leader.server.ts";
import { engineUnderTest, TEST_DATABASE_URL } from "../helpers/db.ts";

const onPg = engineUnderTest() === "postgres";
let sql: postgres.Sql;
const turn = () => new Promise((r) => setImmediate(r));
const spin = (ms: number) => {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    /* a synchronous stall */
  }
};

beforeAll(() => {
  if (onPg) sql = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
});
afterAll(async () => {
  await sql?.end({ timeout: 2 });
});

describe.runIf(onPg)("the duties holder's check after a stall (postgres)", () => {
  it("takes an answer that arrived during a stall longer than the limit", async () => {
    await sql`select 1`; // connected
    for (let i = 0; i < 3; i++) {
      const q = sql`select 1 as one`.then((r) => r[0].one);
      await turn(); // the query is written
      await turn();
      const checked = answerWithin(q, 200);
      spin(700); // PostgreSQL answers meanwhile; the check's timer is overdue when the loop runs again
      expect(await checked).toBe(1);
    }
  });

  it("still fails a check with no answer", async () => {
    await expect(answerWithin(new Promise(() => {}), 50)).rejects.toThrow("no answer within 50 ms");
    await expect(answerWithin(sql`select pg_sleep(1)`, 100)).rejects.toThrow("no answer within 100 ms");
  });
});
