import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nodeCrypto } from "../../anchoring/adapters/crypto-node.ts";
import { nobleCrypto } from "../../anchoring/log/crypto-noble.ts";
import { fromBase64, toBase64, toHex, utf8 } from "../../anchoring/log/bytes.ts";
import { parseNote } from "../../anchoring/log/checkpoint.ts";
import { LedgerError } from "../../anchoring/ledgers/ledger.ts";
import { Rfc3161Ledger, certificatesFromPem } from "../../anchoring/adapters/rfc3161-ledger.ts";
import { buildRequest, readToken, tokenFromResponse, verifyToken } from "../../anchoring/ledgers/rfc3161-token.ts";
import { verifyAnchor } from "../../anchoring/verifier/verify-anchor.ts";
import { startTsa, type TestTsa } from "../helpers/tsa.ts";
import { cp, note, req } from "../helpers/checkpoints.ts";

const noCtx = { work: null, saveWork: async () => {} };

let tsa: TestTsa;
let rogue: TestTsa;
beforeAll(async () => {
  [tsa, rogue] = await Promise.all([startTsa(), startTsa({ name: "Rogue TSA" })]);
});
afterAll(async () => {
  await Promise.all([tsa?.close(), rogue?.close()]);
});

// A generous client timeout: the openssl TSA answers slowly on a loaded machine (the hang case sets its own).
const ledgerFor = (t: TestTsa, trustedPem = tsa.caPem, timeoutMs = 30_000) =>
  new Rfc3161Ledger({
    name: "rfc3161",
    url: t.url,
    trusted: certificatesFromPem(trustedPem),
    timeoutMs,
    randomBytes: (n) => new Uint8Array(randomBytes(n)),
  });

describe("RFC 3161 ledger against a real TSA (openssl ts behind HTTP)", () => {
  it(
    "time-stamps the checkpoint hash; the token verifies offline (node and noble crypto) " + "and names its genTime",
    async () => {
      const l = ledgerFor(tsa);
      const before = Date.now();
      const out = await l.anchor(req(5), noCtx);
      expect(out.status).toBe("final");
      if (out.receipt.type !== "rfc3161") throw new Error();
      const info = readToken(fromBase64(out.receipt.token));
      expect(info.genTime.getTime()).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 - 1000);
      expect(toHex(info.imprint)).toBe(toHex(req(5).checkpointHash));
      for (const c of [nodeCrypto, nobleCrypto]) {
        const r = await verifyAnchor(c, { ledger: "rfc3161", receipt: out.receipt }, cp(5), { rfc3161: l.policy() });
        // The test TSA states `accuracy = secs:1`: the verifier takes it as the drift of this token's time.
        expect(r, r.message).toMatchObject({ status: "ok", time: info.genTime.toISOString(), statedAccuracyMs: 1000 });
      }
    },
  );

  it("rejects a token for another checkpoint, a tampered token, and an untrusted TSA", async () => {
    const l = ledgerFor(tsa);
    const out = await l.anchor(req(6), noCtx);
    if (out.receipt.type !== "rfc3161") throw new Error();
    const ledgers = { rfc3161: l.policy() };
    expect((await verifyAnchor(nodeCrypto, { ledger: "rfc3161", receipt: out.receipt }, cp(7), ledgers)).code).toBe(
      "ANCHOR_CHECKPOINT_MISMATCH",
    );
    // Flip one bit of the signature (the last bytes of the token) and one inside the TSTInfo (genTime digits).
    const der = fromBase64(out.receipt.token);
    const sigFlip = der.slice();
    sigFlip[sigFlip.length - 5] ^= 0x01;
    const r1 = await verifyAnchor(
      nodeCrypto,
      { ledger: "rfc3161", receipt: { type: "rfc3161", token: toBase64(sigFlip) } },
      cp(6),
      ledgers,
    );
    expect(r1.status).toBe("failed");
    expect(["TSA_SIGNATURE_INVALID", "TSA_TOKEN_MALFORMED"]).toContain(r1.code);
    const text = Buffer.from(der).toString("latin1");
    const year = String(new Date().getUTCFullYear());
    const at = text.indexOf(year);
    expect(at).toBeGreaterThan(0);
    const timeFlip = der.slice();
    timeFlip[at + 3] ^= 0x01; // 2026 -> 2027 inside the signed TSTInfo
    expect(
      (
        await verifyAnchor(
          nodeCrypto,
          { ledger: "rfc3161", receipt: { type: "rfc3161", token: toBase64(timeFlip) } },
          cp(6),
          ledgers,
        )
      ).code,
    ).toBe("TSA_SIGNATURE_INVALID");
    // The same token against a policy trusting another CA.
    const otherPolicy = { rfc3161: ledgerFor(tsa, rogue.caPem).policy() };
    expect((await verifyAnchor(nodeCrypto, { ledger: "rfc3161", receipt: out.receipt }, cp(6), otherPolicy)).code).toBe(
      "TSA_UNTRUSTED",
    );
    // A rogue TSA's answer is refused by the adapter itself (retryable: nothing is stored).
    await expect(ledgerFor(rogue).anchor(req(6), noCtx)).rejects.toThrow(/TSA_UNTRUSTED/);
  });

  it("checks the nonce of its own request", async () => {
    const imprint = req(8).checkpointHash;
    const res = await fetch(tsa.url, {
      method: "POST",
      headers: { "content-type": "application/timestamp-query" },
      body: Buffer.from(buildRequest(imprint, new Uint8Array([1, 2, 3, 4]))),
    });
    const token = tokenFromResponse(new Uint8Array(await res.arrayBuffer()));
    const trusted = certificatesFromPem(tsa.caPem);
    await expect(
      verifyToken(token, {
        data: utf8(parseNote(note(8)).text),
        imprint,
        trusted,
        nonce: new Uint8Array([1, 2, 3, 4]),
      }),
    ).resolves.toMatchObject({ nonce: "01020304" });
    await expect(
      verifyToken(token, { data: utf8(parseNote(note(8)).text), imprint, trusted, nonce: new Uint8Array([9, 9]) }),
    ).rejects.toMatchObject({ code: "TSA_NONCE_MISMATCH" });
  });

  it("a TSA that is down, failing, garbled or silent gives a retryable LedgerError naming the problem", async () => {
    // A short client timeout only where timing out is the point (a silent TSA); the others answer, however slowly.
    const silent = ledgerFor(tsa, tsa.caPem, 800);
    const l = ledgerFor(tsa);
    const cases: [TestTsa["mode"], RegExp][] = [
      ["http500", /answered HTTP 500/],
      ["garbage", /not a TimeStampResp.*TSA_RESPONSE_MALFORMED/],
      ["reset", /unreachable/],
      ["hang", /unreachable: timed out/],
    ];
    try {
      for (const [mode, re] of cases) {
        tsa.mode = mode;
        const err = await (mode === "hang" ? silent : l).anchor(req(9), noCtx).catch((e) => e);
        expect(err, mode).toBeInstanceOf(LedgerError);
        expect(err.message, mode).toMatch(re);
        expect(err.retryable, mode).toBe(true);
      }
    } finally {
      tsa.mode = "ok";
    }
    expect((await l.anchor(req(9), noCtx)).status).toBe("final");
  });
});
