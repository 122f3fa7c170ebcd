/**
 * Issue 15 item 11 over HTTP against the built portal (ADR 0021): the API refuses a record for a participant without
 * a complete consent (409, the API's JSON error naming the subject); the paper consent page takes the scan as a
 * multipart upload, hashes it as it streams in (a scan past 20 MiB is refused) and seals its SHA-256; the record is
 * still refused until an investigator who did not upload it attests it (password and authenticator code); then it
 * is accepted. The demo seeds consented participants.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Browser, startPortal, type Portal } from "../helpers/portal.ts";
import { demoClone } from "../helpers/demo-snapshot.ts";
import { nextStepTotp } from "../helpers/totp.ts";

let portal: Portal;
let password = "";
const MiB = 1024 * 1024;

beforeAll(async () => {
  const dataDir = (await demoClone("pglite")).dataDir;
  portal = await startPortal({ DATA_DIR: dataDir });
  password = /password for every account: (\S+)/.exec(
    readFileSync(path.join(dataDir, "demo-credentials.txt"), "utf8"),
  )![1];
});
afterAll(async () => {
  await portal?.stop();
});

async function send(who: Browser, method: string, p: string, body?: BodyInit, headers: Record<string, string> = {}) {
  const res = await fetch(portal.url + p, {
    method,
    redirect: "manual",
    headers: { cookie: who.cookie, origin: portal.url, ...headers },
    body,
  });
  return { status: res.status, text: await res.text() };
}
const json = (who: Browser, p: string, body: unknown) =>
  send(who, "POST", p, JSON.stringify(body), { "content-type": "application/json" });

describe("CRF data before consent, over HTTP", () => {
  it("refuses the record until a paper consent is scanned and attested by another investigator", async () => {
    const coord = new Browser(portal.url);
    expect((await coord.signIn("coordinator@demo.trialseal.test", password)).status).toBe(302);
    const inv = new Browser(portal.url);
    const signedIn = await inv.signIn("investigator@demo.trialseal.test", password);
    expect(signedIn.status).toBe(302);

    // The demo's participants are consented (on paper): a record for one goes in.
    const seeded = await json(coord, "/api/v1/studies/DEMO-001/records", {
      subject: "SITE-01-001",
      form: "VITALS",
      visit: "SCREENING",
      data: { sbp: 120, dbp: 80, visit_date: "2026-03-01" },
    });
    expect(seeded.status, seeded.text).toBe(201);

    const enrolled = await json(coord, "/api/v1/studies/DEMO-001/participants", { site: "SITE-01" });
    expect(enrolled.status, enrolled.text).toBe(201);
    const subject = JSON.parse(enrolled.text).subject as string;
    const record = {
      subject,
      form: "VITALS",
      visit: "SCREENING",
      data: { sbp: 121, dbp: 80, visit_date: "2026-03-01" },
    };
    const refused = await json(coord, "/api/v1/studies/DEMO-001/records", record);
    expect(refused.status).toBe(409);
    expect(JSON.parse(refused.text).error).toMatchObject({
      code: "conflict",
      field: "subject",
      message: expect.stringMatching(new RegExp(`^subject ${subject} has not consented yet: no CRF data`)),
    });
    // Demographics are allowed before consent in the demo (pre-screening).
    const demog = await json(coord, "/api/v1/studies/DEMO-001/records", {
      subject,
      form: "DEMOG",
      formVersion: 1,
      visit: "SCREENING",
      data: { sex: "F", age: 40, consent_datetime: "2026-03-01T09:00:00Z" },
    });
    expect(demog.status, demog.text).toBe(201);

    const page = `/studies/DEMO-001/participants/${subject}/paper-consent`;
    const upload = (bytes: Uint8Array<ArrayBuffer>) => {
      const form = new FormData();
      form.set("document", "ICF@1.0");
      form.set("scan", new Blob([bytes], { type: "application/pdf" }), "consent-scan.pdf");
      return send(coord, "POST", page, form);
    };
    // Past the 20 MiB limit (but within the request limit around it): refused by the streaming hash.
    const big = await upload(new Uint8Array(20 * MiB + 1024));
    expect(big.status).toBe(422);
    expect(big.text).toContain("the file is larger than 20 MiB");
    const scan = new TextEncoder().encode("%PDF-1.4 scanned consent form signed on paper");
    const ok = await upload(scan);
    expect(ok.status, ok.text).toBe(200);
    const sha = createHash("sha256").update(scan).digest("hex");
    expect(ok.text).toContain(`Scan sealed (SHA-256 ${sha})`);

    const waiting = await json(coord, "/api/v1/studies/DEMO-001/records", record);
    expect(waiting.status).toBe(409);
    expect(JSON.parse(waiting.text).error.message).toMatch(/paper consent is awaiting an investigator's attestation/);

    const shown = await inv.get(page);
    expect(shown.status).toBe(200);
    const paper = /data-paper="([0-9a-f-]{36})"/.exec(shown.text)![1];
    const attest = await inv.post(page, { paper, password, code: await nextStepTotp(signedIn.secret!) });
    expect(attest.status, attest.text).toBe(200);
    expect(attest.text).toContain("Paper consent attested");
    expect((await json(coord, "/api/v1/studies/DEMO-001/records", record)).status).toBe(201);
  });
});
