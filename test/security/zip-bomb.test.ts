/**
 * Issue 16 item 6: a 2.1 MB evidence package whose odm.xml inflates to 2 GiB made `verify-package` use 2.28 GB
 * and 29 s before it reported FILE_ALTERED. The package is now read within bounded memory
 * (app/exports/package-reader.server.ts): each listed file inflates no further than the size its manifest declares
 * (FILE_TOO_LARGE, exit 1), unlisted entries are not inflated (FILE_UNLISTED), and a manifest declaring more than
 * the total cap, or a manifest that is itself a bomb, is unreadable (ARCHIVE_TOO_LARGE, exit 2). The CLI runs as a
 * child process whose RSS is sampled from /proc; the figures are printed. Peak must stay under 200 MB.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { constants, crc32, deflateRawSync } from "node:zlib";
import { beforeAll, describe, expect, it } from "vitest";
import { POLICY } from "../vectors/bundles/generate.ts";
import { ROOT } from "../helpers/portal.ts";

const MB = 1024 * 1024;
const GiB = 1024 * MB;
const dir = mkdtempSync(path.join(tmpdir(), "ts-zip-bomb-"));
const enc = (s: string) => new TextEncoder().encode(s);
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** A ZIP entry, already compressed (method 8) or stored (method 0). */
type Entry = { name: string; method: 0 | 8; data: Uint8Array[]; crc: number; size: number };

const deflated = (name: string, data: Uint8Array): Entry => ({
  name,
  method: 8,
  data: [deflateRawSync(data)],
  crc: crc32(data),
  size: data.length,
});

/**
 * 2 GiB of "a" as one DEFLATE stream of ~2 MB: a 1 MiB chunk compressed alone and sync-flushed (non-final blocks
 * that refer only to themselves) repeated 2048 times, then an empty final block. Nothing 2 GiB large is held.
 */
function bomb(name: string): Entry {
  const chunk = Buffer.alloc(MB, "a");
  const block = deflateRawSync(chunk, { level: 9, finishFlush: constants.Z_SYNC_FLUSH });
  const data: Uint8Array[] = [];
  let crc = 0;
  for (let i = 0; i < 2048; i++) {
    data.push(block);
    crc = crc32(chunk, crc);
  }
  data.push(deflateRawSync(Buffer.alloc(0)));
  return { name, method: 8, data, crc, size: 2 * GiB };
}

/** SHA-256 of the bomb's 2 GiB, streamed (for a manifest recomputed to match it). */
function bombSha(): string {
  const h = createHash("sha256");
  const chunk = Buffer.alloc(MB, "a");
  for (let i = 0; i < 2048; i++) h.update(chunk);
  return h.digest("hex");
}

/** A ZIP file of the entries (local headers, central directory, end record). */
function zip(entries: Entry[]): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name);
    const csize = e.data.reduce((n, d) => n + d.length, 0);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(e.method, 8);
    local.writeUInt32LE(e.crc >>> 0, 14);
    local.writeUInt32LE(csize, 18);
    local.writeUInt32LE(e.size >>> 0, 22);
    local.writeUInt16LE(name.length, 26);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(20, 4);
    cd.writeUInt16LE(20, 6);
    cd.writeUInt16LE(e.method, 10);
    cd.writeUInt32LE(e.crc >>> 0, 16);
    cd.writeUInt32LE(csize, 20);
    cd.writeUInt32LE(e.size >>> 0, 24);
    cd.writeUInt16LE(name.length, 28);
    cd.writeUInt32LE(offset, 42);
    central.push(cd, name);
    parts.push(local, name, ...e.data.map((d) => Buffer.from(d.buffer, d.byteOffset, d.length)));
    offset += 30 + name.length + csize;
  }
  const cdBuf = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cdBuf.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, cdBuf, end]);
}

const policy = enc(`${JSON.stringify(POLICY, null, 2)}\n`);
const pin = sha(policy);
const odm = enc(`<?xml version="1.0" encoding="UTF-8"?>\n<ODM FileOID="bomb"></ODM>\n`);
const manifest = (files: { path: string; sha256: string; bytes: number }[]) =>
  enc(
    JSON.stringify({
      format: "trialseal-evidence/v1",
      study: "VEC-1",
      origin: POLICY.origin,
      createdAt: "2026-01-01T00:00:00.000Z",
      logSize: 5,
      files,
    }),
  );
const policyFile = { path: "trust-policy.json", sha256: pin, bytes: policy.length };

/** Run `trialseal verify-package FILE --pin` as a child, sampling its RSS (VmRSS) until it exits. */
function verifyPackage(file: string) {
  return new Promise<{ status: number | null; stdout: string; stderr: string; peak: number }>((resolve) => {
    const child = spawn(
      process.execPath,
      [path.join(ROOT, "bin", "trialseal.js"), "verify-package", file, "--pin", pin],
      {
        env: { ...process.env, DATA_DIR: dir },
      },
    );
    let stdout = "";
    let stderr = "";
    let peak = 0;
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const sample = () => {
      try {
        const kb = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"))?.[1];
        if (kb) peak = Math.max(peak, Number(kb) * 1024);
      } catch {
        // exited between samples
      }
    };
    const sampler = setInterval(sample, 10);
    child.on("exit", (status) => {
      clearInterval(sampler);
      resolve({ status, stdout, stderr, peak });
    });
  });
}

const write = (name: string, entries: Entry[]) => {
  const file = path.join(dir, name);
  writeFileSync(file, zip(entries));
  return file;
};

let idle = 0;
beforeAll(async () => {
  // Baseline: the same CLI on a harmless package of the same shape (its log checks fail: it has no log).
  const file = write("harmless.zip", [
    deflated("manifest.json", manifest([policyFile, { path: "odm.xml", sha256: sha(odm), bytes: odm.length }])),
    deflated("trust-policy.json", policy),
    deflated("odm.xml", odm),
  ]);
  const r = await verifyPackage(file);
  expect(r.stderr).not.toMatch(/cannot read/);
  idle = r.peak;
});

const report = (what: string, peak: number) =>
  console.log(
    `item 6: verify-package ${what}: peak RSS ${(peak / MB).toFixed(0)} MB ` +
      `(harmless package of the same shape: ${(idle / MB).toFixed(0)} MB)`,
  );

describe("verify-package reads a package within bounded memory (item 6)", () => {
  it("a 2 MB package with a 2 GiB odm.xml: FILE_TOO_LARGE naming odm.xml, exit 1, peak < 200 MB", async () => {
    const file = write("bomb.zip", [
      deflated("manifest.json", manifest([policyFile, { path: "odm.xml", sha256: sha(odm), bytes: odm.length }])),
      deflated("trust-policy.json", policy),
      bomb("odm.xml"),
    ]);
    const r = await verifyPackage(file);
    report(`of a ${(readFileSync(file).length / MB).toFixed(1)} MB package with a 2 GiB odm.xml`, r.peak);
    expect(r.stderr).toMatch(/invalid: odm\.xml \[FILE_TOO_LARGE\]: it inflates to more than the \d+ bytes/);
    expect(r.stdout).toMatch(/FAIL odm\.xml \[FILE_TOO_LARGE\]/);
    expect(r.status).toBe(1);
    expect(r.peak).toBeLessThan(200 * MB);
    expect(r.peak - idle).toBeLessThan(50 * MB); // over the same CLI on a harmless package
  });

  it("the bomb as an entry the manifest does not list: FILE_UNLISTED, never inflated", async () => {
    const file = write("unlisted.zip", [
      deflated("manifest.json", manifest([policyFile, { path: "odm.xml", sha256: sha(odm), bytes: odm.length }])),
      deflated("trust-policy.json", policy),
      deflated("odm.xml", odm),
      bomb("extra/filler.xml"),
    ]);
    const r = await verifyPackage(file);
    report("with an unlisted 2 GiB entry", r.peak);
    expect(r.stdout).toMatch(/FAIL extra\/filler\.xml \[FILE_UNLISTED\]/);
    expect(r.status).toBe(1);
    expect(r.peak).toBeLessThan(200 * MB);
  });

  it("a manifest declaring the 2 GiB: over the 1 GiB cap for one file, ARCHIVE_TOO_LARGE, exit 2", async () => {
    const file = write("declared.zip", [
      deflated("manifest.json", manifest([policyFile, { path: "odm.xml", sha256: bombSha(), bytes: 2 * GiB }])),
      deflated("trust-policy.json", policy),
      bomb("odm.xml"),
    ]);
    const r = await verifyPackage(file);
    report("with a 2 GiB odm.xml its manifest declares", r.peak);
    expect(r.stderr).toMatch(
      /cannot read .*declared\.zip \[ARCHIVE_TOO_LARGE\]: its manifest declares 2147483\d+ bytes/,
    );
    expect(r.status).toBe(2);
    expect(r.peak).toBeLessThan(200 * MB);
  });

  it("a package cut short, or not a ZIP at all: ARCHIVE_INVALID, exit 2, one line", async () => {
    const whole = zip([
      deflated("manifest.json", manifest([policyFile, { path: "odm.xml", sha256: sha(odm), bytes: odm.length }])),
      deflated("trust-policy.json", policy),
      bomb("odm.xml"),
    ]);
    const cut = path.join(dir, "cut.zip");
    writeFileSync(cut, whole.subarray(0, whole.length - 30));
    const junk = path.join(dir, "junk.zip");
    writeFileSync(junk, "PK\u0005\u0006 but no archive");
    for (const file of [cut, junk]) {
      const r = await verifyPackage(file);
      expect(r.stderr).toMatch(/^trialseal: cannot read .* \[ARCHIVE_INVALID\]: not a readable ZIP archive: [^\n]+\n$/);
      expect(r.status).toBe(2);
    }
  });

  it("manifest.json itself inflating to 2 GiB: ARCHIVE_TOO_LARGE, exit 2", async () => {
    const file = write("manifest-bomb.zip", [bomb("manifest.json"), deflated("trust-policy.json", policy)]);
    const r = await verifyPackage(file);
    report("with a 2 GiB manifest.json", r.peak);
    expect(r.stderr).toMatch(/\[ARCHIVE_TOO_LARGE\]: manifest\.json is larger than \d+ bytes/);
    expect(r.status).toBe(2);
    expect(r.peak).toBeLessThan(200 * MB);
  });
});
