/**
 * Field-level history (issue 17): for each field of a record, every version in which what it held changed, with who
 * (a user's name, or a token's name and id), when, the old and the new value in words (choice labels, units,
 * missing-data codes with their reason, calculated values), the reason for change, and the seal state of that
 * version's entry. Read through `recordHistory` (records.server.ts), so a version whose rows no longer match its
 * sealed entry is never shown as sealed: each field's history names such versions.
 */
import { and, eq, inArray } from "drizzle-orm";
import {
  MISSING_CODE_LABELS,
  type FieldDefinition,
  type FormDefinition,
  type MissingCode,
} from "../../anchoring/forms/definition.ts";
import { unitLabel } from "../../anchoring/forms/units.ts";
import { canonicalize } from "../../anchoring/log/canonical.ts";
import { forms } from "../../db/schema/index.ts";
import type { Seal } from "../log/seal-text.ts";
import type { AppContext } from "../platform/context.server.ts";
import type { Principal } from "../platform/permissions.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { recordHistory } from "./records.server.ts";
import { storedDefinition } from "./stored-definition.server.ts";
import { migrationsOf, type Migration } from "../data-import/import-source.server.ts";

/** What a field held in one version, in words. */
export interface HeldValue {
  /** `value` entered or calculated, `missing` a missing-data code with a reason, `empty` nothing. */
  kind: "value" | "missing" | "empty";
  /** "72.5 kg", "Female", "Yes", "Not done (NOT_DONE)", "no value". */
  text: string;
  /** The reason given with a missing-data code. */
  reason?: string;
}

/** One version in which a field's value changed. */
export interface FieldChange {
  version: number;
  /** When the version was written (its entry's time, ISO 8601 UTC). */
  at: string;
  /** A user's full name, or a token as `token <name> (<id>)`. */
  who: string;
  old: HeldValue;
  new: HeldValue;
  /** The reason for change (null for the first entry). */
  reason: string | null;
  /** The version's entry: its seal state, `matchesSeal` false when its rows no longer match it. */
  seal: Seal;
  entryId: string;
  /** An imported version: the file, its row and the source system's claims (ADR 0036); absent when entered here. */
  migrated?: Migration;
}

export interface FieldHistory {
  field: string;
  label: string;
  /** A calculated field: its value is computed by the server from other fields. */
  calculated: boolean;
  /** What the field holds now. */
  current: HeldValue;
  /** Oldest first; the first entry counts as a change from "no value" when the field held something. */
  changes: FieldChange[];
  /**
   * Versions of the record whose rows no longer match their sealed entries: any field may have been altered in
   * them, so every field's history names them (a change hidden by the alteration cannot be listed).
   */
  mismatchedVersions: number[];
}

/** The part of `recordHistory`'s result this module reads. */
export interface VersionForHistory {
  version: number;
  formVersion: number;
  data: Record<string, unknown>;
  missing?: Record<string, { code: string; reason: string }>;
  calculated?: Record<string, number | null>;
  reason: string | null;
  actor: string;
  at: string;
  matchesSeal: boolean;
  entry: Seal & { id: string };
  /** An imported version's source (record_versions.source_text); null or absent when entered here. */
  source?: string | null;
}

const EMPTY: HeldValue = { kind: "empty", text: "no value" };

function numberText(v: number, unit?: string): string {
  return unit ? `${v} ${unitLabel(unit)}` : String(v);
}

function optionLabel(f: FieldDefinition, v: unknown): string {
  if (f.type !== "choice" && f.type !== "multichoice") return String(v);
  return f.options.find((o) => o.value === v)?.label ?? String(v);
}

/** A value in words, as the field's definition (in the version's form version) describes it. */
export function valueText(f: FieldDefinition | undefined, v: unknown): string {
  if (v === null || v === undefined) return f?.type === "calc" ? "not calculated (an input has no value)" : "no value";
  if (!f) return typeof v === "string" ? v : canonicalize(v);
  switch (f.type) {
    case "choice":
      return optionLabel(f, v);
    case "multichoice":
      return Array.isArray(v) ? (v.length ? v.map((x) => optionLabel(f, x)).join(", ") : "none chosen") : String(v);
    case "boolean":
      return v === true ? "Yes" : v === false ? "No" : String(v);
    case "number":
    case "calc":
      return typeof v === "number" ? numberText(v, f.unit) : String(v);
    default:
      return typeof v === "string" ? v : canonicalize(v);
  }
}

/** What a field held in a version: its value, its missing-data code, its calculated value, or nothing. */
function heldIn(v: VersionForHistory, f: FieldDefinition | undefined, name: string): HeldValue {
  const m = v.missing?.[name];
  if (m) {
    const label = MISSING_CODE_LABELS[m.code as MissingCode] ?? m.code;
    return { kind: "missing", text: `${label} (${m.code})`, reason: m.reason };
  }
  if (f?.type === "calc" || (v.calculated && Object.hasOwn(v.calculated, name))) {
    if (!v.calculated || !Object.hasOwn(v.calculated, name)) return EMPTY;
    return { kind: "value", text: valueText(f, v.calculated[name]) };
  }
  if (!Object.hasOwn(v.data, name) || v.data[name] === null) return EMPTY;
  return { kind: "value", text: valueText(f, v.data[name]) };
}

/** The comparable content of a field in a version (what changed, independent of the words used to show it). */
function contentOf(v: VersionForHistory, name: string): string {
  const m = v.missing?.[name];
  if (m) return canonicalize({ missing: m.code, reason: m.reason });
  if (v.calculated && Object.hasOwn(v.calculated, name)) return canonicalize({ calculated: v.calculated[name] });
  return canonicalize({ value: v.data[name] ?? null });
}

/**
 * Each field's history from a record's versions (oldest first) and the definitions of their form versions. Fields
 * are listed in the order of the newest definition, then any field only older versions held.
 */
export function fieldHistoriesOf(
  versions: VersionForHistory[],
  definitions: ReadonlyMap<number, FormDefinition>,
  migrations: ReadonlyMap<number, Migration> = new Map(),
): FieldHistory[] {
  if (versions.length === 0) return [];
  const latest = versions[versions.length - 1];
  const defOf = (v: VersionForHistory) => definitions.get(v.formVersion) ?? definitions.get(latest.formVersion);
  const fieldIn = (v: VersionForHistory, name: string) => defOf(v)?.fields.find((f) => f.name === name);
  const names: string[] = (defOf(latest)?.fields ?? []).map((f) => f.name);
  for (const v of versions)
    for (const n of [
      ...(defOf(v)?.fields ?? []).map((f) => f.name),
      ...Object.keys(v.data),
      ...Object.keys(v.missing ?? {}),
      ...Object.keys(v.calculated ?? {}),
    ])
      if (!names.includes(n)) names.push(n);
  const mismatchedVersions = versions.filter((v) => !v.matchesSeal).map((v) => v.version);
  return names.map((name) => {
    const changes: FieldChange[] = [];
    let prev: VersionForHistory | null = null;
    for (const v of versions) {
      const before = prev ? contentOf(prev, name) : canonicalize({ value: null });
      if (contentOf(v, name) !== before) {
        changes.push({
          version: v.version,
          at: v.at,
          who: v.actor,
          old: prev ? heldIn(prev, fieldIn(prev, name), name) : EMPTY,
          new: heldIn(v, fieldIn(v, name), name),
          reason: v.reason,
          seal: {
            status: v.entry.status,
            seq: v.entry.seq,
            batch: v.entry.batch,
            anchoredOn: v.entry.anchoredOn,
            matchesSeal: v.matchesSeal,
          },
          entryId: v.entry.id,
          ...(migrations.has(v.version) ? { migrated: migrations.get(v.version) } : {}),
        });
      }
      prev = v;
    }
    const def = [...versions]
      .reverse()
      .map((v) => fieldIn(v, name))
      .find((f) => f !== undefined);
    return {
      field: name,
      label: def?.label ?? name,
      calculated: def?.type === "calc",
      current: heldIn(latest, fieldIn(latest, name), name),
      changes,
      mismatchedVersions,
    };
  });
}

/** The definitions of the form versions a record's versions were entered on, by version number. */
export async function definitionsOf(
  ctx: AppContext,
  studyId: string,
  formCode: string,
  formVersions: number[],
): Promise<Map<number, FormDefinition>> {
  const rows = await ctx.db
    .select()
    .from(forms)
    .where(
      and(eq(forms.studyId, studyId), eq(forms.code, formCode), inArray(forms.version, [...new Set(formVersions)])),
    );
  return new Map(rows.map((r) => [r.version, storedDefinition(r)]));
}

/** Every field's history of a record the principal may read (404 otherwise, as `recordHistory`). */
export async function recordFieldHistory(ctx: AppContext, principal: Principal, studyCode: string, recordId: string) {
  const study = await getStudyOrThrow(ctx, studyCode);
  const record = await recordHistory(ctx, principal, study.code, recordId);
  return { record, fields: await fieldHistoriesFor(ctx, study.id, record) };
}

/** Every field's history from a record `recordHistory` already read (the record page has it). */
export async function fieldHistoriesFor(
  ctx: AppContext,
  studyId: string,
  record: { form: string; history: VersionForHistory[] },
): Promise<FieldHistory[]> {
  const defs = await definitionsOf(
    ctx,
    studyId,
    record.form,
    record.history.map((h) => h.formVersion),
  );
  return fieldHistoriesOf(record.history, defs, await migrationsOf(ctx, record.history));
}
