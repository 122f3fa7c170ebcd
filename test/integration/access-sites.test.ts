/**
 * Access control beyond the role matrix, through a running portal: no IDOR across sites or studies (an
 * investigator of site A reads, corrects and proves nothing of site B, by page, export or API), session
 * fixation (a planted cookie never becomes a signed-in session; signing in always issues a new one; signing out
 * kills it server-side), and API token revocation (`trialseal tokens revoke`: the next request is a 401).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import path from "node:path";
import { Browser, ROOT, cli, startPortal, type Portal } from "../helpers/portal.ts";
import { demoClone } from "../helpers/demo-snapshot.ts";

const PW = "correct horse battery staple 42";
let portal: Portal;
let env: Record<string, string>;
let demoPassword: string;
const b: Record<string, Browser> = {};
const totp: Record<string, string | undefined> = {};
const made: Record<string, { subject: string; record: string; entry: string; recordEntry: string }> = {};

async function api(who: Browser, method: string, p: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(portal.url + p, {
    method,
    redirect: "manual",
    headers: {
      cookie: who.cookie,
      origin: portal.url,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, json: json as Record<string, any>, text };
}

beforeAll(async () => {
  const dataDir = (await demoClone("pglite")).dataDir;
  env = { DATA_DIR: dataDir };
  portal = await startPortal(env);
  demoPassword = /password for every account: (\S+)/.exec(
    readFileSync(path.join(dataDir, "demo-credentials.txt"), "utf8"),
  )![1];
  expect(
    cli(["studies", "create", "--code", "IDOR-1", "--title", "Two sites", "--site", "A", "--site", "B"], env).code,
  ).toBe(0);
  for (const [who, role, site] of [
    ["inv-a", "investigator", "A"],
    ["inv-b", "investigator", "B"],
    ["mon", "monitor", undefined],
    ["dm", "data_manager", undefined],
  ] as const) {
    const r = cli(
      [
        "users",
        "create",
        "--email",
        `${who}@idor.test`,
        "--role",
        role,
        "--study",
        "IDOR-1",
        ...(site ? ["--site", site] : []),
        "--password-stdin",
      ],
      env,
      PW,
    );
    expect(r.code, r.stderr).toBe(0);
  }
  expect(
    cli(["forms", "import", "--study", "IDOR-1", path.join(ROOT, "app", "studies", "demo", "vitals.form.json")], env)
      .code,
  ).toBe(0);
  // Access across sites is tested here, not consent: VITALS may be recorded before consent (ADR 0021).
  expect(cli(["studies", "set", "--study", "IDOR-1", "--forms-before-consent", "VITALS"], env).code).toBe(0);
  for (const who of ["inv-a", "inv-b", "mon"]) {
    b[who] = new Browser(portal.url);
    const r = await b[who].signIn(`${who}@idor.test`, PW);
    expect(r.status, who).toBe(302);
    totp[who] = r.secret;
  }
  b.demoCoord = new Browser(portal.url);
  expect((await b.demoCoord.signIn("coordinator@demo.trialseal.test", demoPassword)).status).toBe(302);
  for (const [who, site] of [
    ["inv-a", "A"],
    ["inv-b", "B"],
  ] as const) {
    const e = await api(b[who], "POST", "/api/v1/studies/IDOR-1/participants", { site });
    expect(e.status, e.text).toBe(201);
    const r = await api(b[who], "POST", "/api/v1/studies/IDOR-1/records", {
      subject: e.json.subject,
      form: "VITALS",
      visit: "SCREENING",
      data: { sbp: 120, dbp: 80, visit_date: "2026-03-01" },
    });
    expect(r.status, r.text).toBe(201);
    made[site] = { subject: e.json.subject, record: r.json.id, entry: e.json.entry.id, recordEntry: r.json.entry.id };
  }
});
afterAll(async () => {
  await portal?.stop();
});

describe("no IDOR across sites or studies", () => {
  it("site A's investigator sees, corrects, proves and exports nothing of site B; the monitor sees both", async () => {
    const A = made.A;
    const B = made.B;
    expect(A.subject).toBe("A-001");
    expect(B.subject).toBe("B-001");
    const list = await b["inv-a"].get("/studies/IDOR-1/participants");
    expect(list.status).toBe(200);
    expect(list.text).toContain("A-001");
    expect(list.text).not.toContain("B-001");
    const denied = [
      `/studies/IDOR-1/participants/${B.subject}`,
      `/studies/IDOR-1/participants/${B.subject}/casebook.pdf`,
      `/studies/IDOR-1/participants/${B.subject}/consent`,
      `/studies/IDOR-1/records/${B.record}`,
    ];
    for (const p of denied) {
      expect([403, 404], `inv-a GET ${p}`).toContain((await b["inv-a"].get(p)).status);
      expect((await b.mon.get(p)).status, `monitor GET ${p}`).toBe(200);
    }
    // The same pages of its own site work.
    expect((await b["inv-a"].get(`/studies/IDOR-1/participants/${A.subject}`)).status).toBe(200);
    expect((await b["inv-a"].get(`/studies/IDOR-1/records/${A.record}`)).status).toBe(200);
    // The API: reading, correcting and entering data for site B is refused; nothing changes.
    expect((await api(b["inv-a"], "GET", `/api/v1/studies/IDOR-1/records/${B.record}`)).status).toBe(404);
    expect((await api(b["inv-a"], "GET", `/api/v1/studies/IDOR-1/records/${A.record}`)).status).toBe(200);
    const put = await api(b["inv-a"], "PUT", `/api/v1/studies/IDOR-1/records/${B.record}`, {
      data: { sbp: 150, dbp: 90, visit_date: "2026-03-01" },
      reason: "not mine",
    });
    expect([403, 404]).toContain(put.status);
    const post = await api(b["inv-a"], "POST", "/api/v1/studies/IDOR-1/records", {
      subject: B.subject,
      form: "VITALS",
      visit: "WEEK4",
      data: { sbp: 120, dbp: 80, visit_date: "2026-03-29" },
    });
    expect([403, 404, 422]).toContain(post.status);
    const enrolB = await api(b["inv-a"], "POST", "/api/v1/studies/IDOR-1/participants", { site: "B" });
    expect([403, 404]).toContain(enrolB.status);
    const recB = await api(b.mon, "GET", `/api/v1/studies/IDOR-1/records/${B.record}`);
    expect(recB.status).toBe(200);
    expect(JSON.stringify(recB.json)).toContain('"sbp":120');
    // Site A's correction did not land: still version 1, and 150 is nowhere as a value (a bare "150" could occur
    // by chance inside a random UUID of the answer).
    expect(recB.json.version).toBe(1);
    expect(recB.json.history).toHaveLength(1);
    expect(JSON.stringify(recB.json)).not.toMatch(/:150\b/);
    // Proof bundles carry the payload: site B's entries are not site A's to fetch (404, like an unknown entry).
    for (const e of [B.entry, B.recordEntry]) {
      expect((await api(b["inv-a"], "GET", `/api/v1/entries/${e}/proof`)).status, e).toBe(404);
      expect([200, 202]).toContain((await api(b.mon, "GET", `/api/v1/entries/${e}/proof`)).status);
    }
    expect([200, 202]).toContain((await api(b["inv-a"], "GET", `/api/v1/entries/${A.recordEntry}/proof`)).status);
    // Study-wide exports are for reviewers, not for one site's investigator.
    for (const f of ["odm", "fhir", "csv", "evidence"])
      expect([403, 404], f).toContain((await b["inv-a"].get(`/studies/IDOR-1/export/${f}`)).status);
  });

  it("staff of another study reach nothing of this one, by page or API", async () => {
    const who = b.demoCoord;
    for (const p of [
      `/studies/IDOR-1`,
      `/studies/IDOR-1/participants`,
      `/studies/IDOR-1/participants/${made.A.subject}`,
      `/studies/IDOR-1/records/${made.A.record}`,
    ]) {
      expect([403, 404], p).toContain((await who.get(p)).status);
    }
    expect((await api(who, "GET", `/api/v1/studies/IDOR-1/records/${made.A.record}`)).status).toBe(404);
    expect((await api(who, "GET", `/api/v1/entries/${made.A.recordEntry}/proof`)).status).toBe(404);
    expect((await api(who, "POST", "/api/v1/studies/IDOR-1/participants", { site: "A" })).status).toBe(404);
  });
});

describe("sessions", () => {
  it(
    "a planted session cookie is never adopted: signing in issues a new one, " + "and signing out kills it server-side",
    async () => {
      const victim = new Browser(portal.url);
      victim.cookie = "ts_session=attacker-chosen-value";
      expect((await victim.get("/studies")).status).toBe(302); // the planted value is no session
      // The attacker's own valid session cookie, planted in the victim's browser before the victim signs in.
      const attacker = new Browser(portal.url);
      expect((await attacker.signIn("mon@idor.test", PW, totp.mon)).status).toBe(302);
      victim.cookie = attacker.cookie;
      const before = victim.cookie;
      expect((await victim.signIn("dm@idor.test", PW)).status).toBe(302);
      expect(victim.cookie).not.toBe(before);
      expect(victim.cookie).toMatch(/^ts_session=/);
      // Each is signed in as itself: the attacker's cookie did not become the victim's session.
      expect((await attacker.get("/account")).text).toContain("mon@idor.test");
      expect((await victim.get("/account")).text).toContain("dm@idor.test");
      expect((await attacker.get("/account")).text).not.toContain("dm@idor.test");
      // Signing out ends the session on the server: replaying the old cookie gets the sign-in page.
      const stolen = victim.cookie;
      const out = await victim.post("/logout", {});
      expect([302, 303]).toContain(out.status);
      const replay = new Browser(portal.url);
      replay.cookie = stolen;
      const res = await replay.get("/studies");
      expect(res.status).toBe(302);
      expect(res.location).toMatch(/^\/login/);
    },
  );
});

describe("API tokens", () => {
  it("a revoked token is refused at once (401); list shows it revoked; revoking twice is a clear error", async () => {
    const token = cli(["tokens", "create", "--study", "IDOR-1", "--name", "lab feed"], env).stdout.trim();
    expect(token).toMatch(/^ts_/);
    const use = () =>
      fetch(`${portal.url}/api/v1/studies/IDOR-1/forms`, { headers: { authorization: `Bearer ${token}` } });
    expect((await use()).status).toBe(200);
    const listed = cli(["tokens", "list", "--study", "IDOR-1"], env);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`${token.slice(0, 10)}\\s+live .* lab feed`));
    expect(listed.stdout).not.toContain(token); // never the token itself
    const revoked = cli(["tokens", "revoke", "--study", "IDOR-1", token.slice(0, 10)], env);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toMatch(/^revoked [0-9a-f-]{36} \(ts_/);
    const after = await use();
    expect(after.status).toBe(401);
    expect(cli(["tokens", "list", "--study", "IDOR-1"], env).stdout).toMatch(
      new RegExp(`${token.slice(0, 10)}\\s+revoked `),
    );
    const again = cli(["tokens", "revoke", "--study", "IDOR-1", token.slice(0, 10)], env);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/no live token ts_/);
    const bad = cli(["tokens", "revoke", "--study", "IDOR-1", "not a token"], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/token: give the token's id or the prefix/);
  });
});
