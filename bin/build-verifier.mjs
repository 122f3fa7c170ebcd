// Build the self-contained verification page: the pure verifier bundled for browsers and inlined with its
// styles into one HTML file (build/verify.html), with a CSP that allows exactly that script (by hash).
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "./esbuild.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export async function buildVerifierHtml() {
  const r = await build({
    entryPoints: [path.join(root, "anchoring", "verifier", "browser-page.ts")],
    bundle: true,
    format: "iife",
    platform: "browser",
    target: "es2020",
    minify: true,
    write: false,
    legalComments: "none",
    define: { "process.env.NODE_ENV": '"production"' },
  });
  const js = r.outputFiles[0].text.replace(/<\/script/gi, "<\\/script");
  const scriptHash = createHash("sha256").update(js).digest("base64");
  const css =
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1b1f24}" +
    "label{display:block;font-weight:600;margin:.8rem 0 .2rem}" +
    "input[type=text]{width:100%;box-sizing:border-box;padding:.4rem}" +
    "button{margin-top:1rem;padding:.5rem 1rem;font-size:1rem}" +
    ".report{border:1px solid #d0d7de;border-radius:8px;padding:1rem;margin:1rem 0}" +
    ".report.valid{border-color:#1a7f37;background:#f0fff4}.report.invalid{border-color:#cf222e;background:#fff5f5}" +
    ".steps{font-family:ui-monospace,monospace;font-size:.85rem;list-style:none;padding:0}" +
    ".steps li,.failed-step,.report h2{overflow-wrap:anywhere}.explain{margin:.2rem 0 .6rem}" +
    ".steps .failed{color:#cf222e;font-weight:700}.steps .not_checked{color:#57606a}" +
    ".failed-step,.error{color:#cf222e;font-weight:600}.muted{color:#57606a}" +
    ".life{padding-left:1.4rem}.life li{margin:.25rem 0;overflow-wrap:anywhere}.life .failed{color:#cf222e}" +
    ".steps.problems{font-family:inherit;font-size:1rem}.problems li{margin:.5rem 0}" +
    ".report .detail{display:block;font:400 .8rem ui-monospace,monospace;color:#57606a;overflow-wrap:anywhere}";
  const styleHash = createHash("sha256").update(css).digest("base64");
  const html = [
    "<!doctype html>",
    '<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'sha256-${scriptHash}'; ` +
      `style-src 'sha256-${styleHash}'; connect-src *; img-src data:; base-uri 'none'; form-action 'none'">`,
    `<title>TrialSeal proof verifier</title><style>${css}</style></head><body>`,
    "<h1>Verify TrialSeal proof bundles</h1>",
    '<p class="muted">Everything happens in this page: the files you choose are read and checked here ' +
      "and are never uploaded. Save this page to keep a copy that cannot change.</p>",
    '<label for="policy-file">Trust policy file (trialseal-trust/v1 JSON)</label>' +
      '<input id="policy-file" type="file" accept=".json,application/json">',
    '<p class="muted">or fetch it and accept it only if its SHA-256 matches:</p>',
    '<label for="policy-url">Trust policy URL (default: this site\'s /.well-known/trialseal.json)</label>' +
      '<input id="policy-url" type="text" placeholder="https://portal.example/.well-known/trialseal.json">',
    '<label for="policy-pin">Pinned SHA-256 of the trust policy</label>' +
      '<input id="policy-pin" type="text" placeholder="64 hex characters">',
    '<label for="allocations-file">Allocations file (optional: a study\'s randomization, checked slot by slot ' +
      "against the list sealed before the first allocation)</label>" +
      '<input id="allocations-file" type="file" accept=".json,application/json">' +
      '<p class="muted">With an allocations file, the pinned SHA-256 checks the trust policy the file carries.</p>',
    '<label for="custody-file">Kit chain of custody (custody JSON)</label>' +
      '<input id="custody-file" type="file" accept=".json,application/json">' +
      "<p class=\"muted\">Optional: a kit's custody file from its page in the portal, every step of the kit's life " +
      "checked against its sealed entry. The pinned SHA-256 checks the trust policy the file carries.</p>",
    '<label for="bundle-files">Proof bundles (one or many)</label>' +
      '<input id="bundle-files" type="file" multiple accept=".json,application/json">',
    '<label for="rpc-url">EVM JSON-RPC URL (optional: to check EVM anchors)</label>' +
      '<input id="rpc-url" type="text" placeholder="https://rpc.example">',
    '<button id="verify" type="button">Verify</button>',
    '<p id="status" role="status"></p><div id="results"></div>',
    `<script>${js}</script></body></html>`,
    "",
  ].join("\n");
  return { html, sha256: createHash("sha256").update(html).digest("hex") };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { html, sha256 } = await buildVerifierHtml();
  mkdirSync(path.join(root, "build"), { recursive: true });
  writeFileSync(path.join(root, "build", "verify.html"), html);
  console.log(`built build/verify.html (${html.length} bytes, sha256 ${sha256})`);
}
