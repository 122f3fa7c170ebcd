/**
 * All three ledgers through the CLI, on PostgreSQL, against a `hardhat node` over HTTP (behind a TCP proxy
 * the test cuts and restores) and a real openssl TSA: deploy the contract, anchor, survive an outage of the
 * chain, and verify the bundle offline with --rpc and --require.
 */
import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import postgres from "postgres";
import { cliAsync, tempDataDir } from "../helpers/portal.ts";
import { createScratchPostgres } from "../helpers/db.ts";
import { HARDHAT_KEYS, startHardhatNode, type HardhatNode } from "../helpers/hardhat.ts";
import { startTcpProxy, type TcpProxy } from "../helpers/tcp-proxy.ts";
import { startTsa, type TestTsa } from "../helpers/tsa.ts";
import { waitFor } from "../helpers/wait.ts";

let node: HardhatNode;
let proxy: TcpProxy;
let tsa: TestTsa;
let pg: { url: string; drop: () => Promise<void> };

beforeAll(async () => {
  [node, tsa, pg] = await Promise.all([startHardhatNode(), startTsa(), createScratchPostgres()]);
  proxy = await startTcpProxy(node.port);
});
afterAll(async () => {
  await Promise.all([node?.stop(), tsa?.close(), proxy?.close()]);
  await pg?.drop();
});

describe("ledgers through the CLI (hardhat node over HTTP, openssl TSA, PostgreSQL)", () => {
  it("deploys, anchors on all three ledgers, rides out a chain outage without losing the anchor, " +
    "and verifies with --rpc/--require", async () => {
    const dataDir = tempDataDir();
    // deploy-evm needs only the RPC URL and the key.
    const noKey = await cliAsync(["ledger", "deploy-evm", "--rpc", proxy.url], {
      DATA_DIR: dataDir,
      EVM_PRIVATE_KEY: "",
    });
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toMatch(/set EVM_PRIVATE_KEY/);
    const deployed = await cliAsync(["ledger", "deploy-evm", "--rpc", proxy.url, "--chain-id", "31337"], {
      DATA_DIR: dataDir,
      EVM_PRIVATE_KEY: HARDHAT_KEYS[0],
    });
    expect(deployed.code, deployed.stderr).toBe(0);
    expect(deployed.stderr).toMatch(/deployed TrialSealAnchor .* on chain 31337 .* gas\); owner 0x/);
    expect(deployed.stderr + deployed.stdout).not.toContain(HARDHAT_KEYS[0].slice(2)); // the key is never printed
    const contract = /EVM_CONTRACT=(0x[0-9a-fA-F]{40})/.exec(deployed.stdout)![1];

    const env = {
      DATA_DIR: dataDir,
      DATABASE_URL: pg.url,
      SEED_DEMO: "false",
      EVM_RPC_URL: proxy.url,
      EVM_CHAIN_ID: "31337",
      EVM_CONTRACT: contract,
      EVM_PRIVATE_KEY: HARDHAT_KEYS[0],
      EVM_CONFIRMATIONS: "2",
      EVM_RECEIPT_TIMEOUT_MS: "3000",
      TSA_URL: tsa.url,
      TSA_CERTS: tsa.caFile,
    };
    // A missing piece of EVM configuration is named, without echoing the key.
    const partial = await cliAsync(["ledger", "status"], { ...env, EVM_CONTRACT: "" });
    expect(partial.code).toBe(2);
    expect(partial.stderr).toMatch(/missing EVM_CONTRACT/);

    // A new deployment starts with db migrate (it creates the keys; other commands refuse without them).
    expect((await cliAsync(["db", "migrate"], env)).code).toBe(0);
    expect(
      (await cliAsync(["studies", "create", "--code", "LED-1", "--title", "Ledgers", "--site", "A"], env)).code,
    ).toBe(0);
    expect((await cliAsync(["seal", "--once"], env)).stdout).toMatch(/sealed batch 0/);

    // The chain is cut off: local and the TSA anchor, EVM is retried later (exit 1, status names the error).
    proxy.cut();
    const down = await cliAsync(["anchor", "--once"], env);
    expect(down.code, down.stdout + down.stderr).toBe(1);
    expect(down.stdout).toMatch(/^local: checkpoint 1 anchored \(final\)$/m);
    expect(down.stdout).toMatch(/^rfc3161: checkpoint 1 anchored \(final\)$/m);
    expect(down.stdout).toMatch(/^evm: checkpoint 1 not anchored yet \(attempt 1\): .*; next try /m);
    const status = await cliAsync(["ledger", "status", "--json"], env);
    const rows = JSON.parse(status.stdout) as {
      ledger: string;
      pending: number;
      lastFinalSize: number | null;
      lastError: string | null;
    }[];
    expect(rows.find((r) => r.ledger === "evm")).toMatchObject({
      pending: 1,
      lastFinalSize: null,
      lastError: expect.stringMatching(/.+/),
    });
    expect(rows.find((r) => r.ledger === "rfc3161")).toMatchObject({ pending: 0, lastFinalSize: 1 });

    // The chain is back: after the back-off the same anchor completes; nothing was lost or sent twice.
    // Wait until the back-off has passed as the anchor worker sees it (next_attempt_at, on the database's clock).
    proxy.restore();
    const sql = postgres(pg.url, { max: 1, onnotice: () => {} });
    try {
      await waitFor(
        async () =>
          (
            await sql`SELECT bool_and((next_attempt_at IS NULL OR next_attempt_at <= now())
                        AND (lease_until IS NULL OR lease_until < now())) AS due
                      FROM anchors WHERE ledger = 'evm' AND status = 'pending'`
          )[0].due === true,
        { what: "the EVM anchor's back-off to pass (next_attempt_at <= now(), no lease)" },
      );
    } finally {
      await sql.end();
    }
    const up = await cliAsync(["anchor", "--once", "--ledger", "evm"], env);
    expect(up.code, up.stdout + up.stderr).toBe(0);
    expect(up.stdout).toMatch(/^evm: checkpoint 1 anchored \(included\)$/m);
    await node.rpc("hardhat_mine", ["0x1"]);
    const fin = await cliAsync(["anchor", "--once", "--ledger", "evm"], env);
    expect(fin.stdout).toMatch(/^evm: checkpoint 1 anchored \(final\)$/m);
    const logs = (await node.rpc("eth_getLogs", [
      { address: contract, fromBlock: "0x0", toBlock: "latest" },
    ])) as unknown[];
    expect(logs).toHaveLength(1);

    const proof = await cliAsync(["proof", "0"], env);
    expect(proof.code, proof.stderr).toBe(0);
    const bundle = JSON.parse(proof.stdout);
    expect(bundle.checkpoints[0].anchors.map((a: { ledger: string }) => a.ledger).sort()).toEqual([
      "evm",
      "local",
      "rfc3161",
    ]);
    const policyText = (await cliAsync(["trust-policy"], env)).stdout;
    expect(JSON.parse(policyText).ledgers.evm).toMatchObject({
      type: "evm",
      chainId: 31337,
      contract,
      confirmations: 2,
    });
    const bundleFile = path.join(dataDir, "bundle.json");
    const policyFile = path.join(dataDir, "policy.json");
    writeFileSync(bundleFile, proof.stdout);
    writeFileSync(policyFile, policyText);

    const full = await cliAsync(
      ["verify", bundleFile, "--trust", policyFile, "--rpc", node.url, "--require", "evm,rfc3161,local"],
      {},
    );
    expect(full.code, full.stdout + full.stderr).toBe(0);
    expect(full.stdout).toMatch(/ok\s+checkpoint\[0\]\.anchor\[evm\]: Anchored event in block \d+ of chain 31337/);
    expect(full.stdout).toMatch(/ok\s+checkpoint\[0\]\.anchor\[rfc3161\]: RFC 3161 token/);
    const offline = await cliAsync(["verify", bundleFile, "--trust", policyFile], {});
    expect(offline.code).toBe(0);
    expect(offline.stdout).toMatch(/--\s+checkpoint\[0\]\.anchor\[evm\]: EVM receipt .* not checked: no RPC endpoint/);
    const required = await cliAsync(["verify", bundleFile, "--trust", policyFile, "--require", "evm"], {});
    expect(required.code).toBe(1);
    expect(required.stderr).toMatch(/\[ANCHOR_REQUIRED\]/);
    // An RPC endpoint that is unreachable is reported as such, not as a pass.
    proxy.cut();
    const cut = await cliAsync(["verify", bundleFile, "--trust", policyFile, "--rpc", proxy.url], {});
    proxy.restore();
    expect(cut.code).toBe(1);
    expect(cut.stdout).toMatch(/\[EVM_UNREACHABLE\]/);
  }, 600_000); // some 20 CLI runs (each 5-10 s on a loaded machine): room for a 3x slowdown
});
