/**
 * Reading an evidence package (ZIP) within bounded memory (issue 16 item 6: a 2.1 MB package whose odm.xml
 * inflated to 2 GiB made `verify-package` use 2.28 GB). The central directory is parsed here (it is small: 46 bytes
 * and the name per entry), absurd archives are refused before anything is inflated, manifest.json is inflated first
 * under a small cap, and each file the manifest lists is inflated with its declared size as the limit: inflation
 * stops as soon as the output passes it (node:zlib's maxOutputLength, which inflates chunk by chunk). The file is
 * read by position, never whole: memory is its central directory plus the sizes its manifest declares, and the
 * declared total is capped (1 GiB by default).
 *
 * Outcomes (bin/verify-package-command.ts): a file that inflates past the size the manifest declares is a problem
 * of the package, `FILE_TOO_LARGE` naming it (exit 1, invalid: the file is not the one the manifest describes);
 * an archive beyond this verifier's limits (`ARCHIVE_TOO_LARGE`: too many entries, a manifest or declared total
 * over the cap) or broken (`ARCHIVE_INVALID`) cannot be checked (exit 2, unreadable). Entries the manifest does
 * not list are not inflated: they are returned empty, and the verifier reports them as FILE_UNLISTED.
 */
import { fstatSync, readSync } from "node:fs";
import { inflateRawSync } from "node:zlib";
import type { PackageFiles, PackageProblem } from "../../anchoring/verifier/verify-package.ts";

export const PACKAGE_LIMITS = {
  /**
   * The sum of the sizes the manifest declares, and the largest package file accepted. Files are inflated one at
   * a time when the verifier reads them, so this bounds time, not memory (a 1M-entry package is ~1.3 GB).
   */
  maxTotalBytes: 64 * 1024 * 1024 * 1024,
  /** The largest one file may be (it is held in memory while it is checked: odm.xml, fhir.json, a CSV). */
  maxFileBytes: 1024 * 1024 * 1024,
  /** Entries in the archive (a package has one per file; a study of 1M entries has about 1M proof bundles). */
  maxEntries: 4_000_000,
  /** manifest.json: at most this per entry of the archive, plus a base. */
  manifestBytesPerEntry: 400,
  manifestBaseBytes: 64 * 1024,
  /** trust-policy.json when there is no usable manifest (the CLI's --pin check still reads it). */
  policyBytes: 1024 * 1024,
};
export type PackageLimits = typeof PACKAGE_LIMITS;

/** A package this verifier cannot read: broken, or beyond its limits. `code` is stable. */
export class PackageUnreadable extends Error {
  constructor(
    readonly code: "ARCHIVE_INVALID" | "ARCHIVE_TOO_LARGE",
    message: string,
  ) {
    super(message);
  }
}

/** The package file, read by position (the CLI: a file descriptor; tests: bytes in memory). */
export interface PackageSource {
  size: number;
  read(position: number, length: number): Uint8Array;
}

const bytesSource = (b: Uint8Array): PackageSource => ({
  size: b.length,
  read: (pos, len) => b.subarray(pos, pos + len),
});

/** A file read by position through its descriptor (close it after reading). */
export function fileSource(fd: number): PackageSource {
  return {
    size: fstatSync(fd).size,
    read(pos, len) {
      const out = new Uint8Array(len);
      let got = 0;
      while (got < len) {
        const n = readSync(fd, out, got, len - got, pos + got);
        if (n === 0) break;
        got += n;
      }
      return out.subarray(0, got);
    },
  };
}

interface Entry {
  name: string;
  method: number;
  compressed: number;
  offset: number;
}

const u16 = (b: Uint8Array, i: number) => b[i] | (b[i + 1] << 8);
const u32 = (b: Uint8Array, i: number) => (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;

/** The entries of the central directory (walked by its size, so more than 65,535 entries read too). */
function centralDirectory(src: PackageSource, limits: PackageLimits): Entry[] {
  const broken = (m: string) => new PackageUnreadable("ARCHIVE_INVALID", `not a readable ZIP archive: ${m}`);
  const tailStart = Math.max(0, src.size - 22 - 65535);
  const tail = src.read(tailStart, src.size - tailStart);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--)
    if (u32(tail, i) === 0x06054b50) {
      eocd = i;
      break;
    }
  if (eocd < 0) throw broken("no end of central directory");
  const cdSize = u32(tail, eocd + 12);
  const cdOffset = u32(tail, eocd + 16);
  if (cdSize === 0xffffffff || cdOffset === 0xffffffff) throw broken("ZIP64 archives are not supported");
  if (cdOffset + cdSize > tailStart + eocd) throw broken("the central directory lies outside the file");
  // Only the central directory is read (46 bytes and the name per entry), never the whole file.
  const zip = src.read(cdOffset, cdSize);
  const entries: Entry[] = [];
  const names = new Set<string>();
  const dec = new TextDecoder("utf-8", { fatal: false });
  for (let p = 0; p < cdSize; ) {
    if (p + 46 > cdSize || u32(zip, p) !== 0x02014b50) throw broken("a central directory entry is cut");
    if (entries.length >= limits.maxEntries)
      throw new PackageUnreadable("ARCHIVE_TOO_LARGE", `more than ${limits.maxEntries} entries`);
    const flags = u16(zip, p + 8);
    const method = u16(zip, p + 10);
    const compressed = u32(zip, p + 20);
    const n = u16(zip, p + 28);
    const extra = u16(zip, p + 30);
    const comment = u16(zip, p + 32);
    const offset = u32(zip, p + 42);
    const name = dec.decode(zip.subarray(p + 46, p + 46 + n));
    p += 46 + n + extra + comment;
    if (p > cdSize) throw broken("a central directory entry is cut");
    if (name.endsWith("/")) continue;
    if (flags & 1) throw broken(`${name} is encrypted`);
    if (method !== 0 && method !== 8) throw broken(`${name} uses compression method ${method}`);
    if (compressed === 0xffffffff || offset === 0xffffffff) throw broken("ZIP64 archives are not supported");
    if (names.has(name)) throw broken(`${name} appears twice`);
    names.add(name);
    entries.push({ name, method, compressed, offset });
  }
  return entries;
}

/** An entry's bytes, inflating no further than `limit` bytes of output; null when it would be longer. */
function inflateEntry(src: PackageSource, e: Entry, limit: number): Uint8Array | null {
  const h = e.offset;
  const local = h + 30 <= src.size ? src.read(h, 30) : new Uint8Array(0);
  if (local.length < 30 || u32(local, 0) !== 0x04034b50)
    throw new PackageUnreadable("ARCHIVE_INVALID", `not a readable ZIP archive: ${e.name} has no local header`);
  const start = h + 30 + u16(local, 26) + u16(local, 28);
  if (start + e.compressed > src.size)
    throw new PackageUnreadable("ARCHIVE_INVALID", `not a readable ZIP archive: ${e.name} is cut`);
  const data = src.read(start, e.compressed);
  if (e.method === 0) return data.length > limit ? null : data;
  try {
    // maxOutputLength stops inflation (chunk by chunk) as soon as the output passes limit + 1 bytes. Chunks no
    // larger than that: the result is a view of its chunk, and a 16 KB default chunk per small file (a proof
    // bundle is ~1.2 KB) held 13 KB per entry.
    const out = inflateRawSync(data, {
      maxOutputLength: limit + 1,
      chunkSize: Math.max(64, Math.min(limit + 1, 65536)),
    });
    return out.length > limit ? null : new Uint8Array(out.buffer, out.byteOffset, out.length);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE") return null;
    throw new PackageUnreadable("ARCHIVE_INVALID", `not a readable ZIP archive: ${e.name}: ${(err as Error).message}`);
  }
}

/**
 * The package's files, each inflated no further than the manifest declares, and the problems found doing so
 * (FILE_TOO_LARGE). Throws PackageUnreadable for an archive that cannot be checked within `limits`.
 */
export function readPackageBounded(
  zip: Uint8Array | PackageSource,
  limits: PackageLimits = PACKAGE_LIMITS,
): { files: PackageFiles; problems: PackageProblem[] } {
  const src = zip instanceof Uint8Array ? bytesSource(zip) : zip;
  if (src.size > limits.maxTotalBytes)
    throw new PackageUnreadable("ARCHIVE_TOO_LARGE", `the file is larger than ${limits.maxTotalBytes} bytes`);
  const entries = centralDirectory(src, limits);
  const files = new LazyFiles(src);
  const problems: PackageProblem[] = [];
  const mfEntry = entries.find((e) => e.name === "manifest.json");
  const mfCap = limits.manifestBaseBytes + limits.manifestBytesPerEntry * entries.length;
  let declared = new Map<string, number>();
  if (mfEntry) {
    const mf = inflateEntry(src, mfEntry, mfCap);
    if (!mf) throw new PackageUnreadable("ARCHIVE_TOO_LARGE", `manifest.json is larger than ${mfCap} bytes`);
    files.keep("manifest.json", mf);
    declared = declaredSizes(mf);
  }
  let total = 0;
  for (const [name, n] of declared) {
    if (n > limits.maxFileBytes)
      throw new PackageUnreadable(
        "ARCHIVE_TOO_LARGE",
        `its manifest declares ${n} bytes for ${name}, more than the limit of ${limits.maxFileBytes} for one file`,
      );
    total += n;
  }
  if (total > limits.maxTotalBytes)
    throw new PackageUnreadable(
      "ARCHIVE_TOO_LARGE",
      `its manifest declares ${total} bytes of files, more than the limit of ${limits.maxTotalBytes}`,
    );
  for (const e of entries) {
    if (e.name === "manifest.json") continue;
    let limit = declared.get(e.name);
    if (limit === undefined && declared.size === 0 && e.name === "trust-policy.json") limit = limits.policyBytes;
    if (limit === undefined) {
      files.keep(e.name, new Uint8Array(0)); // unlisted: the verifier reports it, its content is never read
      continue;
    }
    // Checked here (inflated no further than its limit, then dropped), inflated again when the verifier asks.
    if (inflateEntry(src, e, limit)) files.lazy(e, limit);
    else
      problems.push({
        file: e.name,
        code: "FILE_TOO_LARGE",
        message: `it inflates to more than the ${limit} bytes the manifest declares (inflation stopped there)`,
      });
  }
  return { files, problems };
}

/**
 * The files of a package, each inflated when asked for and not kept (a proof bundle is read twice: once for the
 * manifest's hash, once to verify it), so a package is never held inflated as a whole: memory grows with what the
 * verifier keeps per entry, not with the package's inflated size.
 */
class LazyFiles implements PackageFiles {
  private readonly entries = new Map<string, { entry: Entry; limit: number } | Uint8Array>();
  constructor(private readonly src: PackageSource) {}
  keep(name: string, bytes: Uint8Array) {
    this.entries.set(name, bytes);
  }
  lazy(entry: Entry, limit: number) {
    this.entries.set(entry.name, { entry, limit });
  }
  has(name: string) {
    return this.entries.has(name);
  }
  keys() {
    return this.entries.keys();
  }
  get(name: string): Uint8Array | undefined {
    const e = this.entries.get(name);
    if (e === undefined || e instanceof Uint8Array) return e;
    // It inflated within its limit when the package was opened; the file is read by position again.
    return inflateEntry(this.src, e.entry, e.limit) ?? undefined;
  }
}

/** path -> bytes of a manifest's files; empty when it is not a usable manifest (the verifier reports that). */
function declaredSizes(mf: Uint8Array): Map<string, number> {
  const out = new Map<string, number>();
  try {
    const m = JSON.parse(new TextDecoder().decode(mf)) as { files?: { path?: unknown; bytes?: unknown }[] };
    if (!Array.isArray(m.files)) return out;
    for (const f of m.files)
      if (typeof f?.path === "string" && Number.isSafeInteger(f.bytes) && (f.bytes as number) >= 0)
        out.set(f.path, f.bytes as number);
  } catch {
    // not JSON: verifyEvidence reports MANIFEST_INVALID
  }
  return out;
}
