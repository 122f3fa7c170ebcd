/**
 * Blinded roles never see an arm (issue 20, ADR 0053), on PostgreSQL (one engine: the test reads the seed, the
 * nonce and the outbox, and gives consents and makes the accounts through the services on the portal's database).
 * A study of its own is made with the CLI (two sites, staff in every role); the unblinded statistician generates a
 * list on the randomization page whose arm codes, arm names and kit types are distinctive needles, and commits it;
 * ten participants are randomized at both sites (by page and API). Then, as every blinded role (investigator and
 * coordinator of each site, monitor, data manager, regulator, study admin, platform admin, an API token; the site 1
 * pharmacist for site 2), everything it can fetch is collected: every study page and its loader JSON (`?_data=`),
 * files, the API, proof bundles (every entry's, the randomization entries' by each role), every export (ZIPs
 * unzipped, PDFs as text), the public registry, the outbox, the CLI's exports, the ledger payloads and audit events,
 * the local ledger files and the portal's log; all of it is searched for the needles (arm codes and names, kit
 * types, "blockSizes", the seed and the design nonce in hex, base64url and as a byte list). An investigator of site 1
 * unblinds one participant in an emergency: the sponsor's notification holds no needle, refused attempts by others
 * say nothing, the others still see none, and that investigator sees the arm on that participant's page only. The
 * analysis data set sealed at lock holds no needle. The needles are shown present where they belong (the
 * statistician's preview, the emergency-unblinded page, a coordinator's page and the allocations file after the study
 * is unblinded), so the search can find them. Issue 21: the drug supply (a lot of each kit type, kits at both sites
 * dispensed by allocation, one returned and destroyed, a lot recalled) is seeded before the first sweep; its pages,
 * kit pages, custody files and exports are swept too, and the depot's lots page and the unblinded pharmacist's
 * inventory are shown to hold the kit types.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { unzipSync } from "fflate";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAppContext, type AppContext } from "../../app/platform/context.server.ts";
import { parseEnv } from "../../app/platform/env.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { recordDestruction, witnessDestruction } from "../../app/drug-supply/destruction.server.ts";
import { assignKit, dispenseKit, returnKit } from "../../app/drug-supply/dispensing.server.ts";
import { registerKits, registerLot, releaseLot } from "../../app/drug-supply/lots.server.ts";
import { recallLot } from "../../app/drug-supply/recall.server.ts";
import { expectedOnHand, reconcileSite } from "../../app/drug-supply/reconciliation.server.ts";
import { receiveShipment, sendShipment } from "../../app/drug-supply/shipments.server.ts";
import { todayIn } from "../../app/records/records.server.ts";
import { onePagePdf } from "../helpers/journey.ts";
import { lotInput } from "../helpers/supply-life.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { createScratchPostgres } from "../helpers/db.ts";
import { Browser, cliAsync, ROOT, startPortal, tempDataDir, type Portal } from "../helpers/portal.ts";
import { waitFor } from "../helpers/wait.ts";

const CODE = "BLIND-1";
const PW = "blinded staff password 2026 amber";
const ARMS = [
  ["ARMQUORVEX", "Quorvex 10 mg"],
  ["ARMPLACEBOZ", "Zeta matching placebo"],
] as const;
const KITS = ["KTQX71", "KTZP93"];
/** A lot of each kit type (issue 21); the kits whose pages and custody files are swept (numbers are random). */
const SUPPLY_LOTS = ["LOT-BQX-1", "LOT-BZP-2"];
let supplyKits: string[] = [];
/**
 * Set once the list is generated (read from the database): its seed and the design hash's secret nonce, each as hex,
 * base64url and the list of byte values a failed query's message prints.
 */
let secrets: string[] = [];
let seedHex = "";
const needles = () => [...ARMS.flat(), "Quorvex", KITS[0], KITS[1], "blockSizes", ...secrets];
const forms = (hex: string) => {
  const bytes = Buffer.from(hex, "hex");
  return [hex, bytes.toString("base64url"), Array.from(bytes).join(",")];
};

const STAFF = [
  ["stat", "unblinded_statistician", CODE],
  ["pharm", "unblinded_pharmacist", "S1"],
  ["inv1", "investigator", "S1"],
  ["inv2", "investigator", "S2"],
  ["coord1", "coordinator", "S1"],
  ["coord2", "coordinator", "S2"],
  ["mon", "monitor", CODE],
  ["dm", "data_manager", CODE],
  ["reg", "regulator", CODE],
  ["sadmin", "admin", CODE],
  ["padmin", "admin", null],
  // Issue 21: the depot sees kit types; the site pharmacist is blinded.
  ["depot", "depot_manager", CODE],
  ["spharm", "site_pharmacist", "S1"],
] as const;
const BLINDED = ["inv1", "inv2", "coord1", "coord2", "mon", "dm", "reg", "sadmin", "padmin", "spharm"] as const;
const email = (key: string) => `${key}@blind.test`;

let scratch: { url: string; drop: () => Promise<void> };
let portal: Portal;
let env: Record<string, string>;
let ctx: AppContext;
let sql: postgres.Sql;
let token = "";
/** The committed list's id. */
let listId = "";
/** The first seq whose bundle the next sweep reads for every entry. */
let bundlesFrom = 0;
const b: Record<string, Browser> = {};
const subjects: { subject: string; site: "S1" | "S2"; record: string }[] = [];
const out = mkdtempSync(path.join(tmpdir(), "ts-blind-"));
const T0 = Date.now();
/** Where the test is (seconds since the file loaded), for reading a slow run. */
const phase = (what: string) => console.log(`${((Date.now() - T0) / 1000).toFixed(1)} s: ${what}`);
/** What was searched, per kind: documents and bytes. */
const searched: Record<string, { docs: number; bytes: number }> = {};

interface Doc {
  who: string;
  kind: string;
  where: string;
  text: string;
}

beforeAll(async () => {
  scratch = await createScratchPostgres({ migrated: true });
  env = {
    DATA_DIR: tempDataDir(),
    DATABASE_URL: scratch.url,
    SESSION_SECRET: "blinding-test-session-secret-long-enough-0123456789",
    DATA_KEY: "42".repeat(32),
    SEED_DEMO: "false",
    // The local anchor at its default interval (10 s): nothing here waits for an anchor, and anchoring every 300 ms
    // cost the portal and the database CPU for the whole run; the ledger files swept still get anchors.
  };
  portal = await startPortal(env);
  const made = await cliAsync(
    ["studies", "create", "--code", CODE, "--title", "Blinding", "--site", "S1", "--site", "S2"],
    env,
  );
  expect(made.code, made.stderr).toBe(0);
  // The portal's database, through the services, for what has no quick HTTP path: the staff's accounts (the CLI
  // reads one password from standard input per account) and complete paper consents.
  ctx = await createAppContext(parseEnv({ ...env, NODE_ENV: "development" }, { createDevSecrets: false }), {
    migrate: false,
  });
  for (const [key, role, where] of STAFF)
    await createUser(
      ctx,
      {
        email: email(key),
        fullName: `${key} person`,
        password: PW,
        role,
        study: where === null ? undefined : CODE,
        site: where === null || where === CODE ? undefined : where,
      },
      null,
    );
  const form = path.join(ROOT, "app", "studies", "demo", "vitals.form.json");
  expect((await cliAsync(["forms", "import", "--study", CODE, form], env)).code).toBe(0);
  token = (await cliAsync(["tokens", "create", "--study", CODE, "--name", "blind"], env)).stdout.trim();
  expect(token).not.toBe("");
  sql = postgres(scratch.url, { max: 2, onnotice: () => {} });
  phase("portal, study and staff ready");
  for (const [key] of STAFF) {
    b[key] = new Browser(portal.url);
    const r = await b[key].signIn(email(key), PW);
    expect(r.status, `${key} signs in: ${"text" in r ? r.text : ""}`).toBe(302);
  }
}, 240_000);

afterAll(async () => {
  await sql?.end();
  await ctx?.database.close();
  await portal?.stop();
  await scratch?.drop();
});

async function send(who: Browser | string, method: string, p: string, body?: unknown) {
  const headers: Record<string, string> = { origin: portal.url };
  if (typeof who === "string") headers.authorization = `Bearer ${who}`;
  else headers.cookie = who.cookie;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(portal.url + p, {
    method,
    redirect: "manual",
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, bytes: new Uint8Array(await res.arrayBuffer()) };
}

/** A form post with repeated keys (the design's site checkboxes). */
async function postForm(who: Browser, p: string, pairs: [string, string][]) {
  const res = await fetch(portal.url + p, {
    method: "POST",
    redirect: "manual",
    headers: { cookie: who.cookie, origin: portal.url, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(pairs).toString(),
  });
  return { status: res.status, text: await res.text(), location: res.headers.get("location") };
}

/** Each PDF's text, by the PDF's SHA-256: the same bytes (fetched again, or by another role) give the same text. */
const pdfTexts = new Map<string, Promise<string>>();
let pdfsSearched = 0;

async function pdfText(data: Uint8Array) {
  pdfsSearched++;
  const key = createHash("sha256").update(data).digest("hex");
  let text = pdfTexts.get(key);
  if (!text) {
    text = (async () => {
      const { extractText, getDocumentProxy } = await import("unpdf");
      return String((await extractText(await getDocumentProxy(new Uint8Array(data)), { mergePages: true })).text);
    })();
    pdfTexts.set(key, text);
  }
  return text;
}

const isZip = (d: Uint8Array) => d[0] === 0x50 && d[1] === 0x4b && d[2] === 0x03 && d[3] === 0x04;
const isPdf = (d: Uint8Array) => new TextDecoder().decode(d.slice(0, 5)) === "%PDF-";

/** A response as searchable documents: ZIPs unzipped (recursively), PDFs as their text. */
async function docsOf(who: string, kind: string, where: string, data: Uint8Array): Promise<Doc[]> {
  if (isZip(data)) {
    const docs: Doc[] = [];
    for (const [name, content] of Object.entries(unzipSync(data)))
      docs.push(...(await docsOf(who, `${kind} (unzipped)`, `${where}!${name}`, content)));
    return docs;
  }
  if (isPdf(data)) return [{ who, kind: `${kind} (pdf text)`, where, text: await pdfText(data) }];
  return [{ who, kind, where, text: new TextDecoder().decode(data) }];
}

/** Run `fn` over `items`, `n` at a time. */
async function pool<T, R>(items: readonly T[], n: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await fn(items[i]);
      }
    }),
  );
  return results;
}

const S = `/studies/${CODE}`;
/** Study pages (suffix of /studies/CODE) whose route id is `routes/studies/studies.$code` + the suffix with dots. */
const STUDY_PAGES = [
  "",
  "/participants",
  "/matrix",
  "/queries",
  "/audit",
  "/review",
  "/documents",
  "/outcomes",
  "/randomization",
  "/lock",
  "/registration",
  "/missing-data",
  "/schedule",
  "/staff",
  "/settings",
  "/delegation",
  "/consent",
  "/forms",
  "/import",
  // Issue 21: the drug supply's pages (lots are visible to all; kits are never joined to a lot or a type).
  "/supply",
  "/supply/lots",
  "/supply/shipments",
  "/supply/pharmacy",
  "/supply/pharmacy?site=S2",
  "/supply/destructions",
  "/supply/reconciliation",
];
const STUDY_FILES = [
  "/audit.csv",
  "/queries.csv",
  "/missing-data.csv",
  "/schedule.json",
  "/exports/dictionary.csv",
  "/lock/allocations",
  "/export/odm",
  "/export/fhir",
  "/export/csv",
  "/export/evidence",
  "/supply/accountability.csv?site=S1",
  "/supply/accountability.pdf?site=S1",
  "/supply/accountability.csv?site=S2",
  "/supply/fhir.json",
  "/supply/odm.xml",
  `/supply/lots/${SUPPLY_LOTS[0]}/coa`,
  `/supply/lots/${SUPPLY_LOTS[0]}/labels.pdf`,
];
/** The loader's route id of a study page (supply pages are nested as `supply_.X`); a query string is dropped. */
const pageRoute = (suffix: string) => {
  const route = suffix.split("?")[0].replace(/^\/supply\//, "/supply_/");
  return `routes/studies/studies.$code${route ? route.replace(/\//g, ".") : "._index"}`;
};

/** Every URL a signed-in person (or a token) can ask for, with the route id of its loader JSON for pages. */
function urlsFor(opts: Sweep): { url: string; route?: string }[] {
  const sites = opts.sites ?? ["S1", "S2"];
  const urls: { url: string; route?: string }[] = [{ url: "/studies", route: "routes/studies/studies._index" }];
  if (!opts.sites) {
    for (const p of STUDY_PAGES) urls.push({ url: S + p, route: pageRoute(p) });
    // The statistician's preview of the list, asked for by its id (the audit trail names it).
    urls.push({ url: `${S}/randomization?preview=${listId}`, route: pageRoute("/randomization") });
    for (const f of STUDY_FILES)
      if (!f.startsWith("/export/") || opts.exports === "all" || (opts.exports && f !== "/export/evidence"))
        urls.push({ url: S + f });
    for (const k of supplyKits) {
      urls.push({ url: `${S}/supply/kits/${k}`, route: "routes/studies/studies.$code.supply_.kits.$number" });
      urls.push({ url: `${S}/supply/kits/${k}/custody.json` });
    }
  }
  for (const s of subjects.filter((x) => sites.includes(x.site))) {
    const base = `${S}/participants/${s.subject}`;
    urls.push({ url: base, route: "routes/studies/studies.$code.participants_.$subject" });
    // The record, consent pages and casebook PDF of the first participant of each site (the same code for all).
    if (subjects.find((x) => x.site === s.site) !== s) continue;
    urls.push({ url: `${S}/records/${s.record}`, route: "routes/studies/studies.$code.records.$id" });
    urls.push({ url: `/api/v1/studies/${CODE}/records/${s.record}` });
    urls.push({ url: `${base}/consent`, route: "routes/studies/studies.$code.participants_.$subject_.consent" });
    urls.push({
      url: `${base}/paper-consent`,
      route: "routes/studies/studies.$code.participants_.$subject_.paper-consent",
    });
    urls.push({ url: `${base}/casebook.pdf` });
  }
  for (const a of ["participants", "records", "queries", "forms"]) urls.push({ url: `/api/v1/studies/${CODE}/${a}` });
  return urls;
}

interface Sweep {
  /** Only these sites' participants (and no study-wide pages). */
  sites?: ("S1" | "S2")[];
  /** The study's exports: ODM, FHIR and CSV (true), and the evidence package ("all"). */
  exports?: boolean | "all";
  /** Every entry's proof bundle not fetched by an earlier sweep; otherwise the randomization entries' only. */
  allBundles?: boolean;
}

/**
 * Everything one principal can fetch: pages and their loader JSON (the page's route and, once, the root), files,
 * the API, proof bundles. A bundle is the same bytes for whoever may read it: every entry's bundle is fetched by the
 * roles that see them all, the randomization entries' bundles by every role.
 */
async function collect(who: string, auth: Browser | string, opts: Sweep = {}) {
  await sealedUpTo();
  const jobs: { url: string; kind: string }[] = [{ url: `${S}?_data=root`, kind: "loader JSON" }];
  for (const u of urlsFor(opts)) {
    jobs.push({ url: u.url, kind: u.url.startsWith("/api/") ? "api" : u.route ? "page" : "file/export" });
    if (u.route)
      jobs.push({
        url: `${u.url}${u.url.includes("?") ? "&" : "?"}_data=${encodeURIComponent(u.route)}`,
        kind: "loader JSON",
      });
  }
  if (!opts.sites) {
    const seqs = opts.allBundles
      ? await sql`SELECT seq::int AS seq FROM ledger_entries WHERE seq >= ${bundlesFrom} ORDER BY seq`
      : await sql`SELECT seq::int AS seq FROM ledger_entries WHERE kind LIKE 'randomization.%' ORDER BY seq`;
    for (const { seq } of seqs) jobs.push({ url: `/api/v1/entries/${seq}/proof`, kind: "bundle" });
  }
  const docs = await pool(jobs, 4, async (j) => {
    const r = await send(auth, "GET", j.url);
    return docsOf(who, j.kind, `${j.url} (${r.status})`, r.bytes);
  });
  return docs.flat();
}

/** Wait until every ledger entry is sealed; the highest seq. */
async function sealedUpTo(): Promise<number> {
  return waitFor(
    async () => {
      const [r] = await sql`SELECT count(*) FILTER (WHERE seq IS NULL)::int AS pending, max(seq)::int AS max
        FROM ledger_entries`;
      return r.pending === 0 ? { max: Number(r.max) } : null;
    },
    { what: "every ledger entry sealed" },
  ).then((r) => r.max);
}

/** What the deployment emits without a signed-in person: public pages, CLI exports, ledger files, the log. */
async function collectDeployment(tag: string): Promise<Doc[]> {
  const docs: Doc[] = [];
  for (const p of [
    `/registry/${CODE}`,
    `/registry/${CODE}.json`,
    `/registry/${CODE}?_data=${encodeURIComponent("routes/public/registry.$code")}`,
    "/",
    "/status",
    "/.well-known/trialseal.json",
  ]) {
    const res = await fetch(portal.url + p, { redirect: "manual" });
    docs.push(...(await docsOf("anyone", "public", `${p} (${res.status})`, new Uint8Array(await res.arrayBuffer()))));
  }
  const exports = await Promise.all(
    ["odm", "fhir", "csv", "evidence"].map(async (format) => {
      const file = path.join(out, `${tag}.${format}`);
      const r = await cliAsync(["export", "--study", CODE, "--format", format, "--out", file], env);
      expect(r.code, r.stderr).toBe(0);
      return docsOf("operator", "CLI export", `trialseal export ${format}`, new Uint8Array(readFileSync(file)));
    }),
  );
  docs.push(...exports.flat());
  const alloc = await cliAsync(["export", "--study", CODE, "--format", "allocations", "--out", `${out}/a`], env);
  docs.push({ who: "operator", kind: "CLI output", where: "export allocations", text: alloc.stdout + alloc.stderr });
  const ledgerDir = path.join(env.DATA_DIR, "ledger");
  for (const f of readdirSync(ledgerDir))
    docs.push(...(await docsOf("anyone", "ledger file", f, new Uint8Array(readFileSync(path.join(ledgerDir, f))))));
  const outbox = await sql`SELECT kind, to_address, subject, body FROM outbox ORDER BY created_at`;
  for (const m of outbox)
    docs.push({ who: m.to_address, kind: "notification", where: `${m.kind}: ${m.subject}`, text: m.body });
  for (const p of ["/outbox", `/outbox?_data=${encodeURIComponent("routes/accounts/outbox")}`]) {
    const r = await send(b.padmin, "GET", p);
    docs.push(...(await docsOf("padmin", "outbox page", `${p} (${r.status})`, r.bytes)));
  }
  const payloads = await sql`SELECT kind, payload_text FROM ledger_entries`;
  for (const e of payloads) docs.push({ who: "anyone", kind: "ledger payload", where: e.kind, text: e.payload_text });
  const events = await sql`SELECT action, detail::text AS detail FROM audit_events`;
  for (const e of events) docs.push({ who: "auditor", kind: "audit event", where: e.action, text: e.detail });
  docs.push({ who: "portal", kind: "log", where: "the portal's stdout and stderr", text: portal.output() });
  return docs;
}

/** Each document that holds a needle, unless `allowed` says it may. */
function leaksIn(docs: Doc[], allowed: (d: Doc) => boolean = () => false): string[] {
  const found: string[] = [];
  for (const d of docs) {
    const kind = d.kind.replace(/ \(.*\)$/, "");
    searched[kind] ??= { docs: 0, bytes: 0 };
    searched[kind].docs++;
    searched[kind].bytes += d.text.length;
    const lower = d.text.toLowerCase();
    for (const n of needles())
      if (lower.includes(n.toLowerCase()) && !allowed(d)) found.push(`${d.who}: ${d.kind} ${d.where} holds "${n}"`);
  }
  return found;
}

/**
 * Every blinded role's view (the study-wide exports when `exports`: the evidence package, the same for each role
 * that may export it, by the monitor). Every entry's bundle is read by the platform admin and the token, those of
 * entries sealed since the last sweep; then the next sweep starts after them.
 */
async function everyBlindedRole(exports: boolean): Promise<Doc[]> {
  const all = new Set(["padmin"]);
  const sealed = await sealedUpTo();
  const per = await Promise.all([
    ...BLINDED.map((who) =>
      collect(who, b[who], { exports: exports && (who === "mon" ? "all" : true), allBundles: all.has(who) }),
    ),
    collect("token", token, { exports, allBundles: true }),
    collect("pharm (site 1 pharmacist, site 2)", b.pharm, { sites: ["S2"] }),
  ]);
  bundlesFrom = sealed + 1;
  return per.flat();
}

/**
 * The drug supply (issue 21) through the services: a released lot of each kit type, kits shipped to both sites and
 * received, a kit assigned and dispensed by allocation to each randomized participant of site 1, one returned,
 * destroyed and witnessed; the first lot recalled (the sites' notices); site 1 reconciled. The kits swept: one
 * dispensed at site 1, one on hand at site 2.
 */
async function seedSupply() {
  const who = async (key: string) => {
    const [u] = await sql`SELECT id FROM users WHERE email = ${email(key)}`;
    return (await principalForUser(ctx, String(u.id)))!;
  };
  const [depot, sadmin, spharm, coord1, coord2, mon] = await Promise.all(
    ["depot", "sadmin", "spharm", "coord1", "coord2", "mon"].map(who),
  );
  for (const [i, lot] of SUPPLY_LOTS.entries()) {
    const coa = { fileName: `coa-${lot}.pdf`, bytes: await onePagePdf(`Certificate of analysis ${lot}`, ["OK"]) };
    await registerLot(ctx, depot, CODE, lotInput(lot, KITS[i]), coa);
    await releaseLot(ctx, sadmin, CODE, lot);
    await registerKits(ctx, depot, CODE, { lotNumber: lot, count: 8, units: 30 });
  }
  const shipped: Record<string, string[]> = {};
  for (const [site, receiver] of [
    ["S1", spharm],
    ["S2", coord2],
  ] as const) {
    const fromLots = SUPPLY_LOTS.map((lotNumber) => ({ lotNumber, count: 4 }));
    const sent = await sendShipment(ctx, depot, CODE, { site, depot: "DEPOT-EU", fromLots });
    await receiveShipment(ctx, receiver, CODE, sent.number, { temperatureMinC: "3", temperatureMaxC: "7" });
    shipped[site] = sent.kits;
  }
  const dispensed: string[] = [];
  for (const s of subjects.filter((x) => x.site === "S1")) {
    const { kit } = await assignKit(ctx, spharm, CODE, s.subject);
    await dispenseKit(ctx, spharm, CODE, s.subject, { kit });
    dispensed.push(kit);
  }
  await returnKit(ctx, spharm, CODE, { kit: dispensed[0], unitsReturned: "10", returnedOn: todayIn() });
  const { destructionId } = await recordDestruction(ctx, spharm, CODE, {
    site: "S1",
    kits: [dispensed[0]],
    method: "incineration by the contractor",
  });
  await witnessDestruction(ctx, coord1, CODE, destructionId, { password: PW }, { ip: null, userAgent: null });
  await recallLot(ctx, sadmin, CODE, { lotNumber: SUPPLY_LOTS[0], reason: "particles in retained samples" });
  await reconcileSite(ctx, mon, CODE, { site: "S1", counted: (await expectedOnHand(ctx, CODE, "S1")).onHand });
  supplyKits = [dispensed[1], shipped.S2[0]];
}

const hasArm = (text: string) => ARMS.some(([code, name]) => text.includes(code) && text.includes(name));

describe("blinded roles never see an arm", () => {
  it("in any page, loader data, API answer, bundle, export, notification or log line", async () => {
    phase("signed in");
    // Participants at both sites, each with a complete consent and a record.
    for (const site of ["S1", "S2", "S1", "S2", "S1", "S2", "S1", "S2", "S1", "S2"] as const) {
      const inv = site === "S1" ? b.inv1 : b.inv2;
      const e = await send(inv, "POST", `/api/v1/studies/${CODE}/participants`, { site });
      expect(e.status, new TextDecoder().decode(e.bytes)).toBe(201);
      const subject = JSON.parse(new TextDecoder().decode(e.bytes)).subject as string;
      await giveCompleteConsent(ctx, CODE, subject);
      const r = await send(inv, "POST", `/api/v1/studies/${CODE}/records`, {
        subject,
        form: "VITALS",
        visit: "SCREENING",
        data: { sbp: 120, dbp: 80, visit_date: "2026-03-01" },
      });
      expect(r.status, new TextDecoder().decode(r.bytes)).toBe(201);
      subjects.push({ subject, site, record: JSON.parse(new TextDecoder().decode(r.bytes)).id });
    }

    phase("participants enrolled, consented");
    // The statistician generates a list on the randomization page, previews and commits it.
    const page = `${S}/randomization`;
    const drafted = await postForm(b.stat, page, [
      ["arms", ARMS.map(([c, n]) => `${c}, ${n}, 1`).join("\n")],
      ["blockSizes", "2, 4"],
      ["factor1Name", ""],
      ["factor1Label", ""],
      ["factor1Levels", ""],
      ["factor2Name", ""],
      ["factor2Label", ""],
      ["factor2Levels", ""],
      ["sites", "S1"],
      ["sites", "S2"],
      ["slotsPerStratum", "12"],
      ["kitTypes", `${KITS[0]} = ${ARMS[0][0]}\n${KITS[1]} = ${ARMS[1][0]}`],
      ["source", "generate"],
    ]);
    // Made, the page redirects to the new draft's preview.
    expect(drafted.status, drafted.text).toBe(302);
    listId = /\?preview=([0-9a-f-]{36})/.exec(drafted.location ?? "")?.[1] ?? "";
    expect(listId).toMatch(/^[0-9a-f-]{36}$/);
    const [list] = await sql`SELECT encode(seed, 'hex') AS seed, encode(design_nonce, 'hex') AS nonce
      FROM randomization_lists WHERE id = ${listId}`;
    seedHex = String(list.seed);
    expect(seedHex).toMatch(/^[0-9a-f]{64}$/);
    expect(String(list.nonce)).toMatch(/^[0-9a-f]{64}$/);
    secrets = [...forms(seedHex), ...forms(String(list.nonce))];
    // Where the needles belong: the statistician's preview (page and loader JSON) shows arms, names and kit types.
    const preview = await b.stat.get(`${page}?preview=${listId}`);
    const previewData = await b.stat.get(
      `${page}?preview=${listId}&_data=${encodeURIComponent("routes/studies/studies.$code.randomization")}`,
    );
    for (const n of [...ARMS.flat(), ...KITS]) expect(preview.text, `the preview shows ${n}`).toContain(n);
    for (const n of [...ARMS.flat(), ...KITS, "blockSizes"]) expect(previewData.text).toContain(n);
    const committed = await postForm(b.stat, page, [
      ["intent", "commit"],
      ["list", listId],
      ["confirm", "on"],
    ]);
    expect(committed.status, committed.text).toBe(200);
    expect(committed.text).toContain("The randomization list is committed and sealed");

    phase("list committed");
    // Randomize: half from the participant page, half through the API.
    for (const [i, s] of subjects.entries()) {
      const inv = s.site === "S1" ? b.inv1 : b.inv2;
      if (i % 2 === 0) {
        const r = await postForm(inv, `${S}/participants/${s.subject}`, [["intent", "randomize"]]);
        expect(r.status, r.text).toBe(302);
      } else {
        const r = await send(inv, "POST", `/api/v1/studies/${CODE}/participants/${s.subject}/randomization`, {
          factors: {},
        });
        const text = new TextDecoder().decode(r.bytes);
        expect(r.status, text).toBe(201);
        expect(leaksIn([{ who: "inv", kind: "api", where: "randomization answer", text }])).toEqual([]);
      }
    }
    const [{ n }] = await sql`SELECT count(*)::int AS n FROM randomization_allocations`;
    expect(n).toBe(10);
    // Publish the registration page (the sponsor) so the public page has content.
    const pub = await postForm(b.sadmin, `${S}/registration`, [["intent", "publish"]]);
    expect(pub.status, pub.text).toBe(200);

    await seedSupply();
    // Where kit types belong: the depot's lots page and the unblinded pharmacist's inventory show them (so the
    // search below can find them); the blinded site pharmacist's inventory and kit page name no lot either.
    const depotLots = await b.depot.get(`${S}/supply/lots`);
    for (const k of KITS) expect(depotLots.text, `the depot's lots page shows ${k}`).toContain(k);
    const unblindedInventory = await b.pharm.get(`${S}/supply/pharmacy?site=S1`);
    for (const k of KITS) expect(unblindedInventory.text, `the unblinded pharmacist sees ${k}`).toContain(k);
    expect(leaksIn([{ who: "depot", kind: "control", where: "lots", text: depotLots.text }])).not.toEqual([]);
    for (const p of ["/supply/pharmacy", `/supply/kits/${supplyKits[0]}`]) {
      const r = await b.spharm.get(S + p);
      expect(r.status, p).toBe(200);
      for (const lot of SUPPLY_LOTS) expect(r.text, `${p} names no lot`).not.toContain(lot);
    }
    phase("randomized, published, supply seeded");
    // Before any unblinding: nothing anywhere.
    const before = [...(await everyBlindedRole(false))];
    phase("roles swept");
    before.push(...(await collectDeployment("before")));
    phase("first sweep done");
    // The allocations' bundles were searched: each study-wide role reads all ten, each site's staff their five.
    const allocated = (who: string) =>
      before.filter((d) => d.who === who && d.kind === "bundle" && d.text.includes('"kind":"randomization.allocated"'))
        .length;
    for (const who of ["mon", "dm", "reg", "sadmin", "padmin", "token"]) expect(allocated(who), who).toBe(10);
    for (const who of ["inv1", "inv2", "coord1", "coord2"]) expect(allocated(who), who).toBe(5);
    expect(leaksIn(before)).toEqual([]);

    // An investigator of site 1 unblinds one participant in an emergency.
    const target = subjects.find((s) => s.site === "S1")!;
    const targetPage = `${S}/participants/${target.subject}`;
    const reason = "Anaphylaxis QXREASON after the second dose";
    const unblinded = await postForm(b.inv1, targetPage, [
      ["intent", "emergency_unblind"],
      ["reason", reason],
      ["confirm", "yes"],
    ]);
    expect(unblinded.status, unblinded.text).toBe(302);
    const told = await sql`SELECT to_address, subject, body FROM outbox WHERE kind = 'emergency_unblinding'`;
    expect(told.map((m) => m.to_address).sort()).toEqual([email("sadmin"), email("stat")]);
    for (const m of told) {
      expect(m.body).toContain(target.subject);
      expect(m.body).not.toContain("QXREASON");
      expect(leaksIn([{ who: m.to_address, kind: "notification", where: m.subject, text: m.body }])).toEqual([]);
    }
    phase("emergency unblinding");
    // Refused attempts say nothing either: a coordinator of the site, the other site's investigator.
    const refused: Doc[] = [];
    for (const who of ["coord1", "inv2"]) {
      const r = await postForm(b[who], targetPage, [
        ["intent", "emergency_unblind"],
        ["reason", reason],
        ["confirm", "yes"],
      ]);
      expect([403, 404], `${who}: ${r.text.slice(0, 200)}`).toContain(r.status);
      refused.push({ who, kind: "refusal", where: `POST ${targetPage}`, text: r.text });
    }
    expect(leaksIn(refused)).toEqual([]);
    // The investigator sees the arm on that participant's page (and its loader JSON), nowhere else.
    const seen = await b.inv1.get(targetPage);
    expect(hasArm(seen.text), "the unblinding investigator sees the arm").toBe(true);
    const mayShow = (d: Doc) =>
      d.who === "inv1" && (d.where.startsWith(`${targetPage} (`) || d.where.startsWith(`${targetPage}?_data=routes`));
    const after = [...(await everyBlindedRole(true)), ...(await collectDeployment("after"))];
    const shown = after.filter((d) => mayShow(d) && hasArm(d.text));
    expect(shown.map((d) => d.where).sort()).toEqual(
      [targetPage, `${targetPage}?_data=${encodeURIComponent("routes/studies/studies.$code.participants_.$subject")}`]
        .map((u) => `${u} (200)`)
        .sort(),
    );
    expect(leaksIn(after, mayShow)).toEqual([]);

    phase("second sweep done");
    // Lock (data manager) and unblind (statistician): now a coordinator sees each participant's arm.
    const coordPage = `${S}/participants/${subjects.find((s) => s.site === "S2")!.subject}`;
    expect(hasArm((await b.coord2.get(coordPage)).text)).toBe(false);
    const locked = await postForm(b.dm, `${S}/lock`, [
      ["intent", "lock"],
      ["reason", "final database lock"],
    ]);
    expect(locked.status, locked.text).toBe(200);
    // The analysis data set sealed at lock, before unblinding: no arm (data manager and monitor download it).
    const href = /href="([^"]*\/analysis-data-set\/[0-9a-f-]{36})"/.exec((await b.dm.get(`${S}/lock`)).text)?.[1];
    expect(href).toBeDefined();
    const sets: Doc[] = [];
    for (const who of ["dm", "mon"] as const) {
      const r = await send(b[who], "GET", href!);
      expect(r.status, who).toBe(200);
      sets.push(...(await docsOf(who, "analysis data set", href!, r.bytes)));
    }
    expect(sets.some((d) => d.kind.includes("unzipped") && d.text.includes(subjects[0].subject))).toBe(true);
    expect(leaksIn(sets)).toEqual([]);
    const open = await postForm(b.stat, `${S}/lock`, [
      ["intent", "unblind"],
      ["confirm", "on"],
    ]);
    expect(open.status, open.text).toBe(200);
    expect(hasArm((await b.coord2.get(coordPage)).text), "after unblinding a coordinator sees the arm").toBe(true);
    // The allocations file (monitor) now holds arms, kit types and the seed: the search finds each needle.
    const alloc = await send(b.mon, "GET", `${S}/lock/allocations`);
    expect(alloc.status).toBe(200);
    const allocText = new TextDecoder().decode(alloc.bytes);
    for (const n of [ARMS[0][0], ARMS[1][0], KITS[0], KITS[1], seedHex, secrets[4]]) expect(allocText).toContain(n);

    const lines = Object.entries(searched).map(([k, v]) => `${k}: ${v.docs} documents, ${v.bytes} bytes`);
    lines.push(`PDFs: ${pdfsSearched} searched, ${pdfTexts.size} distinct (each one's text extracted once)`);
    console.log(`searched for ${needles().length} needles:\n${lines.join("\n")}`);
  }, 900_000); // the whole sweep: about 2 min alone on an idle machine, several times that on a loaded one
});
