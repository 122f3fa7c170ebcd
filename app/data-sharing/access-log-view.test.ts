import { createElement } from "react";
import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import { AccessLogView } from "./access-log-view.tsx";
import type { AccessLogItem } from "./access-log.server.ts";

const item: AccessLogItem = {
  at: "2026-03-04T10:15:00.000Z",
  organisation: "Site S1 · City Hospital",
  role: "study coordinator",
  person: null,
  what: "CRF data",
  words: "looked at your study record",
  purpose: null,
  entryId: "e1",
  seal: "sealed",
};

describe("AccessLogView", () => {
  it("says so when no one used the data", () => {
    const html = renderToStaticMarkup(createElement(AccessLogView, { items: [] }));
    expect(html).toContain("No one has used your data yet.");
  });

  it("lists when, who, what and why in plain words, a name only when given", () => {
    const html = renderToStaticMarkup(
      createElement(AccessLogView, {
        items: [
          item,
          {
            ...item,
            organisation: "a researcher at Institute X",
            role: "external researcher",
            person: "Ada Lovelace",
            what: "data-use delivery",
            words: "received your study data without your name or study code",
            purpose: "other medical research",
            seal: "pending",
          },
        ],
      }),
    );
    expect(html).toContain("4 March 2026");
    expect(html).toContain("Site S1 · City Hospital, study coordinator");
    expect(html).toContain("Looked at your study record.");
    expect(html).toContain("What: CRF data");
    expect(html).toContain("(Ada Lovelace)");
    expect(html).toContain("Why: other medical research");
    expect(html).not.toContain("HRESCH");
    expect(html).toContain("Record of this use: sealed");
    expect(html).toContain("Record of this use: waiting to be sealed");
    expect(html.match(/Ada Lovelace/g)).toHaveLength(1);
  });

  it("shows an item that does not match its sealed entry as a visible warning, never as sealed", () => {
    const html = renderToStaticMarkup(createElement(AccessLogView, { items: [{ ...item, seal: "mismatch" }] }));
    expect(html).toContain('role="alert"');
    expect(html).toContain("does not match its sealed entry");
    expect(html).not.toContain("Record of this use: sealed");
  });
});
