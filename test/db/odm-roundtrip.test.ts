/**
 * ODM values round-trip exactly (issue 15 item 7), on PGlite and PostgreSQL. Records whose text holds line breaks
 * (LF, CRLF, CR), tabs, leading and trailing spaces, characters outside the BMP and XML's special characters, and
 * numbers at the edges of RFC 8785's number form, are entered, sealed and exported; the ODM file is read by a
 * conforming XML parser (libxml2, through xmllint-wasm; attribute-value normalisation turns a raw line break or tab
 * into a space) and by the reader the evidence-package check uses, and every ItemData Value must equal the value
 * in the sealed payload its SourceID cites: the same string for text, the same canonical number for numbers. The
 * file still validates against the ODM 1.3.2 schema and the evidence package verifies. Text that XML 1.0 cannot
 * carry (U+0001, ...) is refused at input with a 422 naming the field, through the API and the service the
 * portal page uses, and nothing is stored.
 */
import { XMLParser } from "fast-xml-parser";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestDatabase, engineUnderTest, type TestDb } from "../helpers/db.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { validateOdm } from "../helpers/odm-schema.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { createApiToken } from "../../app/accounts/tokens.server.ts";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { importForm } from "../../app/records/forms.server.ts";
import { correctRecord, saveRecord } from "../../app/records/records.server.ts";
import { sealAll } from "../../app/log/sealer.server.ts";
import { deploymentTrustPolicy } from "../../app/anchor-worker/anchor-worker.server.ts";
import { exportStudy, odmItems, payloadOdmValue, readPackage } from "../../app/exports/study-exports.server.ts";
import { verifyEvidence } from "../../anchoring/verifier/verify-package.ts";
import { canonicalize } from "../../anchoring/log/canonical.ts";
import { action as recordsAction } from "../../app/routes/api/api.v1.studies.$code.records.ts";
import { action as recordPut } from "../../app/routes/api/api.v1.studies.$code.records_.$id.ts";
import type { Principal } from "../../app/platform/permissions.server.ts";

const PW = "amber otter winter forty-two";
const FORM = {
  code: "NOTES",
  title: "Notes & measures",
  version: 1,
  visits: ["SCREENING", "WEEK4"],
  fields: [
    // Sealed in clear (class "clear", ADR 0025) so that each ODM value can be compared with the sealed text itself;
    // free text sealed as a salted hash is checked in exports.test.ts.
    { name: "notes", label: "Notes", type: "text", maxLength: 2000, class: "clear" },
    { name: "comment", label: "Comment", type: "text", class: "clear" },
    { name: "x", label: "Measure", type: "number" },
    { name: "n", label: "Count", type: "number", integer: true },
  ],
};

/** Text values that a parser must give back exactly. */
const TEXTS = [
  "line one\nline two",
  "windows\r\nline\r\nbreaks",
  "old mac\rbreak",
  "tab\tseparated\tvalues",
  "  leading and trailing spaces  ",
  "\n\tstarts with a break and a tab, ends with a CRLF\r\n",
  "emoji 😀 \u{1F600} and CJK extension B \u{20000}\u{2A6D6}",
  `specials & < > " ' &amp; &#10; &#x41; ]]> <![CDATA[x]]>`,
  // Whitespace around a value (text of whitespace only is no value: docs/forms.md).
  " \t \n x \t \n ",
  "non-breaking\u00a0space, BOM-like \ufeff, private use \ue000, last BMP \ufffd",
];
/** Numbers at the edges of the JSON number form (RFC 8785 serialises them as ECMAScript does). */
const NUMBERS = [
  1e21,
  1e-7,
  -0,
  0.1 + 0.2,
  9007199254740991,
  -9007199254740991,
  5e-324,
  1.7976931348623157e308,
  123.456,
];
const INTEGERS = [9007199254740991, -9007199254740991, 1e21, 0, -0];

let t: TestDb;
let inv: Principal;
let reg: Principal;
let token: string;
const subjects: string[] = [];

beforeAll(async () => {
  t = await openTestDatabase();
  t.ctx.env = { ...t.ctx.env, apiRatePerSecond: 100_000 };
  await createStudy(t.ctx, { code: "ODM-RT", title: "ODM round trip", sites: [{ code: "S1", name: "Site 1" }] }, null);
  const u = await createUser(
    t.ctx,
    { email: "inv@odm.test", fullName: "Inv Person", password: PW, role: "investigator", study: "ODM-RT", site: "S1" },
    null,
  );
  inv = (await principalForUser(t.ctx, u.id))!;
  const r = await createUser(
    t.ctx,
    { email: "reg@odm.test", fullName: "Reg Person", password: PW, role: "regulator", study: "ODM-RT" },
    null,
  );
  reg = (await principalForUser(t.ctx, r.id))!;
  token = (await createApiToken(t.ctx, { study: "ODM-RT", name: "edc" }, null)).token;
  await importForm(t.ctx, "ODM-RT", FORM, { actorId: null });
  const rows = Math.max(TEXTS.length, NUMBERS.length);
  for (let i = 0; i < rows; i++) {
    const s = await enrollParticipant(t.ctx, inv, {
      study: "ODM-RT",
      site: "S1",
      personal: { fullName: `Round Trip ${i}`, email: `rt${i}@odm.test` },
    });
    subjects.push(s.subjectCode);
    await giveCompleteConsent(t.ctx, "ODM-RT", s.subjectCode);
    const data: Record<string, unknown> = { x: NUMBERS[i % NUMBERS.length], n: INTEGERS[i % INTEGERS.length] };
    data.notes = TEXTS[i % TEXTS.length];
    data.comment = TEXTS[(i + 3) % TEXTS.length];
    const r = await saveRecord(t.ctx, inv, "ODM-RT", { subject: s.subjectCode, form: "NOTES", visit: "WEEK4", data });
    // A correction (an Update ItemData), its reason itself multi-line.
    await correctRecord(t.ctx, inv, "ODM-RT", r.id, {
      data: { ...data, notes: `${TEXTS[(i + 1) % TEXTS.length]}\r\n(corrected)` },
      reason: "re-read the source:\r\n\tline 2 was wrong",
    });
  }
  await sealAll(t.ctx);
}, 300_000);
afterAll(async () => {
  await t?.close();
});

const decode = (d: Uint8Array) => new TextDecoder().decode(d);

type Item = { seq: number; item: string; value: string | null };

/**
 * ItemData as libxml2 reads them: its canonical form (C14N) of the document, whose only references are the
 * predefined entities and &#x9; &#xA; &#xD;, read back with entity decoding and no trimming or number parsing.
 */
async function itemsByLibxml2(xml: string): Promise<Item[]> {
  const { validateXML } = await import("xmllint-wasm");
  const r = await validateXML({ xml: [{ fileName: "odm.xml", contents: xml }], normalization: "c14n" });
  expect(r.errors.map((e) => e.message)).toEqual([]);
  const doc = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: "@",
    parseAttributeValue: false,
    parseTagValue: false,
    trimValues: false,
    htmlEntities: true,
    isArray: (name) => ["SubjectData", "StudyEventData", "FormData", "ItemGroupData", "ItemData"].includes(name),
  }).parse(r.normalized);
  const out: Item[] = [];
  for (const s of doc.ODM.ClinicalData.SubjectData)
    for (const e of s.StudyEventData)
      for (const f of e.FormData)
        for (const g of f.ItemGroupData)
          for (const it of g.ItemData) {
            const seq = /seq=(\d+)/.exec(String(it.AuditRecord.SourceID))![1];
            out.push({
              seq: Number(seq),
              item: String(it["@ItemOID"]).split(".").slice(2).join("."),
              value: it["@IsNull"] === "Yes" ? null : it["@Value"],
            });
          }
  return out;
}

describe(`ODM value round trip on ${engineUnderTest()}`, () => {
  it("every ItemData Value is the sealed value: text exactly, numbers by canonical form", async () => {
    const xml = decode((await exportStudy(t.ctx, reg, "ODM-RT", "odm")).data);
    const entries = await t.database.execute(
      `SELECT seq, payload_text FROM ledger_entries WHERE kind = 'record.saved' AND seq IS NOT NULL`,
    );
    const bySeq = new Map(entries.map((e) => [Number(e.seq), JSON.parse(String(e.payload_text))]));
    const check = (items: Item[], reader: string) => {
      expect(items.length, reader).toBe(subjects.length * (4 + 1));
      for (const it of items) {
        const payload = bySeq.get(it.seq);
        expect(payload, `${reader}: seq ${it.seq}`).toBeDefined();
        const sealed = payload.values[it.item];
        const where = `${reader}: ${it.item} at seq ${it.seq}`;
        if (it.item === "x" || it.item === "n") {
          expect(typeof sealed, where).toBe("number");
          expect(canonicalize(Number(it.value)), where).toBe(canonicalize(sealed));
          expect(it.value, where).toBe(canonicalize(sealed));
        } else expect(it.value, where).toBe(sealed);
      }
    };
    check(await itemsByLibxml2(xml), "libxml2");
    check(odmItems(xml), "odmItems");
    // Every text was exercised, at version 1 and as a correction.
    const texts = new Set([...bySeq.values()].flatMap((p) => [p.values.notes, p.values.comment]));
    for (const s of TEXTS) expect(texts.has(s), JSON.stringify(s)).toBe(true);
    // The reason for change is element content: its CR survives too.
    const { validateXML } = await import("xmllint-wasm");
    const c14n = (await validateXML({ xml: [{ fileName: "odm.xml", contents: xml }], normalization: "c14n" }))
      .normalized;
    expect(c14n).toContain("<ReasonForChange>re-read the source:&#xD;\n\tline 2 was wrong</ReasonForChange>");
  });

  it("the file still validates against the ODM 1.3.2 schema, and the evidence package verifies", async () => {
    const xml = decode((await exportStudy(t.ctx, reg, "ODM-RT", "odm")).data);
    // With TrialSeal's extension attributes (ADR 0027), and without them against CDISC's own schema.
    expect(await validateOdm(xml)).toEqual({ extension: [], plain: [] });
    const files = readPackage((await exportStudy(t.ctx, reg, "ODM-RT", "evidence")).data);
    const ok = await verifyEvidence(t.ctx.crypto, files, deploymentTrustPolicy(t.ctx), {
      odmItems,
      odmValue: payloadOdmValue,
    });
    expect(ok.problems).toEqual([]);
    expect(ok.checked.odmValues).toBe(subjects.length * (4 + 1));
  });

  it("text XML 1.0 cannot carry is refused at input with a 422 naming the field; nothing is stored", async () => {
    const count = async () =>
      Number(
        (
          await t.database.execute(
            `SELECT (SELECT count(*) FROM record_versions) + (SELECT count(*) FROM ledger_entries) AS n`,
          )
        )[0].n,
      );
    const before = await count();
    const call = async (fn: (args: never) => Promise<Response>, method: string, url: string, p: object, b: unknown) => {
      const res = await fn({
        request: new Request(`http://portal.test${url}`, {
          method,
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify(b),
        }),
        context: { ctx: t.ctx },
        params: p,
      } as never);
      return { status: res.status, body: await res.json() };
    };
    const post = (data: Record<string, unknown>) =>
      call(
        recordsAction,
        "POST",
        "/api/v1/studies/ODM-RT/records",
        { code: "ODM-RT" },
        {
          subject: subjects[0],
          form: "NOTES",
          visit: "SCREENING",
          data,
        },
      );
    let r = await post({ notes: "before\u0001after", x: 1 });
    expect(r.status, JSON.stringify(r.body)).toBe(422);
    expect(r.body.error.field).toBe("data.notes");
    expect(r.body.error.message).toContain("Notes contains a character that cannot be stored (U+0001)");
    for (const [ch, name] of [
      ["\u0000", "U+0000"],
      ["\u0008", "U+0008"],
      ["\u000b", "U+000B"],
      ["\u000c", "U+000C"],
      ["\u000e", "U+000E"],
      ["\u001f", "U+001F"],
      ["\ufffe", "U+FFFE"],
      ["\uffff", "U+FFFF"],
    ]) {
      r = await post({ comment: `ok ${ch}` });
      expect(r.status, name).toBe(422);
      expect(r.body.error.field, name).toBe("data.comment");
      expect(r.body.error.message, name).toContain(`Comment contains a character that cannot be stored (${name})`);
    }
    // A lone surrogate is refused at the JSON edge (400), and by the service (422) for callers inside.
    const raw = await recordsAction({
      request: new Request("http://portal.test/api/v1/studies/ODM-RT/records", {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: `{"subject":"${subjects[0]}","form":"NOTES","visit":"SCREENING","data":{"notes":"a\\ud800b"}}`,
      }),
      context: { ctx: t.ctx },
      params: { code: "ODM-RT" },
    } as never);
    expect(raw.status).toBe(400);
    // The service the portal page calls refuses the same way.
    const viaService = (data: Record<string, unknown>) =>
      saveRecord(t.ctx, inv, "ODM-RT", { subject: subjects[0], form: "NOTES", visit: "SCREENING", data });
    await expect(viaService({ notes: "x\u0001" })).rejects.toMatchObject({ status: 422, field: "data.notes" });
    await expect(viaService({ notes: "a\ud800b" })).rejects.toMatchObject({ status: 422, field: "data.notes" });
    await expect(viaService({ notes: "\udfff" })).rejects.toMatchObject({ status: 422, field: "data.notes" });
    // A correction: its values, and its reason for change.
    const id = String((await t.database.execute(`SELECT id FROM records LIMIT 1`))[0].id);
    const put = (b: unknown) =>
      call(recordPut, "PUT", `/api/v1/studies/ODM-RT/records/${id}`, { code: "ODM-RT", id }, b);
    r = await put({ data: { notes: "fine", comment: "bell\u0007" }, reason: "fix" });
    expect(r.status).toBe(422);
    expect(r.body.error.field).toBe("data.comment");
    r = await put({ data: { notes: "fine" }, reason: "fix\u0001" });
    expect(r.status).toBe(422);
    expect(r.body.error.field).toBe("reason");
    expect(r.body.error.message).toContain("(U+0001)");
    expect(await count()).toBe(before);
    // What XML carries is accepted: tab, LF, CR and everything from U+0020 up (outside U+FFFE and U+FFFF).
    r = await post({ notes: "\t\n\r \u007f\u0085\ud7ff\ue000\ufffd\u{10ffff}" });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
  });
});
