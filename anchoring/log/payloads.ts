/**
 * Ledger payload schemas, one per entry kind, versioned (`v`) and strict (unknown keys rejected).
 * Every payload carries `salt` (16 random bytes, base64url) so that low-entropy content cannot be
 * guessed from its hash. Personal data never appears here: where a payload must be bound to a person,
 * it carries an HMAC under that subject's server-side key (destroying the key is the erasure procedure).
 */
import { z } from "zod";

const hex32 = z.string().regex(/^[0-9a-f]{64}$/, "expected 32 bytes as lowercase hex");
const salt = z.string().regex(/^[A-Za-z0-9_-]{22}$/, "expected 16 bytes as base64url");
const id = z.string().uuid();
const code = z.string().min(1).max(64);
const isoDate = z.string().regex(/^\d{4}-\d{2}-\d{2}$/);
/**
 * The study API token a write was made with (its id and its name at the time; neither is personal data). Optional,
 * so that payloads issued before it existed still parse; a payload names a user (`actor`) or a token, never both.
 */
const token = z.strictObject({ id, name: z.string().min(1).max(200) }).optional();
const userOrToken = (p: { actor: string | null; token?: unknown }) => p.actor === null || p.token === undefined;
const userOrTokenMessage = { message: "a payload names a user (actor) or a token, not both", path: ["token"] };

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

export const PAYLOAD_SCHEMAS = {
  "study.registered": z.strictObject({
    v: z.literal(1),
    salt,
    study: code,
    title: z.string().max(500),
    actor: id.nullable(),
  }),
  "site.added": z.strictObject({ v: z.literal(1), salt, site: code, actor: id.nullable() }),
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
  "delegation.granted": z.strictObject({
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
  "delegation.revoked": z.strictObject({
    v: z.literal(1),
    salt,
    delegation: id,
    reason: z.string().min(1).max(2000),
    actor: id.nullable(),
  }),
  /** A data manager locks (or an authorized role unlocks) a record, a subject's casebook or the whole study. */
  "lock.set": z.strictObject({
    v: z.literal(1),
    salt,
    lock: id,
    scope: z.enum(["record", "subject", "study"]),
    target: z.string().min(1).max(64),
    reason: z.string().min(1).max(2000),
    actor: id.nullable(),
  }),
  "lock.released": z.strictObject({
    v: z.literal(1),
    salt,
    lock: id,
    reason: z.string().min(1).max(2000),
    actor: id.nullable(),
  }),
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
  "query.opened": z.strictObject({
    v: z.literal(1),
    salt,
    query: id,
    record: id,
    field: z.string().min(1).max(64),
    textSha256: hex32,
    actor: id.nullable(),
  }),
  "query.answered": z.strictObject({ v: z.literal(1), salt, query: id, textSha256: hex32, actor: id.nullable() }),
  "query.closed": z.strictObject({ v: z.literal(1), salt, query: id, actor: id.nullable() }),
  "form.approved": z.strictObject({
    v: z.literal(1),
    salt,
    form: code,
    version: z.number().int().positive(),
    definitionSha256: hex32,
    actor: id.nullable(),
  }),
  "consent_document.approved": z.strictObject({
    v: z.literal(1),
    salt,
    document: code,
    version: z.string().min(1).max(32),
    bodySha256: hex32,
    irbName: z.string().min(1).max(200),
    irbApprovedOn: isoDate,
    actor: id.nullable(),
  }),
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
   * ledger.
   */
  "consent.withdrawn": z.strictObject({
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
  /** The erasure procedure: a subject's personal data and key were destroyed (crypto-shredding); trial data stay. */
  "participant.erased": z.strictObject({
    v: z.literal(1),
    salt,
    subject: code,
    reasonSha256: hex32,
    actor: id.nullable(),
  }),
  "record.saved": z
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
} as const;

export type EntryKind = keyof typeof PAYLOAD_SCHEMAS;
export type Payload<K extends EntryKind = EntryKind> = z.infer<(typeof PAYLOAD_SCHEMAS)[K]>;
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
