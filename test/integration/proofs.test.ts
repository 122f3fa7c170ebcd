import { writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cli, startPortal, type Portal } from "../helpers/portal.ts";
import { dataDirWithDatabase } from "../helpers/pglite-template.ts";
import { waitFor } from "../helpers/wait.ts";

let portal: Portal | undefined;
afterAll(async () => {
  await portal?.stop();
});

describe("sealing, proof bundles and offline verification through the running portal", () => {
  it("seals the demo entries within the default interval; their bundles verify with `trialseal verify`; " +
    "tampering and missing trust are refused", async () => {
    const dataDir = await dataDirWithDatabase();
    const env = { DATA_DIR: dataDir, LOCAL_ANCHOR_INTERVAL_MS: "300" };
    portal = await startPortal(env);
    const token = cli(["tokens", "create", "--study", "DEMO-001", "--name", "proofs"], env).stdout.trim();
    const auth = { authorization: `Bearer ${token}` };

    // The sealer runs every SEAL_INTERVAL_MS (1 s by default): wait until the entry is sealed (202/404 before).
    const res = await waitFor(
      async () => {
        const r = await fetch(`${portal!.url}/api/v1/entries/0/proof`, { headers: auth });
        if (r.status === 200) return r;
        expect([202, 404]).toContain(r.status); // not sealed yet; anything else fails at once
        return null;
      },
      { what: "entry 0 sealed (its proof answered with 200)", rethrow: true },
    );
    expect(res.status).toBe(200);
    const bundle = await res.json();
    expect(bundle.format).toBe("trialseal-proof/v1");

    // Without credentials, or with a token of no study that holds the entry: nothing.
    expect((await fetch(`${portal.url}/api/v1/entries/0/proof`)).status).toBe(401);
    expect(
      (await fetch(`${portal.url}/api/v1/entries/0/proof`, { headers: { authorization: "Bearer ts_nope" } })).status,
    ).toBe(401);
    expect(cli(["studies", "create", "--code", "OTHER-1", "--title", "Other", "--site", "X"], env).code).toBe(0);
    const foreign = cli(["tokens", "create", "--study", "OTHER-1", "--name", "other"], env).stdout.trim();
    const hidden = await fetch(`${portal.url}/api/v1/entries/0/proof`, {
      headers: { authorization: `Bearer ${foreign}` },
    });
    expect(hidden.status).toBe(404); // an entry of another study looks exactly like an unknown one
    expect((await hidden.json()).error.code).toBe("not_found");
    expect((await fetch(`${portal.url}/api/v1/entries/999999/proof`, { headers: auth })).status).toBe(404);

    const policyText = await (await fetch(`${portal.url}/.well-known/trialseal.json`)).text();
    const policyFile = path.join(dataDir, "policy.json");
    writeFileSync(policyFile, policyText);
    const bundleFile = path.join(dataDir, "bundle.json");
    writeFileSync(bundleFile, JSON.stringify(bundle));

    const ok = cli(["verify", bundleFile, "--trust", policyFile], env);
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain("VALID");

    // The pinned URL form: right pin passes, wrong pin is refused (exit 2).
    const pin = createHash("sha256").update(policyText).digest("hex");
    expect(
      cli(["verify", bundleFile, "--trust-url", `${portal.url}/.well-known/trialseal.json`, "--pin", pin], env).code,
    ).toBe(0);
    const wrongPin = cli(
      ["verify", bundleFile, "--trust-url", `${portal.url}/.well-known/trialseal.json`, "--pin", "0".repeat(64)],
      env,
    );
    expect(wrongPin.code).toBe(2);
    expect(wrongPin.stderr).toMatch(/not the pinned/);

    // One byte changed in the payload, the envelope, the header, a path, the checkpoint: exit 1, naming the step.
    const tampered: [string, (b: any) => void, RegExp][] = [
      [
        "payload",
        (b) => (b.payload.salt = (b.payload.salt[0] === "A" ? "B" : "A") + b.payload.salt.slice(1)),
        /payload\.hash \[PAYLOAD_HASH_MISMATCH\]/,
      ],
      [
        "envelope",
        (b) =>
          (b.envelope.payloadHash = (b.envelope.payloadHash[0] === "a" ? "b" : "a") + b.envelope.payloadHash.slice(1)),
        /PAYLOAD_HASH_MISMATCH/,
      ],
      [
        "header",
        (b) => (b.batch.header.root = (b.batch.header.root[0] === "a" ? "b" : "a") + b.batch.header.root.slice(1)),
        /BATCH_INCLUSION_FAILED/,
      ],
      [
        "checkpoint",
        (b) =>
          (b.checkpoints[0].note = b.checkpoints[0].note.replace(
            "trialseal.localhost/log\n",
            "trialseal.localhost/loh\n",
          )),
        /\[(ORIGIN_MISMATCH|SIGNATURE_INVALID)\]/,
      ],
    ];
    if (bundle.batch.inclusion.length > 0)
      tampered.push([
        "path",
        (b) => (b.batch.inclusion[0] = (b.batch.inclusion[0][0] === "a" ? "b" : "a") + b.batch.inclusion[0].slice(1)),
        /BATCH_INCLUSION_FAILED/,
      ]);
    for (const [name, mutate, message] of tampered) {
      const b = structuredClone(bundle);
      mutate(b);
      const f = path.join(dataDir, `tampered-${name}.json`);
      writeFileSync(f, JSON.stringify(b));
      const r = cli(["verify", f, "--trust", policyFile], env);
      expect(r.code, name).toBe(1);
      expect(r.stderr, name).toMatch(message);
    }

    // No trust policy, or an unreadable bundle: exit 2.
    const none = cli(["verify", bundleFile], env);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no trust policy/);
    expect(cli(["verify", path.join(dataDir, "missing.json"), "--trust", policyFile], env).code).toBe(2);

    // The portal anchors on the embedded local ledger by default: the bundle gains its receipt, which verifies
    // with nothing but the ledger's public key from the policy; requiring a ledger that is not there fails.
    const anchored: any = await waitFor(
      async () => {
        const b = await (await fetch(`${portal!.url}/api/v1/entries/0/proof`, { headers: auth })).json();
        return b.checkpoints.some((c: any) => c.anchors.length > 0) ? b : null;
      },
      { what: "entry 0's bundle to gain an anchor receipt" },
    );
    expect(anchored.checkpoints.flatMap((c: any) => c.anchors.map((a: any) => a.ledger))).toEqual(["local"]);
    const policy = JSON.parse(await (await fetch(`${portal.url}/.well-known/trialseal.json`)).text());
    expect(policy.ledgers.local).toMatchObject({
      type: "local",
      keys: [{ publicKey: expect.stringMatching(/^[0-9a-f]{64}$/) }],
    });
    writeFileSync(policyFile, JSON.stringify(policy));
    const anchoredFile = path.join(dataDir, "anchored.json");
    writeFileSync(anchoredFile, JSON.stringify(anchored));
    const withLocal = cli(["verify", anchoredFile, "--trust", policyFile, "--require", "local"], env);
    expect(withLocal.code, withLocal.stdout + withLocal.stderr).toBe(0);
    expect(withLocal.stdout).toMatch(/ok\s+checkpoint\[\d\]\.anchor\[local\]: record \d+ of local ledger/);
    expect(withLocal.stdout).toMatch(/existed by \d{4}-/);
    const needEvm = cli(["verify", anchoredFile, "--trust", policyFile, "--require", "evm"], env);
    expect(needEvm.code).toBe(1);
    expect(needEvm.stderr).toMatch(/\[ANCHOR_REQUIRED\]/);
    const status = cli(["ledger", "status"], env); // through the portal's control socket
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^local\s+size \d+/m);

    // The status page and its JSON twin show the local ledger's anchoring (public: no study data).
    const page = await fetch(`${portal.url}/status`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain("Log and anchoring status");
    expect(html).toMatch(/data-ledger="local"/);
    const st = await (await fetch(`${portal.url}/api/v1/status`)).json();
    expect(st.ledgers).toEqual([
      expect.objectContaining({ ledger: "local", type: "local", failed: 0, lastFinalSize: expect.any(Number) }),
    ]);

    // Public checkpoint and consistency endpoints.
    const note = await (await fetch(`${portal.url}/api/v1/checkpoint`)).text();
    expect(note).toMatch(/^trialseal\.localhost\/log\n\d+\n/);
    const bad = await fetch(`${portal.url}/api/v1/consistency?from=x&to=1`);
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.field).toBe("from");
  }, 600_000); // a portal start and some 20 CLI runs (each 5-10 s on a loaded machine): room for a 3x slowdown
});
