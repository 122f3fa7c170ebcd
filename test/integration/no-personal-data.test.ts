/**
 * No personal data leaves its encrypted columns: a participant is enrolled through the API with a distinctive
 * name, email, phone and birth date, data are entered, and a request with bad personal data is refused; then
 * every ledger payload (through the proof API), the local ledger file, the portal's log output, the API error
 * bodies and every export (ODM, FHIR, CSV, the whole evidence package) are searched for any of it.
 */
import { mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { unzipSync } from "fflate";
import { cliAsync, startPortal, type Portal } from "../helpers/portal.ts";
import { demoClone } from "../helpers/demo-snapshot.ts";
import { waitFor } from "../helpers/wait.ts";

const PERSON = {
  fullName: "Zebulon Quixote-Farnsworth",
  email: "zebulon.qf@example.net",
  phone: "+44 20 7946 0999",
  birthDate: "1977-07-07",
};
const NEEDLES = ["Zebulon", "Quixote", "Farnsworth", "zebulon.qf", "7946 0999", "79460999", "1977-07-07"];
let portal: Portal;
let env: Record<string, string>;
const dir = mkdtempSync(path.join(tmpdir(), "ts-nopd-"));

beforeAll(async () => {
  env = { DATA_DIR: (await demoClone("pglite")).dataDir, LOCAL_ANCHOR_INTERVAL_MS: "300" };
  portal = await startPortal(env);
});
afterAll(async () => {
  await portal?.stop();
});

function expectNoPersonalData(what: string, text: string) {
  for (const n of NEEDLES) expect(text.toLowerCase().includes(n.toLowerCase()), `${what} contains "${n}"`).toBe(false);
}

describe("no personal data in payloads, anchors, logs, errors or exports", () => {
  it("finds none of the participant's personal data anywhere the deployment emits it", async () => {
    const token = (await cliAsync(["tokens", "create", "--study", "DEMO-001", "--name", "pd"], env)).stdout.trim();
    // The new subject has no consent: VITALS is allowed before consent (ADR 0021); the demo's paper consents are
    // in the log too, and checked below like every payload.
    const set = await cliAsync(["studies", "set", "--study", "DEMO-001", "--forms-before-consent", "VITALS"], env);
    expect(set.code, set.stderr).toBe(0);
    const api = (p: string, body?: unknown) =>
      fetch(`${portal.url}${p}`, {
        method: body ? "POST" : "GET",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: body ? JSON.stringify(body) : undefined,
      });
    const errors: string[] = [];
    const bad = await api("/api/v1/studies/DEMO-001/participants", {
      site: "SITE-01",
      personal: { ...PERSON, email: "Zebulon at nowhere" },
    });
    expect(bad.status).toBe(422);
    errors.push(await bad.text());
    const bad2 = await api("/api/v1/studies/DEMO-001/participants", {
      site: "SITE-01",
      personal: { ...PERSON, nickname: "Zebulon" },
    });
    expect(bad2.status).toBe(422);
    errors.push(await bad2.text());
    const ok = await api("/api/v1/studies/DEMO-001/participants", { site: "SITE-01", personal: PERSON });
    expect(ok.status).toBe(201);
    const { subject, entry } = (await ok.json()) as { subject: string; entry: { id: string } };
    const rec = await api("/api/v1/studies/DEMO-001/records", {
      subject,
      form: "VITALS",
      visit: "SCREENING",
      data: { sbp: 120, dbp: 80, visit_date: "2026-03-01" },
    });
    expect(rec.status, await rec.clone().text()).toBe(201);
    // Wait until both writes are sealed (a seq that is not assigned yet is simply not found).
    let lastSeq = 0;
    for (const id of [entry.id, ((await rec.json()) as { entry: { id: string } }).entry.id]) {
      const sealed = await waitFor(
        async () => {
          const r = await api(`/api/v1/entries/${id}/proof`);
          return r.status === 200 ? ((await r.json()) as { envelope: { seq: number } }) : null;
        },
        { what: `entry ${id} sealed` },
      );
      lastSeq = Math.max(lastSeq, sealed.envelope.seq);
    }
    for (const e of errors) expectNoPersonalData("an API error body", e);

    // Every ledger payload, once sealed (through the proof API), and the bundles themselves.
    // Entries of the deployment scope (audit events of no study, ADR 0016) are not the study token's to read: 404.
    let bundles = "";
    let hidden = 0;
    for (let seq = 0; seq <= lastSeq; seq++) {
      const res = await api(`/api/v1/entries/${seq}/proof`);
      if (res.status === 404) {
        hidden++;
        continue;
      }
      expect(res.status).toBe(200);
      bundles += await res.text();
    }
    expect(hidden).toBeLessThan(lastSeq);
    expect(bundles).toContain('"kind":"participant.enrolled"');
    expect(bundles).toContain('"identity":"'); // the HMAC that binds the personal data, and only that
    expectNoPersonalData("the ledger payloads and proof bundles", bundles);

    // The anchors (the local ledger file), the portal's log output.
    const ledgerDir = path.join(env.DATA_DIR, "ledger");
    for (const f of readdirSync(ledgerDir))
      expectNoPersonalData(`the local ledger file ${f}`, readFileSync(path.join(ledgerDir, f), "utf8"));
    expectNoPersonalData("the portal's log output", portal.output());

    // Every export, and every file of the evidence package (certified copies included).
    for (const format of ["odm", "fhir", "csv", "evidence"]) {
      const out = path.join(dir, `export.${format}`);
      const r = await cliAsync(["export", "--study", "DEMO-001", "--format", format, "--out", out], env);
      expect(r.code, r.stderr).toBe(0);
      const data = new Uint8Array(readFileSync(out));
      if (format === "csv" || format === "evidence") {
        const files = unzipSync(data);
        expect(Object.keys(files).length).toBeGreaterThan(0);
        for (const [name, content] of Object.entries(files)) {
          const text = name.endsWith(".pdf") ? await pdfText(content) : new TextDecoder().decode(content);
          expectNoPersonalData(`${format}: ${name}`, text);
        }
      } else expectNoPersonalData(format, new TextDecoder().decode(data));
    }
    expectNoPersonalData("the portal's log output after the exports", portal.output());
  });
});

async function pdfText(data: Uint8Array) {
  const { extractText, getDocumentProxy } = await import("unpdf");
  const { text } = await extractText(await getDocumentProxy(new Uint8Array(data)), { mergePages: true });
  return String(text);
}
