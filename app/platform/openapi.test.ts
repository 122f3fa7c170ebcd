import { readdirSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { OPENAPI } from "./openapi.ts";
import { loader } from "../routes/api/api.v1.openapi[.json].ts";
import { ROOT } from "../../test/helpers/portal.ts";

/**
 * Remix flat-route file name -> URL path template, e.g. api.v1.studies.$code.records_.$id.ts ->
 * /api/v1/studies/{code}/records/{id}.
 */
function urlOf(file: string): string {
  const stem = file.replace(/\.tsx?$/, "");
  const segments = stem.split(/\.(?![^[]*\])/).map((s) =>
    s
      .replace(/_$/, "")
      .replace(/^\$(.+)$/, "{$1}")
      .replace(/\[(.+)\]/, "$1"),
  );
  return `/${segments.join("/").replace(/\/\{?\.json\}?$/, ".json")}`;
}

describe("OpenAPI document", () => {
  it("documents every API route file, and nothing that does not exist", async () => {
    const files = readdirSync(path.join(ROOT, "app", "routes"), { recursive: true })
      .map((f) => path.basename(String(f)))
      .filter((f) => f.startsWith("api.v1."));
    const routes = files.map(urlOf).sort();
    expect(routes).toContain("/api/v1/studies/{code}/records/{id}");
    expect(routes).toContain("/api/v1/openapi.json");
    expect(Object.keys(OPENAPI.paths).sort()).toEqual(routes);
    const res = await loader();
    expect(res.headers.get("content-type")).toMatch(/application\/json/);
    const doc = await res.json();
    expect(doc.openapi).toBe("3.1.0");
    // Every $ref resolves.
    const refs = JSON.stringify(doc).match(/"#\/components\/schemas\/[A-Za-z]+"/g) ?? [];
    for (const r of refs) expect(doc.components.schemas, r).toHaveProperty(r.slice(22, -1));
  });
});
