/**
 * The self-contained verification page (served at /verify and saved by `trialseal verifier-html`): bundles and
 * a trust policy are read from local files and verified inside the page with the pure verifier and @noble
 * crypto. Nothing is uploaded. The policy may instead be fetched from a URL and accepted only if its SHA-256
 * equals the pinned value. EVM receipts are checked against an RPC URL when one is given.
 */
import { nobleCrypto } from "../log/crypto-noble.ts";
import { toHex } from "../log/bytes.ts";
import { parseTrustPolicy, type TrustPolicy } from "./trust-policy.ts";
import { type ErrorCode, verifyBundle, type Report } from "./verify-bundle.ts";
import { fetchReader } from "../ledgers/evm-rpc-fetch.ts";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

function el(tag: string, attrs: Record<string, string> = {}, ...children: (Node | string)[]) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

async function readPolicy(): Promise<{ policy: TrustPolicy; source: string }> {
  const file = $<HTMLInputElement>("policy-file").files?.[0];
  const pin = $<HTMLInputElement>("policy-pin").value.trim().toLowerCase();
  const url = $<HTMLInputElement>("policy-url").value.trim();
  let bytes: Uint8Array;
  let source: string;
  if (file) {
    bytes = new Uint8Array(await file.arrayBuffer());
    source = `file ${file.name}`;
  } else if (pin) {
    if (!/^[0-9a-f]{64}$/.test(pin)) throw new Error("the pinned SHA-256 must be 64 hex characters");
    const res = await fetch(url || "/.well-known/trialseal.json");
    if (!res.ok) throw new Error(`could not fetch the trust policy (HTTP ${res.status})`);
    bytes = new Uint8Array(await res.arrayBuffer());
    const got = toHex(nobleCrypto.sha256(bytes));
    if (got !== pin) throw new Error(`the fetched trust policy has SHA-256 ${got}, not the pinned ${pin}`);
    source = `${url || "this site's policy"}, pinned ${pin.slice(0, 12)}…`;
  } else throw new Error("choose a trust policy file, or give its pinned SHA-256");
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new Error("the trust policy is not JSON");
  }
  return { policy: parseTrustPolicy(json), source };
}

/** What a failed form step means, in plain words (the step's own message names the field and the values). */
const EXPLAIN: Partial<Record<ErrorCode, string>> = {
  CALCULATION_MISMATCH:
    "A calculated value sealed in this record is not what its form's calculation gives from the record's own " +
    "sealed values: it was changed or computed wrongly.",
  VISIBILITY_MISMATCH: "A field that the form hides for these values (branching) holds a value.",
  FORM_DEFINITION_MISMATCH: "The form definition in this bundle is not the one the record was sealed with.",
  FORM_DEFINITION_MISSING:
    "This record was sealed with a form, but the bundle does not include that form's definition, so its " +
    "calculations and branching cannot be checked. Bundles from TrialSeal always include it: ask for the bundle again.",
  FORM_DEFINITION_INVALID:
    "The form definition sealed with this record is not a valid form definition, so no record could have been " +
    "saved on it.",
  FIELD_NOT_IN_FORM: "The record holds a field that its form does not have.",
  FIELD_CLASS_MISMATCH: "The record holds a field in a way its class does not allow (an identifier in clear).",
  MISSING_CODE_NOT_ALLOWED: "The record holds a missing-data code that its field does not accept.",
};

function renderReport(name: string, r: Report): HTMLElement {
  const ok = r.verdict === "valid";
  const box = el("section", {
    class: `report ${ok ? "valid" : "invalid"}`,
    "data-verdict": r.verdict,
    "data-file": name,
  });
  box.append(el("h2", {}, `${ok ? "✔ VALID" : "✘ INVALID"}: ${name}`));
  if (r.entry)
    box.append(
      el(
        "p",
        {},
        `Entry seq ${r.entry.seq} (${r.entry.kind}) of study ${r.entry.study}, ` +
          `written ${r.entry.at}, batch ${r.entry.batch}.`,
      ),
    );
  // "Proven to exist by" is a claim of a valid bundle only: an invalid one proves nothing.
  if (ok && r.existedBy)
    box.append(el("p", { class: "time" }, `Proven to exist by ${r.existedBy.time} (${r.existedBy.ledger}).`));
  const failed = r.steps.find((s) => s.status === "failed");
  if (failed)
    box.append(el("p", { class: "failed-step" }, `Failed at ${failed.step} [${failed.code}]: ${failed.message}`));
  const meaning = failed?.code ? EXPLAIN[failed.code] : undefined;
  if (meaning) box.append(el("p", { class: "explain" }, meaning));
  const list = el("ul", { class: "steps" });
  for (const s of r.steps)
    list.append(
      el(
        "li",
        { class: s.status, "data-step": s.step },
        `${s.status === "ok" ? "ok" : s.status === "failed" ? "FAIL" : "--"}  ` +
          `${s.step}${s.code ? ` [${s.code}]` : ""}: ${s.message}`,
      ),
    );
  box.append(list);
  return box;
}

async function run() {
  const out = $("results");
  out.replaceChildren();
  const status = $("status");
  try {
    const { policy, source } = await readPolicy();
    status.textContent = `Trust policy: ${policy.origin} (${source}).`;
    const rpc = $<HTMLInputElement>("rpc-url").value.trim();
    const reader = rpc ? fetchReader(rpc) : undefined;
    const files = [...($<HTMLInputElement>("bundle-files").files ?? [])];
    if (files.length === 0) throw new Error("choose one or more proof bundles");
    for (const f of files) {
      let bundle: unknown;
      try {
        bundle = JSON.parse(await f.text());
      } catch {
        out.append(
          el(
            "section",
            { class: "report invalid", "data-verdict": "unreadable", "data-file": f.name },
            el("h2", {}, `✘ UNREADABLE: ${f.name} is not JSON`),
          ),
        );
        continue;
      }
      const report = await verifyBundle(nobleCrypto, bundle, policy, { evm: reader ? () => reader : undefined });
      out.append(renderReport(f.name, report));
    }
  } catch (err) {
    status.textContent = `Cannot verify: ${(err as Error).message}`;
    status.className = "error";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("verify").addEventListener("click", () => void run());
});
