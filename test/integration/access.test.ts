/**
 * The role x route matrix through the running portal: every demo role signs in (with TOTP where its role
 * requires it) and requests every page and API route; what is allowed must be exactly what PERMISSIONS says.
 * Also: the delegation log and the audit trail pages work end to end (CSV export audited).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import path from "node:path";
import { Browser, cli, startPortal, type Portal, demoPasswordOf } from "../helpers/portal.ts";
import { demoClone } from "../helpers/demo-snapshot.ts";
import { waitFor } from "../helpers/wait.ts";
import { MEMBERSHIP_ONLY_ACTIONS, PERMISSIONS, type Action } from "../../app/platform/permissions.server.ts";
import { DEMO_USERS } from "../../app/studies/demo-seed.server.ts";
import type { Role } from "../../db/schema/index.ts";

/** Every route, with the permission it needs (null: any signed-in user; "public": anyone). */
const ROUTES: { path: string; needs: Action | null | "public"; api?: boolean }[] = [
  { path: "/status", needs: "public" },
  { path: "/studies", needs: null },
  { path: "/account", needs: null },
  { path: "/studies/DEMO-001", needs: "study.view" },
  { path: "/studies/DEMO-001/delegation", needs: "study.view" },
  { path: "/studies/DEMO-001/staff", needs: "study.view" },
  { path: "/studies/DEMO-001/forms", needs: "study.view" },
  { path: "/studies/DEMO-001/forms/export/json", needs: "study.view" },
  { path: "/studies/DEMO-001/forms/export/redcap", needs: "study.view" },
  { path: "/studies/DEMO-001/forms/export/odm", needs: "study.view" },
  { path: "/studies/DEMO-001/participants", needs: "records.read" },
  { path: "/studies/DEMO-001/matrix", needs: "records.read" }, // subject matrix (ADR 0039), site-scoped rows
  { path: "/studies/DEMO-001/consent", needs: "study.view" },
  { path: "/studies/DEMO-001/settings", needs: "study.view" },
  { path: "/studies/DEMO-001/schedule", needs: "study.view" }, // visit schedule (ADR 0032)
  { path: "/studies/DEMO-001/documents", needs: "documents.read" }, // protocol and plans (ADR 0048)
  { path: "/studies/DEMO-001/outcomes", needs: "documents.read" }, // the SAP's outcome list (ADR 0049)
  { path: "/studies/DEMO-001/registration", needs: "documents.read" }, // the public page's switch (ADR 0050)
  // Blinded roles see whether a list is committed and the allocations per stratum; the statistician's data (drafts,
  // roots) only with randomization.manage, which the blinding test checks (blinding.test.ts).
  { path: "/studies/DEMO-001/randomization", needs: "study.view" },
  { path: "/studies/DEMO-001/lock", needs: "study.view" }, // database lock and unblinding state (ADR 0054)
  // The demo publishes its registration page: anyone may read it and its JSON twin (ADR 0050).
  { path: "/registry/DEMO-001", needs: "public" },
  { path: "/registry/DEMO-001.json", needs: "public", api: true },
  { path: "/studies/new", needs: "study.manage" }, // platform administrators only
  { path: "/outbox", needs: "study.manage" }, // notifications (ADR 0035): platform administrators only
  { path: "/studies/DEMO-001/audit", needs: "audit.view" },
  { path: "/studies/DEMO-001/audit.csv", needs: "audit.view" },
  { path: "/studies/DEMO-001/review", needs: "study.review" },
  { path: "/studies/DEMO-001/export/odm", needs: "study.review" },
  { path: "/studies/DEMO-001/export/fhir", needs: "study.review" },
  { path: "/studies/DEMO-001/export/csv", needs: "study.review" },
  { path: "/studies/DEMO-001/export/evidence", needs: "study.review" },
  { path: "/studies/DEMO-001/exports/dictionary.csv", needs: "study.view" },
  { path: "/studies/DEMO-001/exports/crf/blank", needs: "study.view" },
  { path: "/studies/DEMO-001/exports/crf/annotated", needs: "study.view" },
  { path: "/studies/DEMO-001/missing-data", needs: "records.read" },
  { path: "/studies/DEMO-001/import", needs: "records.import" }, // importing existing data (ADR 0037)
  { path: "/studies/DEMO-001/missing-data.csv", needs: "records.read" },
  { path: "/studies/DEMO-001/queries", needs: "records.read" },
  { path: "/studies/DEMO-001/queries.csv", needs: "records.read" },
  { path: "/account/totp", needs: null },
  // The public log: anyone may fetch checkpoints, consistency proofs and anchors, and the API description.
  { path: "/api/v1/status", needs: "public", api: true },
  { path: "/api/v1/checkpoint", needs: "public", api: true },
  { path: "/api/v1/consistency?from=1&to=1", needs: "public", api: true },
  { path: "/api/v1/checkpoints/1/anchors", needs: "public", api: true },
  { path: "/api/v1/openapi.json", needs: "public", api: true },
  { path: "/.well-known/trialseal.json", needs: "public", api: true },
  { path: "/verify", needs: "public" },
  { path: "/api/v1/studies/DEMO-001/forms", needs: "study.view", api: true },
  { path: "/api/v1/studies/DEMO-001/queries", needs: "records.read", api: true },
  { path: "/api/v1/entries/0/proof", needs: "proofs.read", api: true },
  // Drug supply (issue 21): every study role sees the supply pages (numbers and states, never kit types: the
  // blinding test greps them); exports, custody and labels need their own permission. {kit} is a kit of the demo
  // dispensed at SITE-01 (kit numbers are random: read from the site pharmacist's inventory before the matrix).
  { path: "/studies/DEMO-001/supply", needs: "supply.view" },
  { path: "/studies/DEMO-001/supply/lots", needs: "supply.view" },
  { path: "/studies/DEMO-001/supply/shipments", needs: "supply.view" },
  { path: "/studies/DEMO-001/supply/pharmacy", needs: "supply.view" },
  { path: "/studies/DEMO-001/supply/destructions", needs: "supply.view" },
  { path: "/studies/DEMO-001/supply/reconciliation", needs: "supply.view" },
  { path: "/studies/DEMO-001/supply/kits/{kit}", needs: "supply.view" },
  { path: "/studies/DEMO-001/supply/kits/{kit}/custody.json", needs: "supply.custody" },
  { path: "/studies/DEMO-001/supply/accountability.csv?site=SITE-01", needs: "supply.export" },
  { path: "/studies/DEMO-001/supply/accountability.pdf?site=SITE-01", needs: "supply.export" },
  { path: "/studies/DEMO-001/supply/fhir.json", needs: "supply.export" },
  { path: "/studies/DEMO-001/supply/odm.xml", needs: "supply.export" },
  { path: "/studies/DEMO-001/supply/lots/LOT-2609-A/coa", needs: "supply.view" },
  { path: "/studies/DEMO-001/supply/lots/LOT-2609-A/labels.pdf", needs: "supply.manage" },
  { path: "/studies/OTHER-1", needs: "study.manage" }, // a study the role has no part in: only the platform admin
  { path: "/api/v1/studies/OTHER-1/forms", needs: "study.manage", api: true },
];

for (const engine of ["pglite", "postgres"] as const) {
  describe(`portal access on ${engine}`, () => {
    let portal: Portal;
    let env: Record<string, string>;
    let password: string;
    let scratch: { url: string; drop: () => Promise<void> } | undefined;
    const sessions = new Map<string, Browser>();
    let kit = "";
    const pathOf = (p: string) => p.replace("{kit}", kit);

    beforeAll(async () => {
      // The demo seeded once per run and engine (test/helpers/demo-snapshot.ts): this file tests access, not seeding.
      const clone = await demoClone(engine);
      const dataDir = clone.dataDir;
      if (clone.databaseUrl) scratch = { url: clone.databaseUrl, drop: clone.drop };
      // The local anchor at its default interval: the snapshot's first checkpoint is anchored already (the wait
      // below), and anchoring every 200 ms cost the portal CPU for the whole matrix.
      env = scratch ? { DATA_DIR: dataDir, DATABASE_URL: scratch.url } : { DATA_DIR: dataDir };
      portal = await startPortal(env);
      password = demoPasswordOf(portal);
      expect(cli(["studies", "create", "--code", "OTHER-1", "--title", "Other", "--site", "X"], env).code).toBe(0);
      for (const u of DEMO_USERS) {
        const b = new Browser(portal.url);
        const r = await b.signIn(u.email, password);
        expect(r.status, u.email).toBe(302);
        // By e-mail (two demo admins: the platform's and the study's sponsor) and by role (one person per other role).
        sessions.set(u.email, b);
        sessions.set(u.role, b);
      }
      // A kit the demo dispensed at SITE-01, from the site pharmacist's inventory (kit numbers are random).
      const inventory = await sessions.get("site_pharmacist")!.get("/studies/DEMO-001/supply/pharmacy");
      kit = /data-kit="(\d{6})" data-location="dispensed"/.exec(inventory.text)?.[1] ?? "";
      expect(kit, "a dispensed kit in the demo's SITE-01 inventory").toMatch(/^\d{6}$/);
      // The public log routes below need a sealed, anchored first checkpoint.
      await waitFor(async () => (await fetch(`${portal.url}/api/v1/checkpoints/1/anchors`)).status === 200, {
        what: "the first checkpoint sealed and anchored",
      });
    });
    afterAll(async () => {
      await portal?.stop();
      await scratch?.drop();
    });

    const allowed = (u: { role: Role; study?: string }, needs: Action | null | "public") =>
      needs === "public" ||
      needs === null ||
      // A platform admin (an admin of no study) may do everything but the membership-only actions (ADR 0053).
      (u.role === "admin" && !u.study && !MEMBERSHIP_ONLY_ACTIONS.includes(needs)) ||
      // study.manage here guards the platform's routes (new study, outbox, a study the role is no member of).
      (needs !== "study.manage" && (PERMISSIONS[needs] as readonly Role[]).includes(u.role));

    describe("role x route matrix (the demo study)", () => {
      for (const u of DEMO_USERS) {
        it(`${u.role}${u.study ? "" : " (platform)"}: exactly the routes its permissions allow`, async () => {
          const b = sessions.get(u.email)!;
          const got: string[] = [];
          const want: string[] = [];
          for (const r of ROUTES) {
            const res = await b.get(pathOf(r.path));
            const ok = res.status === 200 || (r.path.endsWith("/proof") && res.status === 202);
            got.push(`${r.path}: ${ok ? "allowed" : "denied"}`);
            want.push(`${r.path}: ${allowed(u, r.needs) ? "allowed" : "denied"}`);
            // Denied, never a redirect loop or a crash.
            if (!ok) expect([403, 404], `${u.role} ${r.path}`).toContain(res.status);
          }
          expect(got).toEqual(want);
        });
      }

      it(
        "pages carry a strict CSP: every inline script has this response's nonce, " + "and no 'unsafe-inline' script",
        async () => {
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
          expect(again.headers.get("content-security-policy")).not.toBe(
            (await b.get("/status")).headers.get("content-security-policy"),
          ); // fresh nonce per response
        },
      );

      it(
        "the study dashboard shows counts, each ledger's anchoring state " + "and a chart of the last 14 days",
        async () => {
          const page = (await sessions.get("monitor")!.get("/studies/DEMO-001")).text;
          const sealed = Number(/Ledger entries sealed<\/div><div class="stat">(\d+)/.exec(page)?.[1]);
          const pending = Number(/Ledger entries pending<\/div><div class="stat">(\d+)/.exec(page)?.[1]);
          expect(sealed + pending).toBeGreaterThan(10);
          expect(page).toMatch(
            new RegExp(`aria-label="Ledger entries, last 14 days: ${sealed + pending} entries over 14 days"`),
          );
          expect(page.replace(/<!-- -->/g, "")).toMatch(/local: <span class="badge[^"]*">(up to date|anchoring)</);
          expect(page).toMatch(
            /aria-label="Log: batches sealed and anchors made, last 14 days: [1-9]\d* batches over 14 days"/,
          );
        },
      );

      it("signed out: public routes only; pages redirect to sign-in and the API says 401", async () => {
        const b = new Browser(portal.url);
        for (const r of ROUTES) {
          const res = await b.get(pathOf(r.path));
          if (r.needs === "public") expect(res.status).toBe(200);
          else if (r.api) expect(res.status, r.path).toBe(401);
          else {
            expect(res.status, r.path).toBe(302);
            expect(res.location, r.path).toMatch(/^\/login(\?next=\S+)?$/);
          }
        }
      });

      it("randomization API: only roles that randomize at the site get past the permission check", async () => {
        // SITE-01-001 is randomized by the demo: a role allowed to randomize there hears "already randomized" (409);
        // any other is refused (403, or 404 for a role that may not see the participant); signed out, 401.
        const url = `${portal.url}/api/v1/studies/DEMO-001/participants/SITE-01-001/randomization`;
        const post = (cookie: string | null) =>
          fetch(url, {
            method: "POST",
            redirect: "manual",
            headers: {
              origin: portal.url,
              "content-type": "application/json",
              ...(cookie ? { cookie } : {}),
            },
            body: JSON.stringify({ factors: { sex: "F" } }),
          });
        const got: string[] = [];
        const want: string[] = [];
        for (const u of DEMO_USERS) {
          const res = await post(sessions.get(u.email)!.cookie);
          const text = await res.text();
          const ok = res.status === 409 && /already randomized/.test(text);
          if (!ok) expect([403, 404], `${u.role}: ${res.status} ${text}`).toContain(res.status);
          got.push(`${u.role}: ${ok ? "allowed" : "denied"}`);
          want.push(`${u.role}: ${allowed(u, "randomization.randomize") ? "allowed" : "denied"}`);
        }
        expect(got).toEqual(want);
        expect((await post(null)).status).toBe(401);
      });

      it(
        "the delegation log shows the demo delegations; the investigator delegates with an evidence file; " +
          "the audit trail filters and exports CSV",
        async () => {
          const inv = sessions.get("investigator")!;
          const page = await inv.get("/studies/DEMO-001/delegation");
          expect(page.text).toContain("Delegation of authority log");
          expect(page.text.match(/data-delegation=/g)?.length).toBe(3);
          // A coordinator sees the log but has no form to delegate; a delegation POST from them is refused.
          const coord = sessions.get("coordinator")!;
          expect((await coord.get("/studies/DEMO-001/delegation")).text).not.toContain("Delegate a task");
          const fd = new FormData();
          for (const [k, v] of Object.entries({
            site: "SITE-01",
            delegate: "coordinator@demo.trialseal.test",
            task: "signoff",
            startsOn: "2026-01-01",
            course: "Sign-off training",
            completedOn: "2026-01-02",
          }))
            fd.set(k, v);
          fd.set("evidence", new Blob(["certificate bytes"]), "cert.pdf");
          const post = (b: Browser, origin: string | null = portal.url) =>
            fetch(`${portal.url}/studies/DEMO-001/delegation`, {
              method: "POST",
              body: fd,
              headers: { cookie: b.cookie, ...(origin ? { origin } : {}) },
              redirect: "manual",
            });
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
          expect(lines[0]).toBe(
            "event,time_utc,action,outcome,user,site,subject,form,form_version,visit,record_version," +
              "field,old_value,new_value,reason,seal,detail,ip",
          );
          expect(lines.length).toBe(5); // the three seeded delegations and the new one
          expect(lines.slice(1).every((l) => l.includes('"delegation.grant"'))).toBe(true);
          const exported = await mon.get("/studies/DEMO-001/audit?action=export.audit_trail");
          expect(exported.text).toContain("export.audit_trail");
        },
      );
    });
  });
}

/**
 * Every route file of the portal is either in the GET matrix above or named here with the test that covers its
 * access rules (write-only API routes, token-addressed participant pages, sign-in flows): a new route file
 * without access tests fails this.
 */
const COVERED_ELSEWHERE: Record<string, string> = {
  "_index.tsx": "the home page redirects (portal.test.ts)",
  "login.tsx": "sign-in, lockout (test/db/accounts.test.ts, portal.test.ts)",
  "login_.totp.tsx": "TOTP step (test/db/accounts.test.ts, this file's sign-ins)",
  "logout.tsx": "sign-out kills the session server-side (access-sites.test.ts)",
  "forgot-password.tsx": "reset links through the outbox (test/db/accounts.test.ts)",
  "reset-password.$token.tsx": "reset tokens: single use, expiry (test/db/accounts.test.ts)",
  "consent.$token.tsx": "invitation token: expired, reused, superseded, locked (test/db/consent.test.ts, e2e econsent)",
  "consent_.$token.receipt[.pdf].ts": "receipt behind the signer's token (e2e econsent)",
  "c.$token.tsx": "public receipt check by token (e2e econsent)",
  "c_.$token.proof[.json].ts": "public proof by receipt token (e2e econsent)",
  "api.v1.studies.$code.participants.ts": "POST only: enrolment across sites and studies (access-sites.test.ts)",
  "api.v1.studies.$code.participants_.$subject.disposition.ts":
    "POST only: permission participants.enroll at the site, token attribution (test/db/dispositions.test.ts)",
  "studies.$code.schedule[.json].ts":
    "study.view, like /schedule; 404 until a schedule is set (visit-schedule.test.ts)",
  "api.v1.studies.$code.records.ts":
    "POST only: entry across sites and studies (access-sites.test.ts, test/db/records-api.test.ts)",
  "api.v1.studies.$code.records_.$id.ts": "GET/PUT by id across sites and studies (access-sites.test.ts)",
  "api.v1.studies.$code.records_.batch.ts":
    "POST only: per-item permission at each site, 401/404, token attribution (test/db/records-batch.test.ts, " +
    "records-batch-api.test.ts)",
  "api.v1.entries.$ref.proof.ts": "in the matrix as /api/v1/entries/0/proof; across sites in access-sites.test.ts",
  "api.v1.checkpoints.$size.anchors.ts": "in the matrix as /api/v1/checkpoints/1/anchors",
  "studies.$code.participants_.$subject.tsx": "across sites (access-sites.test.ts)",
  "studies.$code.participants_.$subject.casebook[.pdf].ts": "across sites (access-sites.test.ts)",
  "studies.$code.participants_.$subject_.consent.tsx": "across sites (access-sites.test.ts)",
  "studies.$code.participants_.$subject_.paper-consent.tsx":
    "needs records.read for the subject's site like the consent page; upload and attestation checks in " +
    "test/db/consent-gate.test.ts",
  "studies.$code.records.$id.tsx": "across sites (access-sites.test.ts)",
  "studies.$code.documents_.$id.pdf.ts":
    "documents.read like /documents; a document id is needed: test/db/study-documents.test.ts (altered bytes " +
    "refused), test/e2e/study-documents.test.ts (the download)",
  "studies.$code.export.$format.ts": "in the matrix for every format",
  "studies.$code.lock_.analysis-data-set.$id.ts":
    "study.view and a lock's id (the data manager's lock page links it): download, altered bytes refused " +
    "(database-lock.test.ts, test/db/database-lock.test.ts)",
  "studies.$code.lock_.allocations.ts":
    "proofs.read, refused until the study is unblinded (database-lock.test.ts, test/db/database-lock.test.ts); " +
    "searched for arms as every blinded role (blinding.test.ts)",
  "api.v1.studies.$code.participants_.$subject.randomization.ts":
    "POST only: every demo role and signed out in this file (randomization API); tokens and blinded answers in " +
    "blinding.test.ts and e2e pre-commitment-journey",
  "studies.$code._index.tsx": "in the matrix as /studies/DEMO-001",
  "studies.$code.queries[.csv].ts": "in the matrix as /studies/DEMO-001/queries.csv",
  "studies.$code.import_.$id.ts":
    "records.import like /import; a job id is needed, so its scoping is in test/db/data-import.test.ts",
  "studies._index.tsx": "in the matrix as /studies",
  "studies.$code.audit[.csv].ts": "in the matrix as /studies/DEMO-001/audit.csv",
  "studies.$code.exports.dictionary[.csv].ts": "in the matrix as /studies/DEMO-001/exports/dictionary.csv",
  "studies.$code.missing-data[.csv].ts": "in the matrix as /studies/DEMO-001/missing-data.csv",
  "api.v1.studies.$code.queries_.$id.reopen.ts":
    "POST only (re-open a query): roles, reason and states in test/db/query-workflow.test.ts",
  "api.v1.openapi[.json].ts": "in the matrix as /api/v1/openapi.json",
  "[.well-known].trialseal[.json].ts": "in the matrix as /.well-known/trialseal.json",
  "studies.$code.supply_.accountability[.csv].ts":
    "in the matrix as /studies/DEMO-001/supply/accountability.csv?site=SITE-01",
  "studies.$code.supply_.accountability[.pdf].ts":
    "in the matrix as /studies/DEMO-001/supply/accountability.pdf?site=SITE-01",
  "studies.$code.supply_.fhir[.json].ts": "in the matrix as /studies/DEMO-001/supply/fhir.json",
  "studies.$code.supply_.odm[.xml].ts": "in the matrix as /studies/DEMO-001/supply/odm.xml",
  "studies.$code.supply_.kits.$number.custody[.json].ts":
    "in the matrix as /studies/DEMO-001/supply/kits/{kit}/custody.json (a kit dispensed at SITE-01)",
  "studies.$code.supply_.lots_.$lot.labels[.pdf].ts":
    "in the matrix as /studies/DEMO-001/supply/lots/LOT-2609-A/labels.pdf",
  "kits.$token.tsx":
    "public, per label token (no sign-in): genuine/recalled/quarantined/expired only, HTML and JSON, 404 for an " +
    "unknown token (e2e drug-supply-journey, test/db/supply-shipments.test.ts)",
  "registry.$code[.json].ts":
    "in the matrix as /registry/DEMO-001.json (public; 404 unpublished in registration.test.ts)",
  "studies.$code.data-requests.tsx":
    "a researcher of the study, the data access committee or data_use.view (requireDataUseStudy, ADR 0069): " +
    "test/integration/data-use-pages.test.ts; the services' rights in test/db/data-use-requests.test.ts",
  "studies.$code.data-requests_.$id.tsx":
    "as /data-requests; another researcher's request is 404 (data-use-pages.test.ts, " +
    "test/db/data-use-requests.test.ts)",
  "studies.$code.data-requests_.$id_.deliveries.$delivery[.zip].ts":
    "the requesting researcher only (data-use-pages.test.ts), 410 after expiry " +
    "(test/db/data-use-deliveries.test.ts)",
};

describe("route coverage", () => {
  it("every route file is in the access matrix or names the test that covers it", async () => {
    const { readdirSync } = await import("node:fs");
    const { ROOT } = await import("../helpers/portal.ts");
    // Route files sit in area folders (app/routes/AREA/); the URL comes from the file name alone.
    const files = readdirSync(path.join(ROOT, "app", "routes"), { recursive: true })
      .map((f) => path.basename(String(f)))
      .filter((f) => /\.tsx?$/.test(f));
    const urlOf = (file: string) => {
      const stem = file.replace(/\.tsx?$/, "");
      const segs = stem.split(/\.(?![^[]*\])/).map((s) => s.replace(/_$/, "").replace(/^\[(.+)\]$/, "$1"));
      return (
        "/" +
        segs
          .filter((x) => x !== "_index")
          .join("/")
          .replace(/\/\[?\.(json|csv|pdf)\]?$/, ".$1")
      );
    };
    const inMatrix = (file: string) => {
      const re = new RegExp(
        "^" +
          urlOf(file)
            .replace(/\./g, "\\.")
            .replace(/\/\$[^/.]+/g, "/[^/]+") +
          "$",
      );
      return ROUTES.some((r) => re.test(r.path.split("?")[0]));
    };
    const uncovered = files.filter((f) => !inMatrix(f) && !COVERED_ELSEWHERE[f]);
    expect(uncovered).toEqual([]);
    expect(Object.keys(COVERED_ELSEWHERE).filter((f) => !files.includes(f))).toEqual([]); // no stale names
  });
});
