/**
 * Evidence package: generated PDFs (certified copies) are not deterministic, so each one's SHA-256 is sealed when
 * it is generated (a `document.generated` entry, ADR 0019) and the package carries that entry's proof bundle.
 * Each PDF in the package must have such a verified entry with its SHA-256 (a certified copy: an entry of the
 * subject its file name names); a PDF without one is refused. A certified copy must be the subject's latest sealed
 * one (by seq): an older genuine copy, made before a correction or withdrawal, is DOCUMENT_NOT_LATEST.
 */
import type { Crypto } from "../log/crypto.ts";
import { toHex } from "../log/bytes.ts";
import type { Bad, PackageFiles, Sealed } from "./cross-check-sealed.ts";

/** Returns the number of PDFs checked. */
export function crossCheckDocuments(c: Crypto, files: PackageFiles, sealed: Sealed, bad: Bad): number {
  const generated = [...sealed.values()].filter((e) => e.kind === "document.generated");
  let checked = 0;
  for (const path of files.keys()) {
    if (!path.toLowerCase().endsWith(".pdf")) continue;
    const data = files.get(path) ?? new Uint8Array(0);
    checked++;
    const sha = toHex(c.sha256(data));
    // A certified copy must be sealed as that subject's copy; another PDF by its SHA-256 alone.
    const copy = /^certified-copies\/(.+)\.pdf$/.exec(path);
    const same = generated
      .filter((e) => !copy || (e.payload.document === "certified_copy" && e.payload.subject === copy[1]))
      .sort((a, b) => b.seq - a.seq);
    const match = same.find((e) => e.payload.sha256 === sha);
    // A certified copy must be the subject's latest: an older genuine one predates a correction or withdrawal.
    if (match && (!copy || match === same[0])) continue;
    if (match)
      bad(
        path,
        "DOCUMENT_NOT_LATEST",
        `an older certified copy: its SHA-256 was sealed at seq ${match.seq}; subject ${copy![1]}'s latest ` +
          `certified copy is seq ${same[0].seq} (SHA-256 ${String(same[0].payload.sha256).slice(0, 16)}…)`,
      );
    else if (copy && same.length)
      bad(
        path,
        "DOCUMENT_HASH_MISMATCH",
        `its SHA-256 is ${sha.slice(0, 16)}…, the sealed document.generated entry (seq ${same[0].seq}) of ` +
          `subject ${copy![1]} says ${String(same[0].payload.sha256).slice(0, 16)}…`,
      );
    else
      bad(
        path,
        "DOCUMENT_UNSEALED",
        "no document.generated entry with a verified bundle in the package seals this PDF's SHA-256",
      );
  }
  return checked;
}
