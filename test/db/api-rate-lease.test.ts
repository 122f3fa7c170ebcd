/**
 * ADR 0042: the API rate limit lets a process take a tenth of a second's tokens at once from the shared bucket
 * (ADR 0022) and spend them itself. The limit still holds: requests allowed never exceed the burst plus what the
 * bucket refilled meanwhile, in one process or in two processes (two pools) sharing the database.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, type TestDb } from "../helpers/db.ts";
import { openDatabase, type Database } from "../../db/client.ts";
import { contextFor } from "../../app/platform/context.server.ts";
import { rateLimited } from "../../app/platform/api.server.ts";
import type { AppContext } from "../../app/platform/context.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";

const RATE = 50; // burst 100, a lease of 5
const principal = (id: string): Principal => ({
  kind: "token",
  userId: null,
  label: `token:${id}`,
  token: { id, name: id },
  platformAdmin: false,
  scopes: [],
  memberships: [],
});

let t: TestDb;
let second: Database | null = null;
beforeAll(async () => {
  t = await openTestDatabase();
  if (t.url) second = await openDatabase({ url: t.url, migrate: false });
});
afterAll(async () => {
  await second?.close();
  await t?.close();
});

async function hammer(ctxs: AppContext[], who: Principal, n: number) {
  const started = performance.now();
  let allowed = 0;
  let refused = 0;
  for (let i = 0; i < n; i++) {
    const r = await rateLimited(ctxs[i % ctxs.length], who, RATE);
    if (r === null) allowed++;
    else {
      expect(r.status).toBe(429);
      refused++;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  return { allowed, refused, bound: 2 * RATE + RATE * seconds };
}

describe("API rate limit with per-process leases", () => {
  it("one process: at most the burst plus the refill is allowed, and the burst itself is", async () => {
    const { allowed, refused, bound } = await hammer([t.ctx], principal("11111111-1111-4111-8111-111111111111"), 400);
    expect(allowed).toBeGreaterThanOrEqual(2 * RATE);
    expect(allowed).toBeLessThanOrEqual(Math.floor(bound));
    expect(refused).toBeGreaterThan(0);
  });

  it("two processes sharing the database: together still within the one bucket", async (c) => {
    if (!second) return c.skip(); // PGlite: one process only
    const other = contextFor(t.ctx.env, second);
    const { allowed, bound } = await hammer([t.ctx, other], principal("22222222-2222-4222-8222-222222222222"), 400);
    expect(allowed).toBeGreaterThanOrEqual(2 * RATE - 5);
    expect(allowed).toBeLessThanOrEqual(Math.floor(bound));
  });
});
