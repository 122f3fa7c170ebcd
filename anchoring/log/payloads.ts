/**
 * Ledger payload schemas, one per entry kind, versioned (`v`) and strict (unknown keys rejected).
 * Every payload carries `salt` (16 random bytes, base64url) so that low-entropy content cannot be
 * guessed from its hash. Personal data never appears here: where a payload must be bound to a person,
 * it carries an HMAC under that subject's server-side key (destroying the key is the erasure procedure).
 */
import { z } from "zod";
import { MISSING_CODES } from "../forms/definition.ts";

/** A participant's disposition in the study (issue 18), in the order a participant usually passes through them. */
export const DISPOSITIONS = [
  "screening",
  "screen_failed",
  "enrolled",
  "randomized",
  "discontinued",
  "completed",
] as const;
export type Disposition = (typeof DISPOSITIONS)[number];

/** The documents of a study that are versioned and sealed (issue 20). */
export const STUDY_DOCUMENT_TYPES = ["protocol", "sap", "ib", "dmp"] as const;
export type StudyDocumentType = (typeof STUDY_DOCUMENT_TYPES)[number];
/**
 * A randomization stratum's key: `site=CODE`, then `;factor=level` for each stratification factor in the design's
 * order (anchoring/randomization/slots.ts builds and reads it).
 */
const stratumKey = z
  .string()
  .regex(/^site=[^;=]{1,64}(;[a-z][a-z0-9_]{0,31}=[^;=]{1,64}){0,2}$/, "expected a stratum key");

const hex32 = z.string().regex(/^[0-9a-f]{64}$/, "expected 32 bytes as lowercase hex");
/** Free text as its salted hash: SHA-256 (hex) of the payload's salt, a newline and the text (ADR 0020). */
const textHash = hex32;
const salt = z.string().regex(/^[A-Za-z0-9_-]{22}$/, "expected 16 bytes as base64url");
const id = z.string().uuid();
const code = z.string().min(1).max(64);
const isoDate = z.string().regex(/^\d{4}-\d{2}-\d{2}$/);
/** A kit's number as printed on its label (issue 21): capitals, digits and dashes. */
export const KIT_NUMBER_PATTERN = /^[A-Z0-9][A-Z0-9-]{2,31}$/;
const kitNumber = z.string().regex(KIT_NUMBER_PATTERN, "expected a kit number");
/** A temperature in tenths of a degree Celsius (25 is 2.5 °C). */
const tenths = z.number().int().min(-1000).max(1000);
/** An IANA time zone name (Europe/Berlin, UTC); the server checks it names a zone it knows. */
const timeZone = z.string().regex(/^[A-Za-z][A-Za-z0-9_+\-/]{0,63}$/, "expected an IANA time zone name");
/**
 * The study API token a write was made with (its id and its name at the time; neither is personal data). Optional,
 * so that payloads issued before it existed still parse; a payload names a user (`actor`) or a token, never both.
 */
const token = z.strictObject({ id, name: z.string().min(1).max(200) }).optional();
const userOrToken = (p: { actor: string | null; token?: unknown }) => p.actor === null || p.token === undefined;
const userOrTokenMessage = { message: "a payload names a user (actor) or a token, not both", path: ["token"] };

/** A CRF field's name (anchoring/forms/definition.ts). */
const fieldName = z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, "expected a field name");
/** No field of a record.saved v3 payload is in two of its maps. */
function disjointFields(p: Record<"values" | "hashed" | "calculated" | "missing", Record<string, unknown>>) {
  const seen = new Set<string>();
  for (const m of [p.values, p.hashed, p.calculated, p.missing])
    for (const k of Object.keys(m)) {
      if (seen.has(k)) return false;
      seen.add(k);
    }
  return true;
}

/** JSON value, as stored in record values (numbers kept as parsed, never converted). */
const jsonValue: z.ZodType<unknown> = z.lazy(() =>
  z.union([
    z.string(),
    z.number().refine(Number.isFinite),
    z.boolean(),
    z.null(),
    z.array(jsonValue),
    z.record(z.string(), jsonValue),
  ]),
);

/** The audit.event payload of version `v` (the two differ only in what `ip` holds: see the kind below). */
function auditEvent<V extends 1 | 2>(v: V) {
  return z.strictObject({
    v: z.literal(v),
    salt,
    /** The audit_events row's id. */
    event: z.number().int().positive(),
    at: z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/, "expected UTC time with milliseconds"),
    action: z.string().min(1).max(64),
    outcome: z.enum(["success", "failure", "denied"]),
    actor: id.nullable(),
    actorLabel: hex32.nullable(),
    site: id.nullable(),
    participant: id.nullable(),
    /** Version 1: SHA-256 of the salt, a newline and the address; version 2: HMAC under the deployment key. */
    ip: hex32.nullable(),
    detail: hex32,
    /** Aggregated events only: how many occurrences this event stands for. */
    count: z.number().int().positive().optional(),
  });
}

export const PAYLOAD_SCHEMAS = {
  /** Version 1 held the title in clear; version 2 (ADR 0020) its salted hash. */
  "study.registered": z.union([
    z.strictObject({ v: z.literal(1), salt, study: code, title: z.string().max(500), actor: id.nullable() }),
    z.strictObject({ v: z.literal(2), salt, study: code, titleHash: textHash, actor: id.nullable() }),
  ]),
  /** Version 2 (ADR 0030): the site's time zone (an IANA name, not personal data) as it was created with. */
  "site.added": z.union([
    z.strictObject({ v: z.literal(1), salt, site: code, actor: id.nullable() }),
    z.strictObject({ v: z.literal(2), salt, site: code, timeZone, actor: id.nullable() }),
  ]),
  /** A site's time zone changed (ADR 0030): the new zone, the one it replaces, and who changed it. */
  "site.time_zone_set": z
    .strictObject({
      v: z.literal(1),
      salt,
      site: code,
      timeZone,
      previous: timeZone.nullable(),
      actor: id.nullable(),
      token,
    })
    .refine(userOrToken, userOrTokenMessage),
  "role.granted": z.strictObject({
    v: z.literal(1),
    salt,
    user: id,
    role: z.string(),
    site: code.nullable(),
    actor: id.nullable(),
  }),
  "role.revoked": z.strictObject({
    v: z.literal(1),
    salt,
    user: id,
    role: z.string(),
    site: code.nullable(),
    actor: id.nullable(),
  }),
  /** ICH E6(R3) delegation of authority: an investigator delegates a task at a site, with training evidence. */
  "delegation.granted": z.union([
    z.strictObject({
      v: z.literal(1),
      salt,
      delegation: id,
      site: code,
      delegate: id,
      task: z.enum(["consent", "enrollment", "data_entry", "signoff"]),
      startsOn: isoDate,
      endsOn: isoDate.nullable(),
      training: z
        .array(z.strictObject({ course: z.string().min(1).max(200), completedOn: isoDate, evidenceSha256: hex32 }))
        .max(20),
      actor: id.nullable(),
    }),
    /** Version 2 (ADR 0020): each training course's name as its salted hash. */
    z.strictObject({
      v: z.literal(2),
      salt,
      delegation: id,
      site: code,
      delegate: id,
      task: z.enum(["consent", "enrollment", "data_entry", "signoff"]),
      startsOn: isoDate,
      endsOn: isoDate.nullable(),
      training: z.array(z.strictObject({ courseHash: textHash, completedOn: isoDate, evidenceSha256: hex32 })).max(20),
      actor: id.nullable(),
    }),
  ]),
  /** Version 1 held the reason in clear; version 2 (ADR 0020) its salted hash (anchoring/log/text-hash.ts). */
  "delegation.revoked": z.union([
    z.strictObject({
      v: z.literal(1),
      salt,
      delegation: id,
      reason: z.string().min(1).max(2000),
      actor: id.nullable(),
    }),
    z.strictObject({ v: z.literal(2), salt, delegation: id, reasonHash: textHash, actor: id.nullable() }),
  ]),
  /**
   * A data manager locks (or an authorized role unlocks) a record, a subject's casebook or the whole study. Version
   * 1 held the reason in clear; version 2 (ADR 0020) its salted hash.
   */
  "lock.set": z.union([
    z.strictObject({
      v: z.literal(1),
      salt,
      lock: id,
      scope: z.enum(["record", "subject", "study"]),
      target: z.string().min(1).max(64),
      reason: z.string().min(1).max(2000),
      actor: id.nullable(),
    }),
    z.strictObject({
      v: z.literal(2),
      salt,
      lock: id,
      scope: z.enum(["record", "subject", "study"]),
      target: z.string().min(1).max(64),
      reasonHash: textHash,
      actor: id.nullable(),
    }),
  ]),
  "lock.released": z.union([
    z.strictObject({
      v: z.literal(1),
      salt,
      lock: id,
      reason: z.string().min(1).max(2000),
      actor: id.nullable(),
    }),
    z.strictObject({ v: z.literal(2), salt, lock: id, reasonHash: textHash, actor: id.nullable() }),
  ]),
  /** Part 11 e-signature: bound to the signed version's record.saved payload hash, with its meaning. */
  "signature.applied": z.strictObject({
    v: z.literal(1),
    salt,
    signature: id,
    record: id,
    version: z.number().int().positive(),
    signedPayloadHash: hex32,
    meaning: z.enum(["authored", "reviewed", "approved"]),
    signer: id,
    actor: id.nullable(),
  }),
  /**
   * Monitoring: source data verification of a record version, and queries on a field (text kept off the ledger,
   * its hash on it).
   */
  "sdv.marked": z.strictObject({
    v: z.literal(1),
    salt,
    record: id,
    version: z.number().int().positive(),
    actor: id.nullable(),
  }),
  /**
   * Version 1 held the text's plain SHA-256 (`textSha256`); version 2 (ADR 0020) its salted hash (`textHash`);
   * version 3 adds `token`, for a query opened with an API token.
   */
  "query.opened": z.union([
    z.strictObject({
      v: z.literal(1),
      salt,
      query: id,
      record: id,
      field: z.string().min(1).max(64),
      textSha256: hex32,
      actor: id.nullable(),
    }),
    z.strictObject({
      v: z.literal(2),
      salt,
      query: id,
      record: id,
      field: z.string().min(1).max(64),
      textHash,
      actor: id.nullable(),
    }),
    /** Version 3: a query opened by a write made with a study API token (an automatic one) names the token. */
    z
      .strictObject({
        v: z.literal(3),
        salt,
        query: id,
        record: id,
        field: z.string().min(1).max(64),
        textHash,
        actor: id.nullable(),
        token,
      })
      .refine(userOrToken, userOrTokenMessage),
  ]),
  "query.answered": z.union([
    z.strictObject({ v: z.literal(1), salt, query: id, textSha256: hex32, actor: id.nullable() }),
    z.strictObject({ v: z.literal(2), salt, query: id, textHash, actor: id.nullable() }),
    /** Version 3 (issue 18): an answer given through a study API token names it. */
    z
      .strictObject({ v: z.literal(3), salt, query: id, textHash, actor: id.nullable(), token })
      .refine(userOrToken, userOrTokenMessage),
  ]),
  "query.closed": z.union([
    z.strictObject({ v: z.literal(1), salt, query: id, actor: id.nullable() }),
    /** Version 2 (issue 18): a close made through a study API token names it. */
    z
      .strictObject({ v: z.literal(2), salt, query: id, actor: id.nullable(), token })
      .refine(userOrToken, userOrTokenMessage),
  ]),
  /** A closed or answered query opened again (issue 18), with the reason as its salted hash. */
  "query.reopened": z
    .strictObject({ v: z.literal(1), salt, query: id, textHash, actor: id.nullable(), token })
    .refine(userOrToken, userOrTokenMessage),
  "form.approved": z.strictObject({
    v: z.literal(1),
    salt,
    form: code,
    version: z.number().int().positive(),
    definitionSha256: hex32,
    actor: id.nullable(),
  }),
  /** Version 1 held the IRB's name in clear; version 2 (ADR 0020) its salted hash. */
  "consent_document.approved": z.union([
    z.strictObject({
      v: z.literal(1),
      salt,
      document: code,
      version: z.string().min(1).max(32),
      bodySha256: hex32,
      irbName: z.string().min(1).max(200),
      irbApprovedOn: isoDate,
      actor: id.nullable(),
    }),
    z.strictObject({
      v: z.literal(2),
      salt,
      document: code,
      version: z.string().min(1).max(32),
      bodySha256: hex32,
      irbNameHash: textHash,
      irbApprovedOn: isoDate,
      actor: id.nullable(),
    }),
  ]),
  /**
   * One signature on a consent document version (participant, representative, parent, minor's assent,
   * impartial witness, or the staff member obtaining consent). No personal data: the printed name is bound
   * through an HMAC under the subject's key; the document through its SHA-256.
   */
  "consent.signed": z.strictObject({
    v: z.literal(1),
    salt,
    signature: id,
    subject: code,
    document: code,
    version: z.string().min(1).max(32),
    documentSha256: hex32,
    signerRole: z.enum(["participant", "lar", "witness", "parent", "assent", "staff"]),
    meaning: z.string().min(1).max(500),
    /** HMAC-SHA-256 of the printed name under the subject key (hex). */
    nameHmac: hex32,
    /** Optional consent items: key -> agreed. */
    options: z.record(z.string().regex(/^[a-z][a-z0-9_]{0,31}$/), z.boolean()),
    /** The signature this one countersigns, witnesses or accompanies (null for the first signature). */
    countersigns: id.nullable(),
    /** Signed from a browser that carried a staff session (flagged, per the FDA eIC guidance). */
    fromStaffDevice: z.boolean(),
    actor: id.nullable(),
  }),
  /**
   * Full or partial withdrawal of consent; data collected before it are retained. The reason's text stays off the
   * ledger: version 1 held its plain SHA-256 (`reasonSha256`), version 2 (ADR 0020) its salted hash (`reasonHash`).
   */
  "consent.withdrawn": z.union([
    z.strictObject({
      v: z.literal(1),
      salt,
      withdrawal: id,
      subject: code,
      scope: z.enum(["full", "partial"]),
      followUp: z.boolean(),
      optionalWithdrawn: z.array(z.string().regex(/^[a-z][a-z0-9_]{0,31}$/)).max(20),
      reasonSha256: hex32.nullable(),
      byParticipant: z.boolean(),
      actor: id.nullable(),
    }),
    z.strictObject({
      v: z.literal(2),
      salt,
      withdrawal: id,
      subject: code,
      scope: z.enum(["full", "partial"]),
      followUp: z.boolean(),
      optionalWithdrawn: z.array(z.string().regex(/^[a-z][a-z0-9_]{0,31}$/)).max(20),
      reasonHash: textHash.nullable(),
      byParticipant: z.boolean(),
      actor: id.nullable(),
    }),
  ]),
  /**
   * A representative's (or parent's) contact for the consent identity check, entered by a member of staff (ADR
   * 0018). Neither the name nor the contact, nor its HMAC, reaches the ledger: only the row's id and who entered it.
   */
  "consent.contact_registered": z.strictObject({
    v: z.literal(1),
    salt,
    contact: id,
    subject: code,
    role: z.enum(["lar", "parent"]),
    channel: z.enum(["email", "sms"]),
    actor: id,
  }),
  /**
   * A signer's contact confirmed by a second member of staff, or the signer's identity verified in person at a
   * visit (ADR 0018): who confirmed (`actor`), who had entered the contact, and how.
   */
  "consent.contact_confirmed": z.strictObject({
    v: z.literal(1),
    salt,
    contact: id,
    subject: code,
    role: z.enum(["participant", "lar", "parent"]),
    method: z.enum(["staff", "in_person"]),
    enteredBy: id.nullable(),
    actor: id,
  }),
  /** A consent obtained on paper: the scan's SHA-256 (the scan stays in the site file), bound to a document version. */
  "consent.paper_scanned": z.strictObject({
    v: z.literal(1),
    salt,
    paper: id,
    subject: code,
    document: code,
    version: z.string().min(1).max(32),
    documentSha256: hex32,
    scanSha256: hex32,
    scanBytes: z.number().int().positive(),
    actor: id.nullable(),
  }),
  /** An investigator attests that the scanned paper consent is complete (signed and dated by all who must). */
  "consent.paper_attested": z.strictObject({
    v: z.literal(1),
    salt,
    paper: id,
    subject: code,
    scanSha256: hex32,
    investigator: id,
    actor: id.nullable(),
  }),
  /** A study's settings in force from this entry on (item: CRF forms allowed before consent, pre-screening). */
  "study.settings_changed": z.union([
    z.strictObject({
      v: z.literal(1),
      salt,
      version: z.number().int().positive(),
      formsBeforeConsent: z.array(code).max(50),
      actor: id.nullable(),
    }),
    /** Version 2 (issue 18): the enrolment targets, for the study and per site code (null: none set). */
    z.strictObject({
      v: z.literal(2),
      salt,
      version: z.number().int().positive(),
      formsBeforeConsent: z.array(code).max(50),
      enrolmentTargets: z
        .strictObject({
          total: z.number().int().min(0).max(10_000_000).nullable(),
          sites: z.record(code, z.number().int().min(0).max(10_000_000)),
        })
        .nullable(),
      actor: id.nullable(),
    }),
    /** Version 3 (issue 22): whether participants see the names of the staff who used their data (ADR 0067). */
    z.strictObject({
      v: z.literal(3),
      salt,
      version: z.number().int().positive(),
      formsBeforeConsent: z.array(code).max(50),
      enrolmentTargets: z
        .strictObject({
          total: z.number().int().min(0).max(10_000_000).nullable(),
          sites: z.record(code, z.number().int().min(0).max(10_000_000)),
        })
        .nullable(),
      staffNamesToParticipants: z.boolean(),
      actor: id.nullable(),
    }),
  ]),
  /**
   * A participant's disposition changed (issue 18): screening, screen failure, enrolled, randomized, discontinued,
   * completed; the one it replaces, the date it took effect and the reason as its salted hash (screen failure and
   * discontinuation require one).
   */
  "participant.disposition_set": z
    .strictObject({
      v: z.literal(1),
      salt,
      subject: code,
      status: z.enum(DISPOSITIONS),
      previous: z.enum(DISPOSITIONS).nullable(),
      date: isoDate,
      reasonHash: textHash.nullable(),
      actor: id.nullable(),
      token,
    })
    .refine(userOrToken, userOrTokenMessage),
  /**
   * A study's visit schedule, version `version` (issue 18): `sha256` is the SHA-256 of the schedule definition's
   * canonical JSON text as stored (visit_schedules.definition_text), `visits` its visit codes in order.
   */
  "schedule.set": z
    .strictObject({
      v: z.literal(1),
      salt,
      version: z.number().int().positive(),
      sha256: hex32,
      visits: z.array(code).max(500),
      actor: id.nullable(),
      token,
    })
    .refine(userOrToken, userOrTokenMessage),
  /**
   * An import of existing data finished (issue 18): the job, the file's format, its name as a salted hash, its
   * SHA-256 and size, and how many record versions and values it sealed (each as a record.saved v4 entry).
   */
  "import.completed": z
    .strictObject({
      v: z.literal(1),
      salt,
      job: id,
      format: z.enum(["csv", "odm"]),
      fileNameHash: textHash,
      sha256: hex32,
      bytes: z.number().int().min(0),
      records: z.number().int().min(0),
      values: z.number().int().min(0),
      actor: id.nullable(),
      token,
    })
    .refine(userOrToken, userOrTokenMessage),
  "participant.enrolled": z
    .strictObject({
      v: z.literal(1),
      salt,
      subject: code,
      site: code,
      /** HMAC-SHA-256 of the personal data under the subject key (hex), or null when none was given. */
      identity: hex32.nullable(),
      actor: id.nullable(),
      token,
    })
    .refine(userOrToken, userOrTokenMessage),
  /**
   * The erasure procedure: a subject's personal data and key were destroyed (crypto-shredding); trial data stay.
   * Version 1 held the reason's plain SHA-256, version 2 (ADR 0020) its salted hash.
   */
  "participant.erased": z.union([
    z.strictObject({ v: z.literal(1), salt, subject: code, reasonSha256: hex32, actor: id.nullable() }),
    z.strictObject({ v: z.literal(2), salt, subject: code, reasonHash: textHash, actor: id.nullable() }),
  ]),
  /**
   * One event of the Part 11 audit trail (ADR 0016): sign-ins, failures, exports, views, every data event. Sealed
   * in its study's scope, or in the deployment scope (envelope study `deployment`) when it has none. The actor's
   * label and the free-form detail appear only as salted hashes: SHA-256 of this payload's salt, a newline and the
   * text (the detail as canonical JSON), so whoever holds the row and the entry can check them. The source address
   * is, from version 2 on, HMAC-SHA-256 under a per-deployment key derived from DATA_KEY (an address space is small
   * enough to enumerate against a salted hash whose salt travels with it); version 1 held its salted hash.
   */
  "audit.event": z.union([auditEvent(1), auditEvent(2)]),
  /**
   * The audit-trail events written before they were sealed (before migration 0016), sealed once at upgrade in the
   * deployment scope (ADR 0016): how many, their first and last id, and `digest`: SHA-256 (hex) of this payload's
   * salt, a newline, then each row (id order) as canonical JSON followed by a newline.
   */
  "audit.legacy_sealed": z.strictObject({
    v: z.literal(1),
    salt,
    count: z.number().int().positive(),
    firstId: z.number().int().positive(),
    lastId: z.number().int().positive(),
    digest: hex32,
  }),
  /**
   * A record version. Version 1 held the reason for change in clear; version 2 (ADR 0020) its salted hash; version 3
   * (ADR 0025) classes the values: identifiers and free text only as salted hashes.
   */
  "record.saved": z.union([
    z
      .strictObject({
        v: z.literal(1),
        salt,
        record: id,
        version: z.number().int().positive(),
        subject: code,
        form: code,
        formVersion: z.number().int().positive(),
        visit: code,
        actor: id.nullable(),
        token,
        reason: z.string().max(2000).nullable(),
        values: z.record(z.string(), jsonValue),
        prev: hex32.nullable(),
      })
      .refine(userOrToken, userOrTokenMessage),
    z
      .strictObject({
        v: z.literal(2),
        salt,
        record: id,
        version: z.number().int().positive(),
        subject: code,
        form: code,
        formVersion: z.number().int().positive(),
        visit: code,
        actor: id.nullable(),
        token,
        reasonHash: textHash.nullable(),
        values: z.record(z.string(), jsonValue),
        prev: hex32.nullable(),
      })
      .refine(userOrToken, userOrTokenMessage),
    /**
     * Version 3 (ADR 0025, ADR 0026): the form version's hash (`formSha256`, form.approved's definitionSha256), the
     * row of a repeating form (`instance`, 1 unless the form repeats); `values` holds the shown `clear` fields only,
     * `hashed` each identifier and free-text field as its salted hash (of the text, or of the canonical JSON of any
     * other value), `calculated` every shown calculated field (null when an input is empty), `missing` each
     * missing-data code with its reason's salted hash.
     */
    z
      .strictObject({
        v: z.literal(3),
        salt,
        record: id,
        version: z.number().int().positive(),
        subject: code,
        form: code,
        formVersion: z.number().int().positive(),
        formSha256: hex32,
        visit: code,
        instance: z.number().int().positive(),
        actor: id.nullable(),
        token,
        reasonHash: textHash.nullable(),
        values: z.record(fieldName, jsonValue),
        hashed: z.record(fieldName, textHash),
        calculated: z.record(fieldName, z.number().refine(Number.isFinite).nullable()),
        missing: z.record(fieldName, z.strictObject({ code: z.enum(MISSING_CODES), reasonHash: textHash })),
        prev: hex32.nullable(),
      })
      .refine(userOrToken, userOrTokenMessage)
      .refine((p) => disjointFields(p), {
        message: "a field appears in more than one of values, hashed, calculated and missing",
        path: ["values"],
      }),
    /**
     * Version 4 (issue 18): a version imported from another system's file (`migrated`). Version 3's fields, and
     * `source`: the import job, the file's SHA-256 and the row (CSV line, or ODM ItemGroupData ordinal) it came from,
     * and the source system's audit record where the file has one, as that system's claims: its user and reason as
     * salted hashes and its time as written in the file. Our seal time is the import time.
     */
    z
      .strictObject({
        v: z.literal(4),
        salt,
        record: id,
        version: z.number().int().positive(),
        subject: code,
        form: code,
        formVersion: z.number().int().positive(),
        formSha256: hex32,
        visit: code,
        instance: z.number().int().positive(),
        actor: id.nullable(),
        token,
        reasonHash: textHash.nullable(),
        values: z.record(fieldName, jsonValue),
        hashed: z.record(fieldName, textHash),
        calculated: z.record(fieldName, z.number().refine(Number.isFinite).nullable()),
        missing: z.record(fieldName, z.strictObject({ code: z.enum(MISSING_CODES), reasonHash: textHash })),
        prev: hex32.nullable(),
        source: z.strictObject({
          job: id,
          fileSha256: hex32,
          row: z.number().int().positive(),
          claims: z
            .strictObject({
              userHash: textHash.nullable(),
              at: z.string().max(64).nullable(),
              reasonHash: textHash.nullable(),
            })
            .nullable(),
        }),
      })
      .refine(userOrToken, userOrTokenMessage)
      .refine((p) => disjointFields(p), {
        message: "a field appears in more than one of values, hashed, calculated and missing",
        path: ["values"],
      }),
  ]),
  /**
   * A generated document whose bytes are not reproducible (a PDF: certified copy of a casebook, consent receipt),
   * sealed by its SHA-256 when it is generated, with the audit event of the generation (ADR 0019). Ids only: the
   * subject code and, for a receipt, the invitation it was downloaded through.
   */
  "document.generated": z.strictObject({
    v: z.literal(1),
    salt,
    document: z.enum(["certified_copy", "consent_receipt"]),
    subject: code,
    invitation: id.nullable(),
    sha256: hex32,
    bytes: z.number().int().min(0),
    actor: id.nullable(),
  }),
  // ---- Pre-commitment (issue 20): study documents, SAP outcomes, the public registration, randomization, lock ----
  /**
   * A version of a study document (protocol, statistical analysis plan, investigator's brochure, data management
   * plan) uploaded as a PDF: its SHA-256 and size, the file name and the approving body as salted hashes, the
   * approval date; an amendment names the version it `replaces` and its reason (salted hash), the first has neither.
   */
  "study_document.registered": z
    .strictObject({
      v: z.literal(1),
      salt,
      document: id,
      type: z.enum(STUDY_DOCUMENT_TYPES),
      version: z.string().min(1).max(32),
      sha256: hex32,
      bytes: z.number().int().positive(),
      fileNameHash: textHash,
      approvedOn: isoDate,
      approverHash: textHash,
      replaces: id.nullable(),
      reasonHash: textHash.nullable(),
      actor: id.nullable(),
      token,
    })
    .refine(userOrToken, userOrTokenMessage)
    .refine((p) => (p.replaces === null) === (p.reasonHash === null), {
      message: "an amendment names the version it replaces and a reason; a first version has neither",
      path: ["reasonHash"],
    }),
  /** A site's approval (its ethics committee or institution) of one study document version, with its date. */
  "study_document.site_approved": z
    .strictObject({
      v: z.literal(1),
      salt,
      approval: id,
      document: id,
      site: code,
      approvedOn: isoDate,
      actor: id.nullable(),
      token,
    })
    .refine(userOrToken, userOrTokenMessage),
  /**
   * A version of the SAP's outcome list, sealed with the SAP document version in force (`sap`): the list's canonical
   * JSON as its salted hash (`outcomesHash`), how many outcomes and how many primary; `afterFirstEnrolment` when a
   * participant was already enrolled (a change then needs a reason, `reasonHash`, and is flagged on the public page).
   */
  "sap.outcomes_set": z
    .strictObject({
      v: z.literal(1),
      salt,
      outcomes: id,
      version: z.number().int().positive(),
      sap: id,
      outcomesHash: textHash,
      count: z.number().int().min(0).max(200),
      primary: z.number().int().min(0).max(200),
      afterFirstEnrolment: z.boolean(),
      reasonHash: textHash.nullable(),
      actor: id.nullable(),
      token,
    })
    .refine(userOrToken, userOrTokenMessage),
  /** The sponsor publishes (or withdraws) the study's public registration page. */
  "registration.published": z
    .strictObject({ v: z.literal(1), salt, published: z.boolean(), actor: id.nullable(), token })
    .refine(userOrToken, userOrTokenMessage),
  /**
   * The randomization commitment, sealed before the first allocation: the design (strata definitions, factors,
   * block configuration, kit-type-to-arm map) as `designHash`: SHA-256 of the list's SECRET design nonce (32 bytes,
   * base64url, kept in the database and revealed only in the allocations file), a newline and the design's canonical
   * JSON (the payload's public salt would let anyone guess a low-entropy design); and per stratum its key, the RFC
   * 6962 root of its slots' leaves and their number. Nothing here unblinds.
   */
  "randomization.committed": z
    .strictObject({
      v: z.literal(1),
      salt,
      list: id,
      source: z.enum(["generated", "uploaded"]),
      designHash: textHash,
      strata: z.array(z.strictObject({ key: stratumKey, root: hex32, size: z.number().int().min(1).max(100_000) })),
      actor: id.nullable(),
      token,
    })
    .refine(userOrToken, userOrTokenMessage)
    .refine((p) => p.strata.length >= 1 && p.strata.length <= 2000, {
      message: "a commitment has 1 to 2000 strata",
      path: ["strata"],
    }),
  /**
   * A participant randomized: the next slot (`seq`, from 0) of their stratum, its randomization number and the slot's
   * leaf hash (the arm stays hidden behind the slot's salt until unblinding).
   */
  "randomization.allocated": z
    .strictObject({
      v: z.literal(1),
      salt,
      allocation: id,
      list: id,
      subject: code,
      stratum: stratumKey,
      seq: z.number().int().min(0),
      number: z.string().min(1).max(32),
      leaf: hex32,
      actor: id.nullable(),
      token,
    })
    .refine(userOrToken, userOrTokenMessage),
  /** Emergency unblinding of one participant by an investigator, with the reason as its salted hash. */
  "randomization.emergency_unblinded": z.strictObject({
    v: z.literal(1),
    salt,
    unblinding: id,
    allocation: id,
    subject: code,
    reasonHash: textHash,
    actor: id,
  }),
  /**
   * The study database locked (with the study-wide `lock.set` of `lock`): the analysis data set exported at lock,
   * by its SHA-256 and size, and how many record versions it holds.
   */
  "database.locked": z
    .strictObject({
      v: z.literal(1),
      salt,
      databaseLock: id,
      lock: id,
      analysisSha256: hex32,
      analysisBytes: z.number().int().positive(),
      records: z.number().int().min(0),
      actor: id.nullable(),
      token,
    })
    .refine(userOrToken, userOrTokenMessage),
  /** The study unblinded (the whole randomization list revealed) while the database lock `databaseLock` holds. */
  "randomization.unblinded": z.strictObject({
    v: z.literal(1),
    salt,
    unblinding: id,
    list: id,
    databaseLock: id,
    /** How many allocations each stratum holds and how many emergency unblindings there were: a file missing one
     * of them is named by the verifier. */
    allocations: z.array(z.strictObject({ stratum: stratumKey, count: z.number().int().min(0) })).max(2000),
    emergencyUnblindings: z.number().int().min(0),
    actor: id,
  }),
  /**
   * A draft randomization list made (generated from a seed, or uploaded): sealed like a commitment (design hash with
   * the list's secret nonce, per stratum key, root and size), so every list drafted before the one committed is in
   * the log and a list chosen among several shows (issue 20 review).
   */
  "randomization.list_drafted": z
    .strictObject({
      v: z.literal(1),
      salt,
      list: id,
      source: z.enum(["generated", "uploaded"]),
      designHash: textHash,
      strata: z.array(z.strictObject({ key: stratumKey, root: hex32, size: z.number().int().min(1).max(100_000) })),
      actor: id.nullable(),
      token,
    })
    .refine(userOrToken, userOrTokenMessage)
    .refine((p) => p.strata.length >= 1 && p.strata.length <= 2000, {
      message: "a draft has 1 to 2000 strata",
      path: ["strata"],
    }),
  /** A draft randomization list discarded (it stays in the database, never committed). */
  "randomization.list_discarded": z
    .strictObject({ v: z.literal(1), salt, list: id, actor: id.nullable(), token })
    .refine(userOrToken, userOrTokenMessage),
  // ---- Issue 21: investigational product accountability (ADR 0056-0065) ----
  /**
   * A lot of investigational product registered by the depot: its number, dates, storage range, daily units (for
   * compliance) and the certificate of analysis by SHA-256. Its kit type only as `blindHash` (SHA-256 of the canonical
   * JSON of lot, kit type and the lot's secret nonce): two kit types cannot be guessed from it (ADR 0057).
   */
  "supply.lot_registered": z
    .strictObject({
      v: z.literal(1),
      salt,
      lot: id,
      lotNumber: code,
      productHash: textHash,
      blindHash: hex32,
      manufacturedOn: isoDate,
      expiresOn: isoDate,
      storageMinTenths: tenths,
      storageMaxTenths: tenths,
      dailyUnits: z.number().int().min(0).max(1000),
      coaSha256: hex32,
      coaBytes: z.number().int().positive(),
      coaNameHash: textHash,
      actor: id.nullable(),
      token,
    })
    .refine(userOrToken, userOrTokenMessage),
  /** A lot released for use by the sponsor. */
  "supply.lot_released": z.strictObject({ v: z.literal(1), salt, release: id, lot: id, actor: id }),
  /** A lot recalled by the sponsor: its kits blocked everywhere; how many kits, participants and sites it touched. */
  "supply.lot_recalled": z.strictObject({
    v: z.literal(1),
    salt,
    recall: id,
    lot: id,
    reasonHash: textHash,
    kitsBlocked: z.number().int().min(0),
    subjectsAffected: z.number().int().min(0),
    sitesNotified: z.number().int().min(0),
    actor: id,
  }),
  /**
   * A kit registered: its number (drawn at random, so it says nothing of lot or type), units, the SHA-256 of its label
   * token, and its lot and kit type only as `blindHash` (SHA-256 of the canonical JSON of kit, lot, kit type and the
   * kit's secret nonce; ADR 0057).
   */
  "supply.kit_registered": z
    .strictObject({
      v: z.literal(1),
      salt,
      kit: id,
      number: kitNumber,
      blindHash: hex32,
      units: z.number().int().min(1).max(10_000),
      labelTokenHash: hex32,
      actor: id.nullable(),
      token,
    })
    .refine(userOrToken, userOrTokenMessage),
  /** A shipment sent from a depot to a site, with the numbers of its kits. */
  "supply.shipment_sent": z
    .strictObject({
      v: z.literal(1),
      salt,
      shipment: id,
      number: code,
      depot: code,
      site: code,
      kits: z.array(kitNumber).min(1).max(2000),
      actor: id.nullable(),
      token,
    })
    .refine(userOrToken, userOrTokenMessage),
  /**
   * A shipment received at its site: the temperatures recorded in transit (tenths of a degree Celsius) and/or the
   * logger file's SHA-256, and whether it was an excursion (its kits quarantined until the sponsor decides).
   */
  "supply.shipment_received": z
    .strictObject({
      v: z.literal(1),
      salt,
      receipt: id,
      shipment: id,
      temperatureMinTenths: tenths.nullable(),
      temperatureMaxTenths: tenths.nullable(),
      loggerSha256: hex32.nullable(),
      /** The logger file's size and name (as its salted hash), with its SHA-256; all null without a file. */
      loggerBytes: z.number().int().positive().nullable(),
      loggerNameHash: textHash.nullable(),
      excursion: z.boolean(),
      actor: id.nullable(),
      token,
    })
    .refine(userOrToken, userOrTokenMessage),
  /** The sponsor's decision on a quarantined shipment's kits: released for use, or to be destroyed, with a reason. */
  "supply.quarantine_decided": z.strictObject({
    v: z.literal(1),
    salt,
    decision: id,
    shipment: id,
    outcome: z.enum(["release", "destroy"]),
    reasonHash: textHash,
    actor: id,
  }),
  /**
   * A kit assigned to a participant (by subject code) for a dispensing at a visit: drawn at random among the site's
   * dispensable kits of the allocated kit type not held by another open assignment (ADR 0059).
   */
  "supply.kit_assigned": z
    .strictObject({
      v: z.literal(1),
      salt,
      assignment: id,
      kit: id,
      number: kitNumber,
      subject: code,
      site: code,
      visit: code.nullable(),
      actor: id.nullable(),
      token,
    })
    .refine(userOrToken, userOrTokenMessage),
  /** A kit dispensed to a participant (by subject code) at a visit, by the participant's allocation. */
  "supply.kit_dispensed": z
    .strictObject({
      v: z.literal(1),
      salt,
      dispensing: id,
      kit: id,
      number: kitNumber,
      subject: code,
      site: code,
      visit: code.nullable(),
      actor: id.nullable(),
      token,
    })
    .refine(userOrToken, userOrTokenMessage),
  /** A dispensed kit returned: units returned of those dispensed, and compliance in percent (null: not computed). */
  "supply.kit_returned": z
    .strictObject({
      v: z.literal(1),
      salt,
      return: id,
      kit: id,
      number: kitNumber,
      subject: code,
      unitsReturned: z.number().int().min(0).max(10_000),
      unitsDispensed: z.number().int().min(1).max(10_000),
      compliancePercent: z.number().int().min(0).max(1000).nullable(),
      returnedOn: isoDate,
      actor: id.nullable(),
      token,
    })
    .refine(userOrToken, userOrTokenMessage),
  /** Kits destroyed at a site (or at the depot: site null), the method as its salted hash; a witness confirms. */
  "supply.destruction_recorded": z.strictObject({
    v: z.literal(1),
    salt,
    destruction: id,
    site: code.nullable(),
    kits: z.array(kitNumber).min(1).max(2000),
    methodHash: textHash,
    actor: id,
  }),
  /** A second person witnessed a destruction (never the one who recorded it). */
  "supply.destruction_witnessed": z.strictObject({
    v: z.literal(1),
    salt,
    witness: id,
    destruction: id,
    actor: id,
  }),
  /** The monitor's reconciliation of a site: kits expected on hand against counted, and the kits that differ. */
  "supply.reconciled": z.strictObject({
    v: z.literal(1),
    salt,
    reconciliation: id,
    site: code,
    expected: z.number().int().min(0),
    counted: z.number().int().min(0),
    missing: z.array(kitNumber).max(2000),
    unexpected: z.array(kitNumber).max(2000),
    actor: id,
  }),
  // ---- Issue 22: participant-controlled sharing (ADR 0066-0072) ----
  /**
   * A participant changed optional consent choices after signing (or staff recorded the change they were told):
   * the items changed, key -> agreed now. The choices in force are the signature's, then each change in order.
   */
  "consent.choices_changed": z
    .strictObject({
      v: z.literal(1),
      salt,
      change: id,
      subject: code,
      choices: z.record(z.string().regex(/^[a-z][a-z0-9_]{0,31}$/), z.boolean()),
      byParticipant: z.boolean(),
      actor: id.nullable(),
      token,
    })
    .refine(userOrToken, userOrTokenMessage),
  /**
   * An external researcher's data-use request: a purpose from the code list (HL7 v3 PurposeOfUse), the CRF fields
   * (FORM.field) and the period of data collection asked for; the institution and justification as salted hashes.
   */
  "data_use.requested": z.strictObject({
    v: z.literal(1),
    salt,
    request: id,
    purpose: z.string().regex(/^[A-Z]{2,16}$/),
    fields: z
      .array(z.string().regex(/^[A-Z0-9_.-]{1,64}\.[a-z][a-z0-9_]{0,63}$/))
      .min(1)
      .max(500),
    periodFrom: isoDate,
    periodTo: isoDate,
    institutionHash: textHash,
    justificationHash: textHash,
    actor: id,
  }),
  /** The data access committee's decision on a request, with its reason (salted hash) and how long a delivery lasts. */
  "data_use.decided": z.strictObject({
    v: z.literal(1),
    salt,
    decision: id,
    request: id,
    outcome: z.enum(["approved", "declined"]),
    reasonHash: textHash,
    /** Days a delivery can be downloaded after it is made (null when declined). */
    expiresInDays: z.number().int().min(1).max(365).nullable(),
    actor: id,
  }),
  /**
   * A delivery of an approved request: only its manifest's SHA-256 (no per-entry bundles, no subject codes, seqs or
   * leaf hashes, so two deliveries cannot be linked), how many participants it holds and why the others were left
   * out, and `membersHash`: SHA-256 of the salt, a newline and the included participants' ids sorted, one per line
   * (the integrity audit recomputes it from the delivery's rows).
   */
  "data_use.delivered": z.strictObject({
    v: z.literal(1),
    salt,
    delivery: id,
    request: id,
    purpose: z.string().regex(/^[A-Z]{2,16}$/),
    manifestSha256: hex32,
    participants: z.number().int().min(0),
    excluded: z.strictObject({
      declined: z.number().int().min(0),
      withdrawn: z.number().int().min(0),
      notAsked: z.number().int().min(0),
    }),
    membersHash: hex32,
    expiresAt: z.string().datetime(),
    actor: id,
  }),
} as const;

export type EntryKind = keyof typeof PAYLOAD_SCHEMAS;
export type Payload<K extends EntryKind = EntryKind> = z.infer<(typeof PAYLOAD_SCHEMAS)[K]>;
/**
 * The version written from now on, for kinds that have more than one (every other kind is at 1). Older versions
 * still parse, so entries written before keep verifying.
 */
export const CURRENT_VERSION = {
  "delegation.revoked": 2,
  "lock.set": 2,
  "lock.released": 2,
  "record.saved": 3,
  "query.opened": 3,
  "query.answered": 3,
  "query.closed": 2,
  "study.settings_changed": 3,
  "consent.withdrawn": 2,
  "participant.erased": 2,
  "study.registered": 2,
  "delegation.granted": 2,
  "consent_document.approved": 2,
  "audit.event": 2,
  "site.added": 2,
} as const satisfies Partial<Record<EntryKind, number>>;
type CurrentV<K extends EntryKind> = K extends keyof typeof CURRENT_VERSION ? (typeof CURRENT_VERSION)[K] : 1;
/** The version a new entry of `kind` is written in. */
export function currentVersion(kind: EntryKind): number {
  return (CURRENT_VERSION as Partial<Record<EntryKind, number>>)[kind] ?? 1;
}
/** The shape written now: the kind's current version. */
export type CurrentPayload<K extends EntryKind = EntryKind> = Extract<Payload<K>, { v: CurrentV<K> }>;
export const ENTRY_KINDS = Object.keys(PAYLOAD_SCHEMAS) as EntryKind[];

export function isEntryKind(kind: string): kind is EntryKind {
  return Object.hasOwn(PAYLOAD_SCHEMAS, kind);
}

/** Validate a payload against its kind's schema; returns the zod result. */
export function parsePayload(kind: string, payload: unknown) {
  if (!isEntryKind(kind)) return { success: false as const, error: `unknown entry kind ${JSON.stringify(kind)}` };
  const r = PAYLOAD_SCHEMAS[kind].safeParse(payload);
  return r.success
    ? { success: true as const, data: r.data }
    : {
        success: false as const,
        error: r.error.issues.map((i) => `${i.path.join(".") || "payload"}: ${i.message}`).join("; "),
      };
}
