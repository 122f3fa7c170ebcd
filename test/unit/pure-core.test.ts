/**
 * The verifier must run unchanged in a browser: nothing it imports, directly or through other core modules,
 * may be a node: module or a package outside the browser-safe set; and the core imports nothing from app/ or db/.
 */
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const IMPORT = new RegExp(
  String.raw`^\s*(?:import|export)[^'"]*?from\s+["']([^"']+)["']|` +
    String.raw`^\s*import\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)`,
  "gm",
);

function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(IMPORT)].map((m) => m[1] ?? m[2] ?? m[3]);
}

function graph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (f: string) => {
    if (files.has(f)) return;
    files.add(f);
    for (const spec of importsOf(f)) {
      if (spec.startsWith(".")) visit(path.resolve(path.dirname(f), spec));
      else packages.add(spec);
    }
  };
  visit(entry);
  return { files, packages };
}

// pkijs/asn1js (RFC 3161 tokens) run on WebCrypto; viem and node: stay out of the verifier (network code lives in
// the adapters). json-logic-js evaluates the forms' expressions (ADR 0024), which the verifier recomputes (ADR 0028).
const BROWSER_SAFE = [
  "zod",
  "canonicalize",
  "@noble/hashes/sha2.js",
  "@noble/curves/ed25519.js",
  "pkijs",
  "asn1js",
  "json-logic-js",
];

describe("the integrity core's dependency rules", () => {
  for (const entry of [
    "verifier/verify-bundle.ts",
    "log/crypto-noble.ts",
    "log/tree.ts",
    "log/sealer.ts",
    "verifier/verify-anchor.ts",
    "verifier/browser-page.ts",
    "verifier/log-auditor.ts",
    "verifier/verify-package.ts",
    "verifier/verify-custody.ts",
  ]) {
    it(`anchoring/${entry} reaches no node: module and only browser-safe packages`, () => {
      const { files, packages } = graph(path.join(ROOT, "anchoring", entry));
      expect(files.size).toBeGreaterThan(0);
      for (const p of packages) expect(BROWSER_SAFE, `${entry} imports ${p}`).toContain(p);
      for (const f of files) expect(path.relative(ROOT, f).startsWith("anchoring/"), f).toBe(true);
    });
  }

  it("no file under anchoring/ imports from app/ or db/", () => {
    const files = readdirSync(path.join(ROOT, "anchoring"), { recursive: true })
      .map(String)
      .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"));
    expect(files.length).toBeGreaterThan(5);
    for (const f of files) {
      for (const spec of importsOf(path.join(ROOT, "anchoring", f)))
        expect(spec, `anchoring/${f}`).not.toMatch(/(^|\/)(app|db)\//);
    }
  });
});
