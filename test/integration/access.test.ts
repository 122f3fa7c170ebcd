/**
 * The role x route matrix through the running portal: every demo role signs in (with TOTP where its role
 * requires it) and requests every page and API route; what is allowed must be exactly what PERMISSIONS says.
 * Also: the delegation log and the audit trail pages work end to end (CSV export audited).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import path from "node:path";
import { Browser, cli, startPortal, tempDataDir, type Portal } from "../helpers/portal.ts";
import { createScratchPostgres } from "../helpers/db.ts";
import { PERMISSIONS, type Action } from "../../app/services/permissions.server.ts";
import { DEMO_USERS } from "../../app/services/seed.server.ts";
import type { Role } from "../../db/schema/index.ts";

for (const engine of ["pglite", "postgres"] as const) {
describe(`portal access on ${engine}`, () => {
let portal: Portal;
let env: Record<string, string>;
let password: string;
let scratch: { url: string; drop: () => Promise<void> } | undefined;
const sessions = new Map<string, Browser>();

beforeAll(async () => {
  const dataDir = tempDataDir();
  if (engine === "postgres") scratch = await createScratchPostgres();
  env = scratch ? { DATA_DIR: dataDir, DATABASE_URL: scratch.url } : { DATA_DIR: dataDir };
  portal = await startPortal(env);
  password = /password for every account: (\S+)/.exec(readFileSync(path.join(dataDir, "demo-credentials.txt"), "utf8"))![1];
  expect(cli(["studies", "create", "--code", "OTHER-1", "--title", "Other", "--site", "X"], env).code).toBe(0);
  for (const u of DEMO_USERS) {
    const b = new Browser(portal.url);
    const r = await b.signIn(u.email, password);
    expect(r.status, u.email).toBe(302);
    sessions.set(u.role, b);
  }
}, 180_000);
afterAll(async () => {
  await portal?.stop();
  await scratch?.drop();
});

/** Every route, with the permission it needs (null: any signed-in user; "public": anyone). */
const ROUTES: { path: string; needs: Action | null | "public"; api?: boolean }[] = [
  { path: "/status", needs: "public" },
  { path: "/studies", needs: null },
  { path: "/account", needs: null },
  { path: "/studies/DEMO-001", needs: "study.view" },
  { path: "/studies/DEMO-001/delegation", needs: "study.view" },
  { path: "/studies/DEMO-001/staff", needs: "study.view" },
  { path: "/studies/DEMO-001/forms", needs: "study.view" },
  { path: "/studies/DEMO-001/participants", needs: "records.read" },
  { path: "/studies/DEMO-001/consent", needs: "study.view" },
  { path: "/studies/new", needs: "study.manage" }, // platform administrators only
  { path: "/studies/DEMO-001/audit", needs: "audit.view" },
  { path: "/studies/DEMO-001/audit.csv", needs: "audit.view" },
  { path: "/studies/DEMO-001/review", needs: "study.review" },
  { path: "/studies/DEMO-001/export/odm", needs: "study.review" },
  { path: "/verify", needs: "public" },
  { path: "/api/v1/studies/DEMO-001/forms", needs: "study.view", api: true },
  { path: "/api/v1/entries/0/proof", needs: "proofs.read", api: true },
  { path: "/studies/OTHER-1", needs: "study.manage" }, // a study the role has no part in: only the platform admin
  { path: "/api/v1/studies/OTHER-1/forms", needs: "study.manage", api: true },
];

const allowed = (role: Role, needs: Action | null | "public") => needs === "public" || needs === null || role === "admin" || (PERMISSIONS[needs] as readonly Role[]).includes(role);

describe("role x route matrix (the demo study)", () => {
  for (const u of DEMO_USERS) {
    it(`${u.role}: exactly the routes its permissions allow`, async () => {
      const b = sessions.get(u.role)!;
      const got: string[] = [];
      const want: string[] = [];
      for (const r of ROUTES) {
        const res = await b.get(r.path);
        const ok = res.status === 200 || (r.path.endsWith("/proof") && res.status === 202);
        got.push(`${r.path}: ${ok ? "allowed" : "denied"}`);
        want.push(`${r.path}: ${allowed(u.role, r.needs) ? "allowed" : "denied"}`);
        if (!ok) expect([403, 404], `${u.role} ${r.path}`).toContain(res.status); // denied, never a redirect loop or a crash
      }
      expect(got).toEqual(want);
    });
  }

  it("pages carry a strict CSP: every inline script has this response's nonce, and no 'unsafe-inline' script", async () => {
    const b = sessions.get("monitor")!;
    for (const p of ["/status", "/studies/DEMO-001", "/account"]) {
      const res = await b.get(p);
      const csp = res.headers.get("content-security-policy")!;
      const nonce = /'nonce-([A-Za-z0-9+/=]+)'/.exec(csp)?.[1];
      expect(nonce, p).toBeDefined();
      expect(csp).not.toContain("unsafe-inline");
      expect(csp).toContain("frame-ancestors 'none'");
      const scripts = [...res.text.matchAll(/<script\b[^>]*>/g)].map((m) => m[0]);
      expect(scripts.length).toBeGreaterThan(0);
      for (const s of scripts) if (!/\bsrc=/.test(s)) expect(s, p).toContain(`nonce="${nonce}"`);
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    }
    const again = await b.get("/status");
    expect(again.headers.get("content-security-policy")).not.toBe((await b.get("/status")).headers.get("content-security-policy")); // fresh nonce per response
  });

  it("the study dashboard shows counts, each ledger's anchoring state and a chart of the last 14 days", async () => {
    const page = (await sessions.get("monitor")!.get("/studies/DEMO-001")).text;
    const sealed = Number(/Ledger entries sealed<\/div><div class="stat">(\d+)/.exec(page)?.[1]);
    const pending = Number(/Ledger entries pending<\/div><div class="stat">(\d+)/.exec(page)?.[1]);
    expect(sealed + pending).toBeGreaterThan(10);
    expect(page).toMatch(new RegExp(`aria-label="Ledger entries, last 14 days: ${sealed + pending} entries over 14 days"`));
    expect(page.replace(/<!-- -->/g, "")).toMatch(/local: <span class="badge[^"]*">(up to date|anchoring)</);
    expect(page).toMatch(/aria-label="Log: batches sealed and anchors made, last 14 days: [1-9]\d* batches over 14 days"/);
  });

  it("signed out: public routes only; pages redirect to sign-in and the API says 401", async () => {
    const b = new Browser(portal.url);
    for (const r of ROUTES) {
      const res = await b.get(r.path);
      if (r.needs === "public") expect(res.status).toBe(200);
      else if (r.api) expect(res.status, r.path).toBe(401);
      else {
        expect(res.status, r.path).toBe(302);
        expect(res.location).toMatch(/^\/login\?next=/);
      }
    }
  });

  it("the delegation log shows the demo delegations; the investigator delegates with an evidence file; the audit trail filters and exports CSV", async () => {
    const inv = sessions.get("investigator")!;
    const page = await inv.get("/studies/DEMO-001/delegation");
    expect(page.text).toContain("Delegation of authority log");
    expect(page.text.match(/data-delegation=/g)?.length).toBe(3);
    // A coordinator sees the log but has no form to delegate; a delegation POST from them is refused.
    const coord = sessions.get("coordinator")!;
    expect((await coord.get("/studies/DEMO-001/delegation")).text).not.toContain("Delegate a task");
    const fd = new FormData();
    for (const [k, v] of Object.entries({ site: "SITE-01", delegate: "coordinator@demo.trialseal.test", task: "signoff", startsOn: "2026-01-01", course: "Sign-off training", completedOn: "2026-01-02" })) fd.set(k, v);
    fd.set("evidence", new Blob(["certificate bytes"]), "cert.pdf");
    const post = (b: Browser, origin: string | null = portal.url) =>
      fetch(`${portal.url}/studies/DEMO-001/delegation`, { method: "POST", body: fd, headers: { cookie: b.cookie, ...(origin ? { origin } : {}) }, redirect: "manual" });
    // CSRF: the same post from another site, or with no Origin/Referer at all, is refused before it runs.
    expect((await post(inv, "https://evil.example")).status).toBe(403);
    expect((await post(inv, null)).status).toBe(403);
    const refused = await post(coord);
    expect(refused.status).toBe(403);
    const okRes = await post(inv);
    expect(okRes.status).toBe(200);
    const after = await inv.get("/studies/DEMO-001/delegation");
    expect(after.text.match(/data-delegation=/g)?.length).toBe(4);
    const { createHash } = await import("node:crypto");
    expect(after.text).toContain(createHash("sha256").update("certificate bytes").digest("hex").slice(0, 12));

    const mon = sessions.get("monitor")!;
    const trail = await mon.get("/studies/DEMO-001/audit?action=delegation");
    expect(trail.status).toBe(200);
    expect(trail.text).toContain("delegation.grant");
    expect(trail.text).not.toContain(">login<");
    const bad = await mon.get("/studies/DEMO-001/audit?from=2026-13-01");
    expect(bad.status).toBe(400);
    expect(bad.text).toContain("from: use YYYY-MM-DD");
    const csv = await mon.get("/studies/DEMO-001/audit.csv?action=delegation.grant");
    expect(csv.status).toBe(200);
    expect(csv.headers.get("content-type")).toMatch(/^text\/csv/);
    const lines = csv.text.trim().split("\r\n");
    expect(lines[0]).toBe("id,time_utc,action,outcome,user,site,subject,ip,detail");
    expect(lines.length).toBe(5); // the three seeded delegations and the new one
    expect(lines.slice(1).every((l) => l.includes('"delegation.grant"'))).toBe(true);
    const exported = await mon.get("/studies/DEMO-001/audit?action=audit.export");
    expect(exported.text).toContain("audit.export");
  });
});
});
}
