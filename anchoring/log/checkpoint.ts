/**
 * C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys, and C2SP checkpoints
 * (c2sp.org/tlog-checkpoint): origin line, tree size, base64 root hash, then signature lines.
 */
import type { Crypto, Signer } from "./crypto.ts";
import { bytesEqual, concatBytes, fromBase64, toBase64, toHex, utf8 } from "./bytes.ts";

const ED25519_ALG = 0x01;
const SIG_PREFIX = "\u2014 "; // em dash + space

export class NoteError extends Error {
  constructor(
    readonly code: "NOTE_MALFORMED" | "CHECKPOINT_MALFORMED" | "VKEY_MALFORMED",
    message: string,
  ) {
    super(message);
    this.name = "NoteError";
  }
}

function validKeyName(name: string): boolean {
  return name.length > 0 && !/[\s+]/.test(name) && !name.includes("\u2014");
}

/** key ID = first 4 bytes of SHA-256(name || 0x0A || alg || public key). */
export function keyId(c: Crypto, name: string, publicKey: Uint8Array): Uint8Array {
  return c.sha256(concatBytes(utf8(name), new Uint8Array([0x0a, ED25519_ALG]), publicKey)).slice(0, 4);
}

/** The verifier key string: `<name>+<hex key id>+<base64(alg || public key)>`. */
export function vkeyString(c: Crypto, name: string, publicKey: Uint8Array): string {
  if (!validKeyName(name)) throw new NoteError("VKEY_MALFORMED", "key name must be non-empty, without spaces or +");
  return (
    `${name}+${toHex(keyId(c, name, publicKey))}+` +
    `${toBase64(concatBytes(new Uint8Array([ED25519_ALG]), publicKey))}`
  );
}

export interface VerifierKey {
  name: string;
  id: Uint8Array;
  publicKey: Uint8Array;
}

export function parseVkey(c: Crypto, vkey: string): VerifierKey {
  // name+hexid+base64key: the name has no '+', the id is hex, but the base64 key may itself contain '+'.
  const first = vkey.indexOf("+");
  const second = first < 0 ? -1 : vkey.indexOf("+", first + 1);
  if (first <= 0 || second < 0) throw new NoteError("VKEY_MALFORMED", "a vkey has three +-separated parts");
  const name = vkey.slice(0, first);
  const idHex = vkey.slice(first + 1, second);
  const keyB64 = vkey.slice(second + 1);
  if (!validKeyName(name) || !/^[0-9a-f]{8}$/.test(idHex))
    throw new NoteError("VKEY_MALFORMED", "bad vkey name or key id");
  let key: Uint8Array;
  try {
    key = fromBase64(keyB64);
  } catch {
    throw new NoteError("VKEY_MALFORMED", "vkey key is not base64");
  }
  if (key.length !== 33 || key[0] !== ED25519_ALG) throw new NoteError("VKEY_MALFORMED", "vkey is not an Ed25519 key");
  const publicKey = key.slice(1);
  const id = keyId(c, name, publicKey);
  if (toHex(id) !== idHex) throw new NoteError("VKEY_MALFORMED", "vkey key id does not match its name and key");
  return { name, id, publicKey };
}

export interface NoteSignature {
  name: string;
  id: Uint8Array;
  signature: Uint8Array;
}

export interface ParsedNote {
  /** The signed text: from the first line up to and including the newline that ends the body. */
  text: string;
  signatures: NoteSignature[];
}

/** Sign `text` (which must end with a newline) as a note. */
export function signNote(c: Crypto, text: string, name: string, signer: Signer): string {
  if (!text.endsWith("\n")) throw new NoteError("NOTE_MALFORMED", "note text must end with a newline");
  const sig = signer.sign(utf8(text));
  const line = `${SIG_PREFIX}${name} ${toBase64(concatBytes(keyId(c, name, signer.publicKey), sig))}\n`;
  return `${text}\n${line}`;
}

export function parseNote(note: string): ParsedNote {
  if (typeof note !== "string" || note.length > 1_000_000)
    throw new NoteError("NOTE_MALFORMED", "note is not a string of reasonable size");
  const split = note.lastIndexOf("\n\n");
  if (split < 0 || !note.endsWith("\n"))
    throw new NoteError("NOTE_MALFORMED", "note has no blank line before its signatures");
  const text = note.slice(0, split + 1);
  const sigLines = note.slice(split + 2, -1).split("\n");
  const signatures: NoteSignature[] = [];
  for (const line of sigLines) {
    if (!line.startsWith(SIG_PREFIX))
      throw new NoteError("NOTE_MALFORMED", "signature line does not start with an em dash");
    const rest = line.slice(SIG_PREFIX.length);
    const sp = rest.indexOf(" ");
    if (sp <= 0) throw new NoteError("NOTE_MALFORMED", "signature line has no key name");
    const name = rest.slice(0, sp);
    let blob: Uint8Array;
    try {
      blob = fromBase64(rest.slice(sp + 1));
    } catch {
      throw new NoteError("NOTE_MALFORMED", "signature is not base64");
    }
    if (blob.length < 5) throw new NoteError("NOTE_MALFORMED", "signature too short");
    signatures.push({ name, id: blob.slice(0, 4), signature: blob.slice(4) });
  }
  if (signatures.length === 0) throw new NoteError("NOTE_MALFORMED", "note carries no signature");
  return { text, signatures };
}

/** True when one of the note's signatures is a valid Ed25519 signature by `key`. */
export function noteSignedBy(c: Crypto, note: ParsedNote, key: VerifierKey): boolean {
  const msg = utf8(note.text);
  return note.signatures.some(
    (s) => s.name === key.name && bytesEqual(s.id, key.id) && c.ed25519Verify(key.publicKey, msg, s.signature),
  );
}

// ---- checkpoints ----

export interface Checkpoint {
  origin: string;
  treeSize: number;
  root: Uint8Array;
}

export function checkpointText(cp: Checkpoint): string {
  return `${cp.origin}\n${cp.treeSize}\n${toBase64(cp.root)}\n`;
}

/** Parse the body of a checkpoint note (the signed text). */
export function parseCheckpoint(text: string): Checkpoint {
  const lines = text.split("\n");
  if (lines.length < 4 || lines[lines.length - 1] !== "")
    throw new NoteError("CHECKPOINT_MALFORMED", "a checkpoint has origin, size and root lines");
  const [origin, sizeLine, rootLine] = lines;
  if (!origin) throw new NoteError("CHECKPOINT_MALFORMED", "empty origin line");
  if (!/^(0|[1-9][0-9]{0,15})$/.test(sizeLine) || !Number.isSafeInteger(Number(sizeLine)))
    throw new NoteError("CHECKPOINT_MALFORMED", "tree size is not a decimal integer");
  let root: Uint8Array;
  try {
    root = fromBase64(rootLine);
  } catch {
    throw new NoteError("CHECKPOINT_MALFORMED", "root is not base64");
  }
  if (root.length !== 32) throw new NoteError("CHECKPOINT_MALFORMED", "root is not 32 bytes");
  return { origin, treeSize: Number(sizeLine), root };
}

/** The checkpoint hash anchored everywhere: SHA-256 of the signed text. */
export function checkpointHash(c: Crypto, note: string): Uint8Array {
  return c.sha256(utf8(parseNote(note).text));
}
