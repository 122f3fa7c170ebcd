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
import {
  type AllocationProblemCode,
  type AllocationsReport,
  type AllocationWarningCode,
  emptyAllocationsReport,
  countOf,
  parseAllocationsFile,
  pinnedPolicyText,
  problemPlace,
  readAllocationsText,
  verifyAllocations,
} from "../randomization/verify-allocations.ts";
import {
  CUSTODY_SCOPE,
  type CustodyErrorCode,
  type CustodyReport,
  type CustodyWarningCode,
  pinnedCustodyPolicy,
  readCustodyText,
  verifyCustody,
} from "./verify-custody.ts";

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

/** What each allocations problem means, in plain words (its own message names the stratum, slot and subjects). */
const ALLOCATION_MEANING: Record<AllocationProblemCode, string> = {
  UNREADABLE: "The file is not an allocations file, so nothing in it could be checked.",
  FILE_MALFORMED: "The file claims to be an allocations file but a part of it is missing or of the wrong kind.",
  POLICY_NOT_PINNED: "The trust policy in the file is not the one whose fingerprint (SHA-256) you gave.",
  BUNDLE_INVALID:
    "A sealed entry in the file does not prove itself against the trust policy: it was changed or forged.",
  KIND_MISMATCH: "An entry stands where the file needs another kind of entry.",
  STUDY_MISMATCH: "An entry belongs to another study.",
  DESIGN_HASH_MISMATCH:
    "The randomization design in the file is not the one that was sealed before the first allocation.",
  DESIGN_INVALID: "The sealed randomization design is not a valid design.",
  COMMITMENT_MISMATCH: "The revealed list does not match what was sealed before the first allocation.",
  SEED_MISMATCH: "The revealed seed does not produce the revealed list.",
  SLOT_ALTERED: "A slot of the list (its arm, kit type or salt) was changed after the list was sealed.",
  SLOT_REUSED: "Two participants were given the same slot of the list.",
  SLOT_SKIPPED: "A slot was passed over: a participant got a later slot while an earlier one was still free.",
  ALLOCATION_LEAF_MISMATCH: "A participant's allocation was sealed for a slot that is not the one the list holds.",
  INCLUSION_FAILED: "A participant's allocation cannot be proven to be a slot of the sealed list.",
  ALLOCATION_BEFORE_COMMITMENT: "A participant was allocated before the list was sealed.",
  NUMBER_MISMATCH: "A randomization number does not match its stratum and slot.",
  SUBJECT_REALLOCATED: "One participant was allocated twice.",
  EMERGENCY_MISMATCH: "An emergency unblinding does not match an allocation in the file.",
  ALLOCATION_MISSING: "The file leaves out allocations that the study's unblinding sealed.",
  EMERGENCY_MISSING: "The file leaves out an emergency unblinding that the study's unblinding sealed.",
  SLOT_KIT_MISMATCH: "A slot's kit type belongs to another arm than the slot's in the sealed design.",
  SIZE_MISMATCH: "A stratum of the sealed list does not have the number of slots the sealed design sets.",
};

/** What each allocations warning means, in plain words: the file stays valid with it. */
const ALLOCATION_WARNING_MEANING: Record<AllocationWarningCode, string> = {
  COMMITMENT_NOT_ANCHORED_BEFORE_FIRST_ALLOCATION:
    "No independent time stamp (anchor) shows that the list was sealed before the first participant was " +
    "randomized. The sealed log still puts the list first, but that order rests on the log alone, not on an " +
    "outside clock. This is normal when the list was sealed only minutes before the first randomization.",
};

/** When the list was proven sealed, against the first allocation's time, in words. */
function allocationsTiming(r: AllocationsReport): string | null {
  if (r.list === null) return null;
  const e = r.timing.commitmentExistedBy;
  const sealed = e
    ? `The list's seal is proven to have existed by ${e.time} (time stamp of ledger ${e.ledger}: ${e.attested})`
    : "The list's seal has no verified time stamp (anchor)";
  const first = r.timing.firstAllocationAt;
  if (first === null) return `${sealed}; no participant was allocated.`;
  return `${sealed}; the first participant was allocated at ${first}${
    e && r.warnings.length === 0 ? ", after the seal was time-stamped" : ""
  }.`;
}

function renderAllocations(name: string, r: AllocationsReport): HTMLElement {
  const box = el("section", {
    class: `report ${r.valid ? "valid" : "invalid"}`,
    "data-verdict": r.valid ? "valid" : "invalid",
    "data-file": name,
    "data-kind": "allocations",
  });
  box.append(el("h2", {}, `${r.valid ? "✔ VALID" : "✘ INVALID"}: ${name}`));
  const c = r.checked;
  if (r.valid)
    box.append(
      el(
        "p",
        { class: "summary" },
        `Every one of the ${c.allocations} allocations of study ${r.study} took exactly its slot of the list ` +
          `sealed before the first allocation: no slot was skipped, reused or changed ` +
          `(${countOf(c.strata, "stratum", "strata")}, ${countOf(c.slots, "slot")}, ` +
          `${countOf(c.emergencyUnblindings, "emergency unblinding")}, ` +
          `${countOf(c.bundles, "sealed entry", "sealed entries")} checked${
            c.seed ? "; the seed regenerates every slot" : ""
          }).`,
      ),
    );
  else
    box.append(
      el(
        "p",
        { class: "summary" },
        `The allocations of study ${r.study ?? "?"} do not match the sealed list: ` +
          `${countOf(r.problems.length + r.problemsNotListed, "problem")}.`,
      ),
    );
  const timing = allocationsTiming(r);
  if (timing) box.append(el("p", { class: "timing" }, timing));
  if (r.warnings.length) {
    const warnings = el("ul", { class: "warnings" });
    for (const w of r.warnings)
      warnings.append(
        el(
          "li",
          { class: "warning", "data-warning": w.code },
          `Warning: ${ALLOCATION_WARNING_MEANING[w.code]} [${w.code}] ${w.message}`,
        ),
      );
    box.append(warnings);
  }
  const problems = el("ul", { class: "steps" });
  for (const p of r.problems) {
    const place = problemPlace(p);
    const where = place ? `${place}: ` : "";
    problems.append(
      el(
        "li",
        { class: "failed", "data-code": p.code },
        `${where}${ALLOCATION_MEANING[p.code]} [${p.code}] ${p.message}`,
      ),
    );
  }
  if (r.problemsNotListed) problems.append(el("li", { class: "failed" }, `… and ${r.problemsNotListed} more`));
  if (r.problems.length) box.append(problems);
  if (r.strata.length) {
    const strata = el("ul", { class: "strata" });
    for (const s of r.strata)
      strata.append(
        el(
          "li",
          { "data-stratum": s.key },
          `${s.key}: ${s.allocated} of ${s.size} slots allocated; by arm: ` +
            Object.entries(s.arms)
              .map(([arm, n]) => `${arm}: ${n.allocated} of ${n.slots} allocated`)
              .join(", "),
        ),
      );
    box.append(el("p", {}, "Allocations per stratum and arm:"), strata);
  }
  return box;
}

/** An allocations file: its own trust policy pinned by SHA-256, or the policy file chosen. */
async function runAllocations(f: File, out: HTMLElement, status: HTMLElement) {
  const unreadable = (why: string) =>
    out.append(
      el(
        "section",
        { class: "report invalid", "data-verdict": "unreadable", "data-file": f.name },
        el("h2", {}, `✘ UNREADABLE: ${f.name}: ${why}`),
      ),
    );
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(await f.arrayBuffer());
  } catch {
    return unreadable("not UTF-8 text");
  }
  const read = readAllocationsText(text);
  if ("unreadable" in read) return unreadable(read.unreadable);
  const parsed = parseAllocationsFile(read.value);
  const invalid = (problem: AllocationsReport["problems"][number]) =>
    out.append(renderAllocations(f.name, emptyAllocationsReport([problem])));
  if ("problem" in parsed) return invalid(parsed.problem);
  const policyFile = $<HTMLInputElement>("policy-file").files?.[0];
  const pin = $<HTMLInputElement>("policy-pin").value.trim().toLowerCase();
  let policy: TrustPolicy;
  if (policyFile) {
    policy = parseTrustPolicy(JSON.parse(await policyFile.text()));
    status.textContent = `Trust policy: ${policy.origin} (file ${policyFile.name}).`;
  } else if (pin) {
    if (!/^[0-9a-f]{64}$/.test(pin)) throw new Error("the pinned SHA-256 must be 64 hex characters");
    const notPinned = pinnedPolicyText(nobleCrypto, parsed.file, pin);
    if (notPinned) return invalid(notPinned);
    policy = parseTrustPolicy(JSON.parse(parsed.file.trustPolicyText));
    status.textContent = `Trust policy: ${policy.origin} (the file's own, pinned ${pin.slice(0, 12)}…).`;
  } else throw new Error("choose a trust policy file, or give the SHA-256 of the policy the file carries");
  out.append(renderAllocations(f.name, await verifyAllocations(nobleCrypto, parsed.file, policy)));
}

/** What each custody problem means, in plain words (its own message names the entry by kind and seq). */
const CUSTODY_MEANING: Record<CustodyErrorCode, string> = {
  FILE_MALFORMED:
    "The file claims to be a kit custody file but a part of it is missing or of the wrong kind, so nothing in it " +
    "could be checked.",
  POLICY_NOT_PINNED:
    "The trust policy in the file is not the one whose fingerprint (SHA-256) you gave (or the file carries none), " +
    "so none of its seals can be trusted.",
  BUNDLE_INVALID:
    "A sealed entry of the kit's life does not prove itself against the trust policy: it was changed after it was " +
    "sealed, or forged.",
  STUDY_MISMATCH: "An entry in the file belongs to another study.",
  KIND_UNEXPECTED: "An entry in the file is no step of a kit's life.",
  FOREIGN_BUNDLE: "An entry in the file is about another kit (or another shipment, destruction or lot), not this one.",
  STEP_MISSING:
    "A step that the kit's life needs is not proven in the file: a receipt with no shipment, a dispensing with no " +
    "receipt, a return with no dispensing, a witness with no destruction.",
  STEP_DUPLICATED: "A step that happens once in a kit's life appears twice.",
  ORDER_IMPOSSIBLE:
    "In the order the log sealed them, the steps are not a life a kit can have: received before it was shipped, " +
    "dispensed after its lot was recalled or after a decision to destroy it, or used after its destruction.",
  WITNESS_IS_RECORDER:
    "The kit's destruction is witnessed by the same person who recorded it: a witness must be another person.",
  DISCLOSURE_MISMATCH:
    "The kit type and lot disclosed in the file do not match what was sealed when the kit was registered, so " +
    "they are not shown.",
  LOT_UNPROVEN:
    "An entry about a lot is in the file, but nothing in it proves that this kit is of that lot (no disclosure " +
    "matching the kit's sealed commitment).",
  SITE_MISMATCH: "The kit was dispensed or destroyed at another site than the one it was shipped to.",
};

/** What each custody warning means, in plain words: the file stays valid with it. */
const CUSTODY_WARNING_MEANING: Record<CustodyWarningCode, string> = {
  NOT_WITNESSED:
    "The kit's destruction is recorded, but the file holds no witness: a second person has not (yet) confirmed it.",
};

/** Each step of a kit's life: its short name (in the verdict) and what it is (a problem's place, a step unproven). */
const CUSTODY_STEPS: Record<string, [short: string, noun: string]> = {
  "supply.lot_registered": ["its lot registered", "the lot's registration"],
  "supply.lot_released": ["its lot released", "the lot's release"],
  "supply.lot_recalled": ["its lot recalled", "the lot's recall"],
  "supply.kit_registered": ["registered", "the kit's registration"],
  "supply.shipment_sent": ["shipped", "the shipment"],
  "supply.shipment_received": ["received", "the receipt at the site"],
  "supply.quarantine_decided": ["quarantine decision", "the quarantine decision"],
  "supply.kit_dispensed": ["dispensed", "the dispensing"],
  "supply.kit_returned": ["returned", "the return"],
  "supply.destruction_recorded": ["destruction recorded", "the destruction"],
  "supply.destruction_witnessed": ["witnessed by another person", "the destruction's witness"],
};
const custodyNoun = (kind: string) => CUSTODY_STEPS[kind]?.[1] ?? `an entry of kind ${kind}`;
const capital = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

type Payload = Record<string, unknown>;
const degrees = (tenths: unknown) => (typeof tenths === "number" ? `${(tenths / 10).toFixed(1)} °C` : null);

/** A proven step in plain words, from its sealed payload: never a kit type; the lot only once the disclosure holds. */
function custodyStepWords(kind: string, p: Payload, showLot: boolean): string {
  switch (kind) {
    case "supply.lot_registered":
      return `Its lot registered by the depot${showLot ? ` (lot ${p.lotNumber})` : ""}, expiring ${p.expiresOn}`;
    case "supply.lot_released":
      return "Its lot released for use by the sponsor";
    case "supply.lot_recalled":
      return `Its lot recalled by the sponsor (${countOf(Number(p.kitsBlocked), "kit")} blocked)`;
    case "supply.kit_registered":
      return `Registered as kit ${p.number}, ${p.units} units`;
    case "supply.shipment_sent":
      return `Shipped from depot ${p.depot} to site ${p.site} (shipment ${p.number})`;
    case "supply.shipment_received": {
      const [lo, hi] = [degrees(p.temperatureMinTenths), degrees(p.temperatureMaxTenths)];
      return `Received at the site${lo && hi ? `, ${lo} to ${hi} in transit` : ""}${
        p.excursion
          ? ": a temperature excursion, so quarantined until the sponsor decided"
          : ", no temperature excursion"
      }`;
    }
    case "supply.quarantine_decided":
      return p.outcome === "release"
        ? "Quarantine decision: the sponsor released it for use"
        : "Quarantine decision: the sponsor decided it must be destroyed";
    case "supply.kit_dispensed":
      return `Dispensed to participant ${p.subject} at site ${p.site}${p.visit ? ` (visit ${p.visit})` : ""}`;
    case "supply.kit_returned":
      return (
        `Returned by participant ${p.subject} on ${p.returnedOn}: ${p.unitsReturned} of ${p.unitsDispensed} ` +
        `units back${p.compliancePercent === null ? "" : `, compliance ${p.compliancePercent}%`}`
      );
    case "supply.destruction_recorded":
      return `Destruction recorded ${p.site ? `at site ${p.site}` : "at the depot"}`;
    case "supply.destruction_witnessed":
      return "Destruction witnessed by another person than the one who recorded it";
    default:
      return capital(custodyNoun(kind));
  }
}

/** A custody report in words; `file` is the file as read (its bundles give the proven steps' words). */
function renderCustody(name: string, r: CustodyReport, file: unknown): HTMLElement {
  const box = el("section", {
    class: `report ${r.ok ? "valid" : "invalid"}`,
    "data-verdict": r.ok ? "valid" : "invalid",
    "data-file": name,
    "data-kind": "custody",
  });
  box.append(el("h2", {}, `${r.ok ? "✔ VALID" : "✘ INVALID"}: ${name}`));
  const f = (file ?? {}) as { bundles?: unknown[]; exportedAt?: unknown };
  const bundles = Array.isArray(f.bundles) ? f.bundles : [];
  const sealed = (i: number) => (bundles[i] ?? {}) as { payload?: Payload; envelope?: { at?: unknown } };
  // The kit type is named only when the disclosure recomputes the commitment of a proven registration.
  const disclosed =
    r.disclosure !== null &&
    !r.errors.some((e) => e.code === "DISCLOSURE_MISMATCH") &&
    r.steps.some((s) => s.kind === "supply.kit_registered" && s.ok);
  const kit = `Kit ${r.kit ?? "?"} of study ${r.study ?? "?"}`;
  if (r.ok) {
    const life = r.steps
      .filter((s) => !s.kind.startsWith("supply.lot_"))
      .map((s) => {
        const p = sealed(r.steps.indexOf(s)).payload ?? {};
        const short = CUSTODY_STEPS[s.kind]?.[0] ?? s.kind;
        if (s.kind === "supply.kit_dispensed") return `${short} to ${p.subject}`;
        if (s.kind === "supply.quarantine_decided")
          return `${short} (${p.outcome === "release" ? "released for use" : "to be destroyed"})`;
        return short;
      });
    box.append(
      el(
        "p",
        { class: "summary" },
        `${kit}: every step of its life in this file is proven by the study's sealed log, in an order a kit can ` +
          `live: ${life.join(", ")} (${countOf(r.steps.length, "sealed entry", "sealed entries")} checked).`,
      ),
    );
  } else
    box.append(
      el(
        "p",
        { class: "summary" },
        `${kit}: its chain of custody is NOT proven: ${countOf(r.errors.length, "problem")}.`,
      ),
    );
  box.append(
    el(
      "p",
      { class: "disclosure", "data-disclosure": disclosed ? "verified" : r.disclosure ? "not-shown" : "none" },
      disclosed && r.disclosure
        ? `Kit type ${r.disclosure.kitType}, disclosed and matching its sealed commitment` +
            `${r.disclosure.lotChecked ? " (its lot's commitment too)" : ""}.`
        : r.disclosure
          ? "A kit type is disclosed in the file but not shown: it does not match a proven sealed commitment."
          : "No kit type is disclosed in this file: the kit's type stays blinded.",
    ),
  );
  if (r.warnings.length) {
    const warnings = el("ul", { class: "warnings" });
    for (const w of r.warnings)
      warnings.append(
        el(
          "li",
          { class: "warning", "data-warning": w.code },
          `Warning: ${CUSTODY_WARNING_MEANING[w.code]} `,
          el("span", { class: "detail" }, `[${w.code}] ${w.message}`),
        ),
      );
    box.append(warnings);
  }
  if (r.errors.length) {
    const problems = el("ul", { class: "steps problems" });
    for (const e of r.errors) {
      const step = e.seq === undefined ? undefined : r.steps.find((s) => s.seq === e.seq);
      const where = step ? `${capital(custodyNoun(step.kind))} (seq ${e.seq}): ` : "";
      problems.append(
        el(
          "li",
          { class: "failed", "data-code": e.code },
          `${where}${CUSTODY_MEANING[e.code]} `,
          el("span", { class: "detail" }, `[${e.code}] ${e.message}`),
        ),
      );
    }
    box.append(problems);
  }
  if (r.steps.length) {
    const life = el("ol", { class: "life" });
    for (const [i, s] of r.steps.entries()) {
      const b = sealed(i);
      life.append(
        el(
          "li",
          {
            class: s.ok ? "ok" : "failed",
            "data-step": s.kind,
            ...(s.seq === null ? {} : { "data-seq": String(s.seq) }),
            ...(s.code ? { "data-code": s.code } : {}),
            ...(s.warning ? { "data-warning": s.warning } : {}),
          },
          s.ok
            ? `✔ ${custodyStepWords(s.kind, b.payload ?? {}, disclosed)}` +
                `${s.warning === "NOT_WITNESSED" ? " (not witnessed yet)" : ""} (seq ${s.seq}, ${b.envelope?.at})`
            : `✘ ${capital(custodyNoun(s.kind))} (seq ${s.seq ?? "?"}): not proven [${s.code}]`,
        ),
      );
    }
    box.append(el("p", {}, "The kit's life, step by step, in the order the log sealed it:"), life);
    if (typeof f.exportedAt === "string")
      box.append(el("p", { class: "muted" }, `The file was exported at ${f.exportedAt}. This check ${r.scope}.`));
  }
  return box;
}

/** A kit's chain-of-custody file: its own trust policy pinned by SHA-256, or the policy file chosen. */
async function runCustody(f: File, out: HTMLElement, status: HTMLElement) {
  const unreadable = (why: string) =>
    out.append(
      el(
        "section",
        { class: "report invalid", "data-verdict": "unreadable", "data-file": f.name, "data-kind": "custody" },
        el("h2", {}, `✘ UNREADABLE: ${f.name}: ${why}`),
      ),
    );
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(await f.arrayBuffer());
  } catch {
    return unreadable("not UTF-8 text");
  }
  const read = readCustodyText(text);
  if ("unreadable" in read) return unreadable(read.unreadable);
  const policyFile = $<HTMLInputElement>("policy-file").files?.[0];
  const pin = $<HTMLInputElement>("policy-pin").value.trim().toLowerCase();
  let policy: TrustPolicy;
  if (policyFile) {
    policy = parseTrustPolicy(JSON.parse(await policyFile.text()));
    status.textContent = `Trust policy: ${policy.origin} (file ${policyFile.name}).`;
  } else if (pin) {
    if (!/^[0-9a-f]{64}$/.test(pin)) throw new Error("the pinned SHA-256 must be 64 hex characters");
    const pinned = pinnedCustodyPolicy(nobleCrypto, read.value, pin);
    if ("problem" in pinned) {
      const v = read.value as { kit?: unknown; study?: unknown };
      const report: CustodyReport = {
        ok: false,
        kit: typeof v.kit === "string" ? v.kit : null,
        study: typeof v.study === "string" ? v.study : null,
        steps: [],
        errors: [{ code: "POLICY_NOT_PINNED", message: pinned.problem.replace(": give --trust", "") }],
        warnings: [],
        scope: CUSTODY_SCOPE,
        disclosure: null,
      };
      return out.append(renderCustody(f.name, report, read.value));
    }
    policy = parseTrustPolicy(JSON.parse(pinned.text));
    status.textContent = `Trust policy: ${policy.origin} (the file's own, pinned ${pin.slice(0, 12)}…).`;
  } else throw new Error("choose a trust policy file, or give the SHA-256 of the policy the file carries");
  const rpc = $<HTMLInputElement>("rpc-url").value.trim();
  const reader = rpc ? fetchReader(rpc) : undefined;
  const report = await verifyCustody(read.value, policy, nobleCrypto, { evm: reader ? () => reader : undefined });
  out.append(renderCustody(f.name, report, read.value));
}

async function run() {
  const out = $("results");
  out.replaceChildren();
  const status = $("status");
  const allocations = $<HTMLInputElement>("allocations-file")?.files?.[0];
  const custody = $<HTMLInputElement>("custody-file")?.files?.[0];
  if (allocations || custody) {
    status.textContent = "";
    status.className = "";
    try {
      if (allocations) await runAllocations(allocations, out, status);
      if (custody) await runCustody(custody, out, status);
    } catch (err) {
      status.textContent = `Cannot verify: ${(err as Error).message}`;
      status.className = "error";
    }
    if (($<HTMLInputElement>("bundle-files").files?.length ?? 0) === 0) return;
  }
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
