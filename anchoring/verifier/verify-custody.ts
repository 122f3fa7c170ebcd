/**
 * A kit's chain of custody (issue 21, ADR 0061): the file `trialseal-kit-custody/1` holds the proof bundle of every
 * ledger entry naming one kit (registered, shipped, received, the quarantine decision, dispensed, returned,
 * destruction recorded and witnessed; its lot's registration, release and recall for roles who may know the lot),
 * and, for those roles, the disclosure of the kit's blinded commitment. verifyCustody checks it offline: every bundle
 * with verifyBundle against the trust policy; every bundle names this kit (by id or number, in a shipment's or
 * destruction's kit list, or through the shipment or destruction that does); the entries in log order are a life a
 * kit can have (registered first, received after sent, dispensed after received and never after its lot's recall,
 * returned after dispensed, nothing of the kit's after its destruction but the witness); the witness is not the
 * recorder; the disclosure recomputes the kit's (and its lot's) blindHash; the lot's bundles count only when the
 * disclosure ties that lot to this kit (LOT_UNPROVEN); the kit is dispensed and destroyed at the site it was shipped
 * to; a destruction without its witness's bundle is a warning (NOT_WITNESSED). It proves the steps the file holds:
 * that no step is missing from the log is the integrity audit's job (CUSTODY_SCOPE). Pure and browser-safe: crypto
 * injected.
 */
import { z } from "zod";
import { toHex, utf8 } from "../log/bytes.ts";
import type { Crypto } from "../log/crypto.ts";
import { kitBlindHash, lotBlindHash } from "../supply/blind-hash.ts";
import type { TrustPolicy } from "./trust-policy.ts";
import { type VerifyOptions, verifyBundle } from "./verify-bundle.ts";

export const CUSTODY_FORMAT = "trialseal-kit-custody/1";
const nonce = z.string().regex(/^[A-Za-z0-9_-]{22}$/, "expected 16 bytes as base64url");

export const CustodyFileSchema = z.strictObject({
  format: z.literal(CUSTODY_FORMAT),
  study: z.string().min(1).max(64),
  /** The kit's number. */
  kit: z.string().min(1).max(32),
  exportedAt: z.string().max(64).optional(),
  /** The deployment's trust policy as the exact text `trialseal trust-policy` prints (what `--pin` names). */
  trustPolicyText: z.string().max(1_000_000).optional(),
  /** The bundles in log order; each is checked by verifyBundle (its own shape included). */
  bundles: z.array(z.unknown()).min(1).max(256),
  /** For roles who may see the kit type (or after unblinding): what the kit's (and its lot's) blindHash commits to. */
  disclosure: z
    .strictObject({
      kit: z.string().min(1).max(64),
      lot: z.string().min(1).max(64),
      kitType: z.string().min(1).max(64),
      nonce,
      /** The lot's own nonce, to check the lot's blindHash too (present with the lot's bundles). */
      lotNonce: nonce.optional(),
    })
    .optional(),
});
export type CustodyFile = z.infer<typeof CustodyFileSchema>;

export const CUSTODY_ERROR_CODES = [
  /** Not a custody file's shape. */
  "FILE_MALFORMED",
  /** `--pin` given and the file's trust policy has another SHA-256 (or the file carries none). */
  "POLICY_NOT_PINNED",
  /** A bundle fails its own proof (verifyBundle): a tampered payload, a wrong path, an untrusted signature. */
  "BUNDLE_INVALID",
  /** A bundle of another study than the file's. */
  "STUDY_MISMATCH",
  /** A bundle of a kind that is no step of a kit's custody. */
  "KIND_UNEXPECTED",
  /** A bundle that does not name this kit (another kit's, shipment's, destruction's or lot's). */
  "FOREIGN_BUNDLE",
  /** A step the others presuppose is missing (a receipt without the shipment, a return without the dispensing). */
  "STEP_MISSING",
  /** A step that happens once in a kit's life appears twice. */
  "STEP_DUPLICATED",
  /** The steps in log order are not a possible life (received before sent, anything after the destruction). */
  "ORDER_IMPOSSIBLE",
  /** The destruction's witness is the user who recorded it. */
  "WITNESS_IS_RECORDER",
  /** The disclosure does not recompute the sealed blindHash, or names another kit or lot. */
  "DISCLOSURE_MISMATCH",
  /** A lot's bundle with no disclosure tying that lot to this kit (the kit's blindHash recomputed with it). */
  "LOT_UNPROVEN",
  /** The kit dispensed or destroyed at another site than the one its shipment went to. */
  "SITE_MISMATCH",
] as const;
export type CustodyErrorCode = (typeof CUSTODY_ERROR_CODES)[number];

export const CUSTODY_WARNING_CODES = [
  /** The kit's destruction is recorded but the file holds no witness's bundle: not (yet) witnessed. */
  "NOT_WITNESSED",
] as const;
export type CustodyWarningCode = (typeof CUSTODY_WARNING_CODES)[number];

/** What a valid report proves, and what it does not (the report carries it as `scope`). */
export const CUSTODY_SCOPE =
  "proves the steps the file holds, each sealed in the log and naming this kit, in a possible order; " +
  "that no step of the kit is missing from the log is the integrity audit's job";

export interface CustodyStep {
  kind: string;
  seq: number | null;
  ok: boolean;
  /** The first problem of this step, if any. */
  code?: CustodyErrorCode;
  /** A warning about this step (the step itself is proven): a destruction not witnessed. */
  warning?: CustodyWarningCode;
}

export interface CustodyReport {
  ok: boolean;
  kit: string | null;
  study: string | null;
  steps: CustodyStep[];
  errors: { code: CustodyErrorCode; message: string; seq?: number }[];
  /** What a valid file still leaves open (the report stays ok with them). */
  warnings: { code: CustodyWarningCode; message: string; seq?: number }[];
  /** What the verdict covers: the steps present (CUSTODY_SCOPE). */
  scope: string;
  /** The disclosure checked against the sealed commitments (a kit type is named only when the file disclosed it). */
  disclosure: { kitType: string; lotChecked: boolean } | null;
}

/** A custody file's text as a value, or why it is not one (not JSON, no custody `format` marker). */
export function readCustodyText(text: string): { value: unknown } | { unreadable: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { unreadable: e instanceof RangeError ? "JSON nested too deeply to read" : "not JSON" };
  }
  const format =
    value !== null && typeof value === "object" && !Array.isArray(value)
      ? (value as Record<string, unknown>).format
      : undefined;
  if (typeof format !== "string" || !format.startsWith("trialseal-kit-custody/"))
    return { unreadable: `not a kit custody file (a JSON object with "format": "${CUSTODY_FORMAT}")` };
  return { value };
}

/** The file's own trust policy text when its SHA-256 is `pin`; else the problem. */
export function pinnedCustodyPolicy(
  crypto: Crypto,
  file: unknown,
  pin: string,
): { text: string } | { problem: string } {
  const text = (file as { trustPolicyText?: unknown } | null)?.trustPolicyText;
  if (typeof text !== "string") return { problem: "the file carries no trust policy to pin: give --trust" };
  const got = toHex(crypto.sha256(utf8(text)));
  return got === pin.trim().toLowerCase()
    ? { text }
    : { problem: `the file's trust policy has SHA-256 ${got}, not the pinned ${pin}` };
}

const KIT_KINDS = [
  "supply.kit_registered",
  "supply.shipment_sent",
  "supply.shipment_received",
  "supply.quarantine_decided",
  "supply.kit_dispensed",
  "supply.kit_returned",
  "supply.destruction_recorded",
  "supply.destruction_witnessed",
] as const;
const LOT_KINDS = ["supply.lot_registered", "supply.lot_released", "supply.lot_recalled"] as const;

interface Sealed {
  kind: string;
  seq: number;
  study: string;
  payload: Record<string, unknown>;
  index: number;
}

export async function verifyCustody(
  input: unknown,
  policy: TrustPolicy,
  crypto: Crypto,
  opts: VerifyOptions = {},
): Promise<CustodyReport> {
  const errors: CustodyReport["errors"] = [];
  const parsed = CustodyFileSchema.safeParse(input);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    errors.push({ code: "FILE_MALFORMED", message: `${i.path.join(".") || "file"}: ${i.message}` });
    const none = { kit: null, study: null, steps: [], warnings: [], scope: CUSTODY_SCOPE, disclosure: null };
    return { ok: false, ...none, errors };
  }
  const file = parsed.data;
  const fail = (code: CustodyErrorCode, message: string, seq?: number) => errors.push({ code, message, seq });

  // 1. Each bundle's own proof.
  const steps: CustodyStep[] = [];
  const sealed: Sealed[] = [];
  for (const [index, b] of file.bundles.entries()) {
    const env = (b as { envelope?: { kind?: unknown; seq?: unknown; study?: unknown } } | null)?.envelope;
    const kind = typeof env?.kind === "string" ? env.kind : "?";
    const seq = typeof env?.seq === "number" ? env.seq : null;
    steps.push({ kind, seq, ok: true });
    const report = await verifyBundle(crypto, b, policy, opts);
    if (report.verdict !== "valid") {
      const first = report.steps.find((s) => s.status === "failed");
      fail(
        "BUNDLE_INVALID",
        `bundle ${index + 1} (${kind}${seq === null ? "" : `, seq ${seq}`}) fails its proof: ` +
          `${first?.code ?? "?"}: ${first?.message ?? "not valid"}`,
        seq ?? undefined,
      );
      continue;
    }
    sealed.push({
      kind,
      seq: seq ?? -1,
      study: String(env?.study),
      payload: (b as { payload: Record<string, unknown> }).payload,
      index,
    });
  }
  sealed.sort((a, b) => a.seq - b.seq);
  const where = (s: Sealed) => `${s.kind} (seq ${s.seq})`;

  // 2. Each names this study and this kit.
  const kit = file.kit;
  const registered = sealed.filter((s) => s.kind === "supply.kit_registered" && s.payload.number === kit);
  const kitId = registered.length ? String(registered[0].payload.kit) : null;
  if (!registered.length) fail("STEP_MISSING", `no supply.kit_registered bundle of kit ${kit}: its registration`);
  const shipment = sealed.find((s) => s.kind === "supply.shipment_sent" && (s.payload.kits as unknown[]).includes(kit));
  const destruction = sealed.find(
    (s) => s.kind === "supply.destruction_recorded" && (s.payload.kits as unknown[]).includes(kit),
  );
  // The lot's bundles are this kit's only through a disclosure that recomputes the kit's sealed blindHash with
  // that lot: without it, any lot's bundles could be put in the file.
  const d0 = file.disclosure;
  const lotId =
    d0 && registered.length && d0.kit === kitId && kitBlindHash(crypto, d0) === registered[0].payload.blindHash
      ? d0.lot
      : null;
  const mine: Sealed[] = [];
  for (const s of sealed) {
    if (s.study !== file.study) {
      fail("STUDY_MISMATCH", `${where(s)} is of study ${s.study}, not ${file.study}`, s.seq);
      continue;
    }
    const p = s.payload;
    let names: boolean;
    switch (s.kind) {
      case "supply.kit_registered":
        names = p.number === kit;
        break;
      case "supply.shipment_sent":
      case "supply.destruction_recorded":
        names = (p.kits as unknown[]).includes(kit);
        break;
      case "supply.shipment_received":
      case "supply.quarantine_decided":
        if (shipment === undefined) {
          fail("STEP_MISSING", `${where(s)} without the supply.shipment_sent listing kit ${kit}`, s.seq);
          continue;
        }
        names = p.shipment === shipment.payload.shipment;
        break;
      case "supply.kit_dispensed":
      case "supply.kit_returned":
        names = p.number === kit && (kitId === null || p.kit === kitId);
        break;
      case "supply.destruction_witnessed":
        if (destruction === undefined) {
          fail("STEP_MISSING", `${where(s)} without the supply.destruction_recorded listing kit ${kit}`, s.seq);
          continue;
        }
        names = p.destruction === destruction.payload.destruction;
        break;
      case "supply.lot_registered":
      case "supply.lot_released":
      case "supply.lot_recalled":
        if (lotId === null) {
          fail(
            "LOT_UNPROVEN",
            `${where(s)}: the file holds no disclosure that ties lot ${String(p.lot)} to kit ${kit} ` +
              "(the kit's sealed commitment recomputed with that lot)",
            s.seq,
          );
          continue;
        }
        names = p.lot === lotId;
        break;
      default:
        fail("KIND_UNEXPECTED", `${where(s)} is no step of a kit's custody`, s.seq);
        continue;
    }
    if (!names) fail("FOREIGN_BUNDLE", `${where(s)} does not name kit ${kit}: another kit's bundle`, s.seq);
    else mine.push(s);
  }

  // 3. Once each, and a possible life in log order.
  const of = (kind: string) => mine.filter((s) => s.kind === kind);
  for (const kind of [...KIT_KINDS, ...LOT_KINDS]) {
    const all = of(kind);
    if (all.length > 1)
      fail(
        "STEP_DUPLICATED",
        `${kind} appears ${all.length} times (seq ${all.map((s) => s.seq).join(", ")}): once in a kit's life`,
        all[1].seq,
      );
  }
  const one = (kind: string) => of(kind)[0];
  const reg = one("supply.kit_registered");
  const sent = one("supply.shipment_sent");
  const received = one("supply.shipment_received");
  const decided = one("supply.quarantine_decided");
  const dispensed = one("supply.kit_dispensed");
  const returned = one("supply.kit_returned");
  const recorded = one("supply.destruction_recorded");
  const witnessed = one("supply.destruction_witnessed");
  const lotRegistered = one("supply.lot_registered");
  const recalled = one("supply.lot_recalled");
  const needs = (s: Sealed | undefined, before: Sealed | undefined, kind: string, why: string) => {
    if (!s) return;
    if (!before) fail("STEP_MISSING", `${where(s)} without ${kind}: ${why}`, s.seq);
    else if (before.seq > s.seq) fail("ORDER_IMPOSSIBLE", `${where(s)} comes before ${where(before)}`, s.seq);
  };
  const excursion = received?.payload.excursion === true;
  for (const s of mine)
    if (KIT_KINDS.includes(s.kind as (typeof KIT_KINDS)[number]) && s !== reg && reg && s.seq < reg.seq)
      fail("ORDER_IMPOSSIBLE", `${where(s)} comes before the kit's registration (seq ${reg.seq})`, s.seq);
  needs(received, sent, "supply.shipment_sent", "a receipt of a shipment the file does not hold");
  needs(decided, received, "supply.shipment_received", "a quarantine decision on a shipment never received");
  if (decided && received && !excursion)
    fail("ORDER_IMPOSSIBLE", `${where(decided)} decides on a shipment received without an excursion`, decided.seq);
  needs(dispensed, received, "supply.shipment_received", "a kit dispensed that was never received at the site");
  if (dispensed && excursion) {
    needs(dispensed, decided, "supply.quarantine_decided", "a quarantined kit dispensed before the sponsor decided");
    if (decided && decided.payload.outcome !== "release")
      fail(
        "ORDER_IMPOSSIBLE",
        `${where(dispensed)}: the sponsor decided to destroy the shipment's kits`,
        dispensed.seq,
      );
  }
  needs(returned, dispensed, "supply.kit_dispensed", "a kit returned that was never dispensed");
  needs(witnessed, recorded, "supply.destruction_recorded", "a witness of a destruction the file does not hold");
  for (const s of [one("supply.lot_released"), recalled])
    needs(s, lotRegistered, "supply.lot_registered", "the lot's registration is missing");
  if (lotRegistered && reg && lotRegistered.seq > reg.seq)
    fail("ORDER_IMPOSSIBLE", `${where(reg)} comes before its lot's registration (seq ${lotRegistered.seq})`, reg.seq);
  if (recalled && dispensed && dispensed.seq > recalled.seq)
    fail("ORDER_IMPOSSIBLE", `${where(dispensed)} comes after its lot's recall (seq ${recalled.seq})`, dispensed.seq);
  if (recorded)
    for (const s of mine)
      if (KIT_KINDS.includes(s.kind as (typeof KIT_KINDS)[number]) && s !== witnessed && s.seq > recorded.seq)
        fail("ORDER_IMPOSSIBLE", `${where(s)} comes after the kit's destruction (seq ${recorded.seq})`, s.seq);
  if (dispensed && sent && dispensed.payload.site !== sent.payload.site)
    fail(
      "SITE_MISMATCH",
      `${where(dispensed)} at site ${String(dispensed.payload.site)}, but ${where(sent)} went to site ` +
        `${String(sent.payload.site)}`,
      dispensed.seq,
    );
  const atSite = (site: unknown) => (site === null ? "the depot" : `site ${String(site)}`);
  if (recorded && sent && recorded.payload.site !== sent.payload.site)
    fail(
      "SITE_MISMATCH",
      `${where(recorded)} at ${atSite(recorded.payload.site)}, but ${where(sent)} went to site ` +
        `${String(sent.payload.site)}`,
      recorded.seq,
    );
  if (recorded && !sent && recorded.payload.site !== null)
    fail(
      "STEP_MISSING",
      `${where(recorded)} at site ${String(recorded.payload.site)} without the shipment that brought the kit there`,
      recorded.seq,
    );
  const warnings: CustodyReport["warnings"] = [];
  if (recorded && !witnessed)
    warnings.push({
      code: "NOT_WITNESSED",
      message: `${where(recorded)}: the file holds no witness's bundle: the destruction is not (yet) witnessed`,
      seq: recorded.seq,
    });
  if (witnessed && recorded && witnessed.payload.actor === recorded.payload.actor)
    fail(
      "WITNESS_IS_RECORDER",
      `${where(witnessed)}: the destruction is witnessed by the user who recorded it (${recorded.payload.actor})`,
      witnessed.seq,
    );

  // 4. The disclosure against the sealed commitments.
  let disclosure: CustodyReport["disclosure"] = null;
  const d = file.disclosure;
  if (d) {
    let lotChecked = false;
    if (reg) {
      if (d.kit !== kitId) fail("DISCLOSURE_MISMATCH", `the disclosure names kit ${d.kit}, not ${kitId}`, reg.seq);
      else if (kitBlindHash(crypto, d) !== reg.payload.blindHash)
        fail("DISCLOSURE_MISMATCH", `the disclosure does not recompute ${where(reg)}'s blindHash`, reg.seq);
    }
    if (lotRegistered && d.lotNonce) {
      lotChecked = true;
      if (
        lotBlindHash(crypto, { lot: d.lot, kitType: d.kitType, nonce: d.lotNonce }) !== lotRegistered.payload.blindHash
      )
        fail(
          "DISCLOSURE_MISMATCH",
          `the disclosure does not recompute ${where(lotRegistered)}'s blindHash`,
          lotRegistered.seq,
        );
    }
    disclosure = { kitType: d.kitType, lotChecked };
  }

  for (const e of errors) {
    const step = steps.find((s) => s.seq === e.seq && e.seq !== undefined && s.ok);
    if (step) Object.assign(step, { ok: false, code: e.code });
  }
  for (const w of warnings) {
    const step = steps.find((s) => s.seq === w.seq && w.seq !== undefined && !s.warning);
    if (step) step.warning = w.code;
  }
  const ok = errors.length === 0;
  return { ok, kit, study: file.study, steps, errors, warnings, scope: CUSTODY_SCOPE, disclosure };
}
