/**
 * The investigator's brochure (IB) and the data management plan (DMP) as study documents (issue 20, ADR 0048) on
 * PGlite and PostgreSQL: each registered as a versioned PDF upload exactly like the protocol and the SAP (its SHA-256
 * sealed in a `study_document.registered` entry with its type, version, approval date and approving body, the free
 * text as salted hashes); an amendment of each naming the version of its own type it replaces and a reason (refused
 * without them, or naming another type's version); a site approval of each; each shown with its type on the
 * documents page and on the public registration page's data; the integrity audit clean.
 */
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { saltedTextHash } from "../../anchoring/log/text-hash.ts";
import { type AuditReport, runIntegrityAudit } from "../../app/integrity-audit/integrity-audit.server.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";
import { publicRegistry } from "../../app/registration/public-registry.server.ts";
import { registrationPage, setRegistration } from "../../app/registration/registration.server.ts";
import { approveAtSite, listDocuments, registerDocument } from "../../app/study-documents/study-documents.server.ts";
import { createStudy, getStudyOrThrow } from "../../app/studies/studies.server.ts";
import { engineUnderTest, openTestDatabase, type TestDb } from "../helpers/db.ts";
import { createStaff } from "../helpers/study-staff.ts";

let t: TestDb;
let p: Record<string, Principal>;
let studyId: string;
const STUDY = "DOC-TYPES";
const rows = async (q: string) => (await t.database.execute(q)) as Record<string, unknown>[];
const pdf = (text: string) => ({
  fileName: `${text}.pdf`,
  content: new Uint8Array(Buffer.from(`%PDF-1.7\n% ${text}\n%%EOF\n`)),
});
const sha256Of = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const tamperFindings = (r: AuditReport) => r.findings.filter((f) => f.severity === "tamper");

/** First versions of all four types, registered the same way; the IB and the DMP are the ones under test. */
const FIRST = [
  { type: "protocol", version: "1.0", approvedOn: "2026-01-10", approvingBody: "Central Ethics Committee Alpha" },
  { type: "sap", version: "1.0", approvedOn: "2026-01-11", approvingBody: "Trial Steering Committee Beta" },
  { type: "ib", version: "1.0", approvedOn: "2026-01-12", approvingBody: "Sponsor Medical Board Gamma" },
  { type: "dmp", version: "1.0", approvedOn: "2026-01-13", approvingBody: "Data Management Board Delta" },
] as const;
const AMEND = {
  ib: {
    type: "ib",
    version: "2.0",
    approvedOn: "2026-02-01",
    approvingBody: "Sponsor Medical Board Gamma",
    replaces: "1.0",
    reason: "New hepatic safety data from study ZX-104 (Epsilon)",
  },
  dmp: {
    type: "dmp",
    version: "1.1",
    approvedOn: "2026-02-02",
    approvingBody: "Data Management Board Delta",
    replaces: "1.0",
    reason: "Query turnaround target changed to 5 days (Zeta)",
  },
} as const;
/** Document id and registration result by `type@version`. */
const reg: Record<string, { id: string; sha256: string; bytes: number; entryId: string; file: Uint8Array }> = {};

async function register(input: Record<string, string>) {
  const file = pdf(`${input.type}-${input.version}`);
  const r = await registerDocument(t.ctx, p.admin, STUDY, input, file);
  reg[`${input.type}@${input.version}`] = { ...r, file: file.content };
  return r;
}

async function sealedPayload(entryId: string) {
  const [e] = await rows(`SELECT kind, payload_text FROM ledger_entries WHERE id = '${entryId}'`);
  expect(e.kind).toBe("study_document.registered");
  return { text: String(e.payload_text), payload: JSON.parse(String(e.payload_text)) as Record<string, unknown> };
}

beforeAll(async () => {
  t = await openTestDatabase();
  await createStudy(t.ctx, { code: STUDY, title: "Document types", sites: [{ code: "S1", name: "Site one" }] }, null);
  studyId = (await getStudyOrThrow(t.ctx, STUDY)).id;
  p = (
    await createStaff(t.ctx, STUDY, "doctypes.test", [
      ["admin", "admin"],
      ["inv", "investigator", "S1"],
    ])
  ).principals;
}, 120_000);
afterAll(async () => {
  await t?.close();
});

describe(`investigator's brochure and data management plan on ${engineUnderTest()}`, () => {
  it("registers a first IB and DMP like the protocol and SAP: SHA-256, version, approval date, body", async () => {
    for (const input of FIRST) {
      const r = await register(input);
      const file = reg[`${input.type}@${input.version}`].file;
      expect(r).toMatchObject({ type: input.type, version: input.version, sha256: sha256Of(file) });
      const { text, payload } = await sealedPayload(r.entryId);
      expect(payload).toMatchObject({
        document: r.id,
        type: input.type,
        version: input.version,
        sha256: sha256Of(file),
        bytes: file.byteLength,
        approvedOn: input.approvedOn,
        replaces: null,
        reasonHash: null,
      });
      // The approving body and file name are sealed as salted hashes only.
      expect(payload.approverHash).toBe(saltedTextHash(t.ctx.crypto, String(payload.salt), input.approvingBody));
      expect(payload.fileNameHash).toBe(
        saltedTextHash(t.ctx.crypto, String(payload.salt), `${input.type}-${input.version}.pdf`),
      );
      expect(text).not.toContain(input.approvingBody);
    }
    // All four the same way: the same payload fields whatever the type.
    const shapes = await Promise.all(
      FIRST.map(async (d) => Object.keys((await sealedPayload(reg[`${d.type}@${d.version}`].entryId)).payload).sort()),
    );
    for (const s of shapes) expect(s).toEqual(shapes[0]);
    const stored = await rows(
      `SELECT type, version, approved_on::text AS approved_on, approving_body, encode(sha256, 'hex') AS sha256,
              replaces_id, reason
         FROM study_documents WHERE study_id = '${studyId}' ORDER BY type`,
    );
    expect(stored).toEqual(
      [...FIRST]
        .sort((a, b) => a.type.localeCompare(b.type))
        .map((d) => ({
          type: d.type,
          version: d.version,
          approved_on: d.approvedOn,
          approving_body: d.approvingBody,
          sha256: reg[`${d.type}@${d.version}`].sha256,
          replaces_id: null,
          reason: null,
        })),
    );
    const events = await rows(
      `SELECT detail->>'type' AS type FROM audit_events
        WHERE study_id = '${studyId}' AND action = 'study_document.registered'`,
    );
    expect(events.map((e) => e.type).sort()).toEqual(["dmp", "ib", "protocol", "sap"]);
  });

  it("amends the IB and the DMP naming the replaced version of their own type and a reason", async () => {
    // Without the version replaced, without a reason, or naming a version only another type has: refused.
    const { replaces: _r, ...ibNoReplaces } = AMEND.ib;
    await expect(registerDocument(t.ctx, p.admin, STUDY, ibNoReplaces, pdf("ib-2.0-draft"))).rejects.toMatchObject({
      code: "invalid",
      field: "replaces",
      message: "Replaces: an amendment names the investigator's brochure version it replaces (1.0)",
    });
    await expect(
      registerDocument(t.ctx, p.admin, STUDY, { ...AMEND.dmp, reason: "" }, pdf("dmp-1.1-draft")),
    ).rejects.toMatchObject({
      code: "invalid",
      field: "reason",
      message: "Reason: give the reason for amending version 1.0",
    });
    await expect(
      registerDocument(t.ctx, p.admin, STUDY, { ...AMEND.dmp, replaces: "2.0" }, pdf("dmp-1.1-draft")),
    ).rejects.toMatchObject({
      code: "invalid",
      field: "replaces",
      message: "Replaces: there is no data management plan version 2.0 (the versions are 1.0)",
    });
    const [{ n: before }] = await rows(`SELECT count(*)::int AS n FROM study_documents WHERE study_id = '${studyId}'`);
    expect(Number(before)).toBe(FIRST.length);

    for (const input of [AMEND.ib, AMEND.dmp]) {
      const r = await register(input);
      const replaced = reg[`${input.type}@${input.replaces}`];
      const { text, payload } = await sealedPayload(r.entryId);
      expect(payload).toMatchObject({
        document: r.id,
        type: input.type,
        version: input.version,
        sha256: sha256Of(reg[`${input.type}@${input.version}`].file),
        approvedOn: input.approvedOn,
        replaces: replaced.id,
      });
      expect(payload.reasonHash).toBe(saltedTextHash(t.ctx.crypto, String(payload.salt), input.reason));
      expect(text).not.toContain(input.reason);
      const [row] = await rows(`SELECT type, replaces_id, reason FROM study_documents WHERE id = '${r.id}'`);
      expect(row).toEqual({ type: input.type, replaces_id: replaced.id, reason: input.reason });
      const [ev] = await rows(
        `SELECT detail->>'replaces' AS replaces, detail->>'version' AS version FROM audit_events
          WHERE action = 'study_document.registered' AND detail->>'document' = '${r.id}'`,
      );
      expect(ev).toEqual({ replaces: input.replaces, version: input.version });
    }
    // A version is replaced once: a second amendment of IB 1.0 is refused naming the one that replaced it.
    await expect(
      registerDocument(t.ctx, p.admin, STUDY, { ...AMEND.ib, version: "2.1" }, pdf("ib-2.1")),
    ).rejects.toMatchObject({
      field: "replaces",
      message: "Replaces: version 1.0 was already replaced by version 2.0",
    });
  });

  it("records a site's approval of the IB and DMP amendments", async () => {
    for (const [key, on] of [
      ["ib@2.0", "2026-02-10"],
      ["dmp@1.1", "2026-02-11"],
    ] as const) {
      const a = await approveAtSite(t.ctx, p.inv, STUDY, { document: reg[key].id, site: "S1", approvedOn: on });
      expect(a).toMatchObject({ site: "S1", version: key.split("@")[1], approvedOn: on });
      const [e] = await rows(`SELECT kind, payload_text FROM ledger_entries WHERE id = '${a.entryId}'`);
      expect(e.kind).toBe("study_document.site_approved");
      expect(JSON.parse(String(e.payload_text))).toMatchObject({ document: reg[key].id, site: "S1", approvedOn: on });
    }
  });

  it("the documents page shows each IB and DMP version with its type, the replaced version and reason", async () => {
    const list = await listDocuments(t.ctx, p.inv, STUDY);
    const view = (type: string) =>
      list.documents
        .filter((d) => d.type === type)
        .map((d) => ({
          version: d.version,
          sha256: d.sha256,
          replaces: d.replaces,
          reason: d.reason,
          matchesSeal: d.matchesSeal,
          approvals: d.siteApprovals.map((a) => [a.site, a.approvedOn]),
        }));
    expect(view("ib")).toEqual([
      { version: "1.0", sha256: reg["ib@1.0"].sha256, replaces: null, reason: null, matchesSeal: true, approvals: [] },
      {
        version: "2.0",
        sha256: reg["ib@2.0"].sha256,
        replaces: "1.0",
        reason: AMEND.ib.reason,
        matchesSeal: true,
        approvals: [["S1", "2026-02-10"]],
      },
    ]);
    expect(view("dmp")).toEqual([
      { version: "1.0", sha256: reg["dmp@1.0"].sha256, replaces: null, reason: null, matchesSeal: true, approvals: [] },
      {
        version: "1.1",
        sha256: reg["dmp@1.1"].sha256,
        replaces: "1.0",
        reason: AMEND.dmp.reason,
        matchesSeal: true,
        approvals: [["S1", "2026-02-11"]],
      },
    ]);
  });

  it("the public registration data show each IB and DMP version with its type and sealed hash", async () => {
    expect(await publicRegistry(t.ctx, STUDY)).toBeNull(); // not published yet
    await setRegistration(t.ctx, p.admin, STUDY, { published: true });
    expect(await registrationPage(t.ctx, studyId)).toMatchObject({ published: true, documents: 6 });
    const r = await publicRegistry(t.ctx, STUDY);
    const docs = r?.documents ?? [];
    expect(docs.map((d) => [d.type, d.typeWords, d.version, d.replaces])).toEqual([
      ["dmp", "Data management plan", "1.0", null],
      ["dmp", "Data management plan", "1.1", "1.0"],
      ["ib", "Investigator's brochure", "1.0", null],
      ["ib", "Investigator's brochure", "2.0", "1.0"],
      ["protocol", "Protocol", "1.0", null],
      ["sap", "Statistical analysis plan", "1.0", null],
    ]);
    for (const d of docs) {
      const mine = reg[`${d.type}@${d.version}`];
      const { payload } = await sealedPayload(mine.entryId);
      expect(d).toMatchObject({
        sha256: payload.sha256,
        bytes: mine.bytes,
        approvedOn: payload.approvedOn,
        entry: mine.entryId,
        matchesSeal: true,
        differences: [],
      });
      expect(d.sha256).toBe(sha256Of(mine.file));
      expect(d.seal.status).toMatch(/^(pending|sealed)$/);
    }
    // The approving body is shown; the amendment reasons and the file names are not (no free text, ADR 0050).
    expect(docs.find((d) => d.type === "ib" && d.version === "2.0")?.approvingBody).toBe(AMEND.ib.approvingBody);
    const json = JSON.stringify(r);
    for (const a of [AMEND.ib, AMEND.dmp]) expect(json).not.toContain(a.reason);
    expect(json).not.toContain(".pdf");
    expect(tamperFindings(await runIntegrityAudit(t.ctx, { study: STUDY }))).toEqual([]);
  });
});
