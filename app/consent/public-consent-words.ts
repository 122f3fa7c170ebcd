/**
 * Words of the public consent page (routes/consent/c.$token.tsx): what a withdrawal withdrew, and exactly what the
 * consent's public proof bundle (routes/consent/c_.$token.proof[.json].ts) carries. Each line of BUNDLE_CARRIES
 * names the bundle fields it explains; public-consent-words.test.ts checks that together they are every field of a
 * `consent.signed` bundle, so the list stays exact when the payload or the bundle format changes.
 */

/** An optional item's key in words (`future_research` -> "future research"). */
export const optionWords = (key: string) => key.replace(/_/g, " ");

/** What a partial withdrawal withdrew, in words: the study treatment (when follow-up continues), optional items. */
export function partialWithdrawalWords(w: { followUp: boolean; optionalWithdrawn: string[] }): string {
  const parts = [
    ...(w.followUp ? ["the study treatment (follow-up visits continue)"] : []),
    ...w.optionalWithdrawn.map(optionWords),
  ];
  return parts.join(", ");
}

/** One line of the list, and the bundle fields (JSON paths, `[]` for each element of an array) it explains. */
export interface BundleLine {
  words: string;
  fields: string[];
}

export const BUNDLE_CARRIES: BundleLine[] = [
  {
    words:
      "The subject code the study team gave the participant at enrolment (the site's code and a number, such as " +
      "S1-001). It names no one, but the study team can link it to the person.",
    fields: ["payload.subject"],
  },
  {
    words: "The document's code and version, and its SHA-256: the fingerprint of the exact text that was signed.",
    fields: ["payload.document", "payload.version", "payload.documentSha256"],
  },
  {
    words:
      "The signer's role (participant, legal representative or parent; never a name), the sentence the signature " +
      "means, and whether it was given on a device where study staff were signed in.",
    fields: ["payload.signerRole", "payload.meaning", "payload.fromStaffDevice"],
  },
  {
    words:
      "The answers to the document's optional items, in clear (for example future_research: yes), as given when " +
      "signing. A later withdrawal does not change them here: it is a separate entry in the study's log.",
    fields: ["payload.options"],
  },
  {
    words:
      "A keyed hash (HMAC-SHA-256) of the name the signer typed, under a key that only the study's server holds: " +
      "without that key it cannot be turned back into the name or checked against a guess. Erasing the " +
      "participant's personal data destroys the key.",
    fields: ["payload.nameHmac"],
  },
  {
    words:
      "A random number identifying the signature, a random salt (so that the entry's hash cannot be guessed), and " +
      "two empty fields: the signature this one would countersign and the staff account that would have written it " +
      "(the signer used their own link).",
    fields: ["payload.signature", "payload.salt", "payload.countersigns", "payload.actor", "payload.v"],
  },
  {
    words:
      "The study's code, the name of its log, the kind of entry (consent.signed), the entry's position in the log, " +
      "the time (UTC) the log recorded it, and the SHA-256 of the entry.",
    fields: [
      "format",
      "envelope.v",
      "envelope.log",
      "envelope.seq",
      "envelope.studySeq",
      "envelope.at",
      "envelope.study",
      "envelope.kind",
      "envelope.payloadHash",
    ],
  },
  {
    words:
      "The proof: the hashes that link the entry to its sealed batch (the batch's number, first position, size, " +
      "root hash and sealing time), the log's signed checkpoints, and the receipts of the ledgers that anchored " +
      "them (a local ledger record, a blockchain transaction or a time-stamp token).",
    fields: [
      "batch.header.v",
      "batch.header.log",
      "batch.header.batch",
      "batch.header.first",
      "batch.header.size",
      "batch.header.root",
      "batch.header.sealedAt",
      "batch.leafIndex",
      "batch.inclusion",
      "checkpoints[].note",
      "checkpoints[].log.index",
      "checkpoints[].log.treeSize",
      "checkpoints[].log.inclusion",
      "checkpoints[].anchors",
    ],
  },
];

/** What the bundle does not carry. */
export const BUNDLE_LACKS =
  "It carries no name, contact details, date of birth or other personal data the study team keeps, no " +
  "countersignature (each is a separate entry), and neither the withdrawal nor its reason: it proves the " +
  "signature, not what happened to the consent later.";
