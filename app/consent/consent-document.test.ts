import { describe, expect, it } from "vitest";
import { optionalItems, parseConsentDocument } from "./consent-document.ts";

const doc = (line: string) => `# T\n\n## Section\n\nText.\n\n${line}\n`;

describe("optional items with purposes (ADR 0066)", () => {
  it("`[optional:key for:CODE,CODE] text` names the purposes the item governs", () => {
    const r = parseConsentDocument(doc("[optional:future for:HRESCH, BIORCH] Use my data for future research."));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(optionalItems(r.doc)).toEqual([
      { key: "future", text: "Use my data for future research.", purposes: ["HRESCH", "BIORCH"] },
    ]);
  });

  it("the old `[optional:key] text` still parses and governs no purpose", () => {
    const r = parseConsentDocument(doc("[optional:contact] You may contact me later."));
    expect(r.ok && optionalItems(r.doc)).toEqual([{ key: "contact", text: "You may contact me later.", purposes: [] }]);
  });

  it("an unknown purpose code is a parse error naming it and listing the allowed codes", () => {
    const r = parseConsentDocument(doc("[optional:future for:HRESCH,RESEARCH] Future research."));
    expect(r).toMatchObject({ ok: false, line: 7 });
    if (r.ok) return;
    expect(r.message).toContain('"RESEARCH" is not a purpose code');
    expect(r.message).toContain("HRESCH, BIORCH");
    expect(r.message).toContain("CLINTRCH");
  });

  it("an empty `for:` is refused, and a duplicate code is kept once", () => {
    const empty = parseConsentDocument(doc("[optional:future for:] Future research."));
    expect(empty).toMatchObject({ ok: false, line: 7 });
    if (!empty.ok) expect(empty.message).toContain('"(empty)" is not a purpose code');
    const dup = parseConsentDocument(doc("[optional:future for:HRESCH,HRESCH] Future research."));
    expect(dup.ok && optionalItems(dup.doc)[0].purposes).toEqual(["HRESCH"]);
  });

  it("a malformed item still says how to write one", () => {
    const r = parseConsentDocument(doc("[optional:future to:HRESCH] Future research."));
    expect(r).toMatchObject({ ok: false, line: 7 });
    if (!r.ok) expect(r.message).toContain("[optional:key for:HRESCH]");
  });
});
