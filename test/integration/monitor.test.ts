/**
 * `trialseal monitor` against a running portal: the first check accepts the log; growth is proven consistent and
 * the new checkpoint's anchors verify; a fork (another root at an accepted size), a rollback, a checkpoint not
 * signed by the pinned key and a log that stopped advancing each raise an alarm (exit 1, one line each); an
 * unreachable portal is "cannot check" (exit 2).
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { cliAsync, startPortal, type Portal } from "../helpers/portal.ts";
import { demoClone } from "../helpers/demo-snapshot.ts";
import { waitFor } from "../helpers/wait.ts";
import { nodeCrypto, nodeSigner } from "../../anchoring/adapters/crypto-node.ts";
import { vkeyString } from "../../anchoring/log/checkpoint.ts";

let portal: Portal;
let env: Record<string, string>;
const dir = mkdtempSync(path.join(tmpdir(), "ts-monitor-"));
const state = path.join(dir, "state");
const policyFile = path.join(dir, "policy.json");

beforeAll(async () => {
  env = { DATA_DIR: (await demoClone("pglite")).dataDir, LOCAL_ANCHOR_INTERVAL_MS: "300" };
  portal = await startPortal(env);
  writeFileSync(policyFile, await (await fetch(`${portal.url}/.well-known/trialseal.json`)).text());
  // The first check needs a first checkpoint (404 until the sealer has run once after start).
  await waitFor(async () => (await fetch(`${portal.url}/api/v1/checkpoint`)).status === 200, {
    what: "the portal's first checkpoint",
  });
});
afterAll(async () => {
  await portal?.stop();
});

const monitor = (extra: string[] = [], policy = policyFile) =>
  cliAsync(["monitor", "--url", portal.url, "--trust", policy, "--state", state, ...extra], env);
const readState = () => JSON.parse(readFileSync(path.join(state, "state.json"), "utf8"));

async function logSize() {
  const note = await (await fetch(`${portal.url}/api/v1/checkpoint`)).text();
  return Number(note.split("\n")[1]);
}

describe("trialseal monitor", () => {
  it(
    "accepts a growing, consistent, anchored log and alarms on forks, rollbacks, " + "foreign keys and a stalled log",
    async () => {
      const first = await monitor();
      expect(first.stderr).toBe("");
      expect(first.code).toBe(0);
      expect(first.stdout).toMatch(/: OK at log size \d+ \(first check\);/);
      const size0 = readState().treeSize;

      // The log grows (a new study is a ledger entry); once sealed and anchored, the monitor proves consistency.
      expect(
        (await cliAsync(["studies", "create", "--code", "MON-1", "--title", "Monitored", "--site", "S1"], env)).code,
      ).toBe(0);
      const grown = await waitFor(
        async () => {
          const size = await logSize();
          if (size <= size0) throw new Error(`the log is still at size ${size}`);
          const g = await monitor();
          if (/grew from/.test(g.stdout) && / [1-9]\d* anchors? verified/.test(g.stdout)) return g;
          // Not anchored yet: check the same growth again from the accepted size.
          writeFileSync(path.join(state, "state.json"), JSON.stringify({ ...readState(), treeSize: size0 }));
          throw new Error(`monitor: ${g.stdout}${g.stderr}`);
        },
        { timeoutMs: 180_000, intervalMs: 250, what: "the monitor to prove the grown log consistent and anchored" },
      );
      expect(grown.stdout).toMatch(
        new RegExp(`OK at log size \\d+ \\(grew from ${size0}, consistent\\); [1-9]\\d* anchors? verified`),
      );
      expect(grown.code).toBe(0);
      const good = readState();

      // A fork: the log serves another root than the one accepted at that size.
      writeFileSync(path.join(state, "state.json"), JSON.stringify({ ...good, root: "ab".repeat(32) }));
      let r = await monitor();
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/ALARM: two different roots for log size \d+: a fork/);
      // A fork at an earlier size: the served log is not an extension of the accepted one.
      writeFileSync(path.join(state, "state.json"), JSON.stringify({ ...good, treeSize: 1, root: "cd".repeat(32) }));
      r = await monitor();
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/ALARM: the log of size \d+ is not an extension of the accepted log of size 1/);
      // A rollback: the accepted log was larger.
      writeFileSync(path.join(state, "state.json"), JSON.stringify({ ...good, treeSize: good.treeSize + 5 }));
      r = await monitor();
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/ALARM: the log shrank from \d+ to \d+ batches/);
      // The state of an alarm is not overwritten: the next run still compares with what was accepted.
      expect(readState().treeSize).toBe(good.treeSize + 5);

      // A checkpoint signed by a key the pinned policy does not hold (a policy naming another key of the same name).
      writeFileSync(path.join(state, "state.json"), JSON.stringify(good));
      const foreign = JSON.parse(readFileSync(policyFile, "utf8"));
      const other = nodeSigner(new Uint8Array(randomBytes(32)));
      foreign.logKeys = [{ ...foreign.logKeys[0], vkey: vkeyString(nodeCrypto, foreign.origin, other.publicKey) }];
      const foreignFile = path.join(dir, "foreign.json");
      writeFileSync(foreignFile, JSON.stringify(foreign));
      r = await monitor([], foreignFile);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/ALARM: the checkpoint of size \d+ is not signed by a log key of the trust policy/);

      // A log that has not advanced for longer than allowed (nothing writes to it any more in this test).
      writeFileSync(
        path.join(state, "state.json"),
        JSON.stringify({ ...good, advancedAt: new Date(Date.now() - 3 * 86_400_000).toISOString() }),
      );
      r = await monitor(["--max-age-hours", "24"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/ALARM: the log has not advanced since .* \(more than 24 h\)/);

      // Cannot check: unreachable portal, missing options.
      const down = await cliAsync(
        ["monitor", "--url", "http://127.0.0.1:1", "--trust", policyFile, "--state", state],
        env,
      );
      expect(down.code).toBe(2);
      expect(down.stderr).toMatch(/cannot check: http:\/\/127\.0\.0\.1:1 is unreachable/);
      expect((await cliAsync(["monitor", "--url", portal.url, "--trust", policyFile], env)).code).toBe(2);
    },
  );
});
