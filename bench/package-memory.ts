/**
 * `verify-package` peak memory for a genuine package of N entries (issue 16 item 6): a package built with the
 * core's own construction (N site.added entries of one study in batches of 1,000, one signed checkpoint, a proof
 * bundle per entry, the manifest; zipped as the exports do), checked by `trialseal verify-package --pin` in a child
 * process whose RSS (VmRSS) is sampled. Two sizes give the memory per entry; 1M is extrapolated from it (verifying
 * 1M bundles takes far longer than a bench run). Run alone: `node --import tsx bench/package-memory.ts [N...]`.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { zipSync } from "fflate";
import { nodeCrypto as c, nodeSigner } from "../anchoring/adapters/crypto-node.ts";
import { toHex } from "../anchoring/log/bytes.ts";
import { checkpointText, signNote, vkeyString } from "../anchoring/log/checkpoint.ts";
import { buildEntry } from "../anchoring/log/entry.ts";
import { envelopeLeaf, headerLeaf, type BatchHeader, type Envelope } from "../anchoring/log/envelope.ts";
import { MerkleLevels } from "../anchoring/log/tree.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const MB = 1024 * 1024;
const ORIGIN = "bench.trialseal.test/log";
const BATCH = 1000;

/** A genuine evidence package of `n` entries (ZIP bytes) and its trust policy's SHA-256. */
export function genuinePackage(n: number): { zip: Uint8Array; pin: string } {
  const enc = (s: string) => new TextEncoder().encode(s);
  const signer = nodeSigner(new Uint8Array(32).fill(7));
  const policy = {
    format: "trialseal-trust/v1",
    origin: ORIGIN,
    logKeys: [
      { vkey: vkeyString(c, ORIGIN, signer.publicKey), fromSize: 0, untilSize: null, notBefore: null, notAfter: null },
    ],
    ledgers: {},
    maxSkewMs: 300_000,
  };
  const entries = Array.from({ length: n }, (_, i) => {
    const built = buildEntry(
      c,
      "site.added",
      { site: `S${i}`, timeZone: "UTC", actor: null },
      i.toString(36).padStart(22, "A"),
    );
    const envelope: Envelope = {
      v: 1,
      log: ORIGIN,
      seq: i,
      studySeq: i,
      at: new Date(Date.UTC(2026, 0, 1) + i).toISOString(),
      study: "BENCH",
      kind: "site.added",
      payloadHash: toHex(built.payloadHash),
    };
    const leaf = envelopeLeaf(c, envelope);
    return { payload: built.payload as Record<string, unknown>, envelope, leaf: leaf.leaf, line: leaf.text };
  });
  const log = new MerkleLevels(c);
  const batches: { header: BatchHeader; tree: MerkleLevels; line: string }[] = [];
  for (let first = 0, b = 0; first < n; first += BATCH, b++) {
    const size = Math.min(BATCH, n - first);
    const tree = MerkleLevels.fromLeaves(
      c,
      entries.slice(first, first + size).map((e) => e.leaf),
    );
    const header: BatchHeader = {
      v: 1,
      log: ORIGIN,
      batch: b,
      first,
      size,
      root: toHex(tree.root()),
      sealedAt: new Date(Date.UTC(2026, 0, 2) + b).toISOString(),
    };
    const hl = headerLeaf(c, header);
    log.append(hl.leaf);
    batches.push({ header, tree, line: hl.text });
  }
  const B = batches.length;
  const note = signNote(c, checkpointText({ origin: ORIGIN, treeSize: B, root: log.root() }), ORIGIN, signer);
  const files: Record<string, Uint8Array> = {
    "trust-policy.json": enc(`${JSON.stringify(policy, null, 2)}\n`),
    [`checkpoints/${B}.txt`]: enc(note),
    "log/envelopes.jsonl": enc(entries.map((e) => `${e.line}\n`).join("")),
    "log/batches.jsonl": enc(batches.map((b) => `${b.line}\n`).join("")),
    // A genuine package always holds the study's ODM and FHIR exports (ADR 0019): empty here, since the bench's
    // entries (site.added) carry no clinical data; the verifier checks them for completeness all the same.
    "odm.xml": enc(
      '<?xml version="1.0" encoding="UTF-8"?>\n<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3" ODMVersion="1.3.2" ' +
        'FileType="Snapshot" FileOID="BENCH" CreationDateTime="2026-01-03T00:00:00Z"/>\n',
    ),
    "fhir.json": enc(`${JSON.stringify({ resourceType: "Bundle", type: "collection", entry: [] })}\n`),
  };
  const logProofs = batches.map((_, b) => log.inclusionProof(b, B).map(toHex));
  for (const e of entries) {
    const b = Math.floor(e.envelope.seq / BATCH);
    const { header, tree } = batches[b];
    const leafIndex = e.envelope.seq - header.first;
    const bundle = {
      format: "trialseal-proof/v1",
      payload: e.payload,
      envelope: e.envelope,
      batch: { header, leafIndex, inclusion: tree.inclusionProof(leafIndex).map(toHex) },
      checkpoints: [{ note, log: { index: b, treeSize: B, inclusion: logProofs[b] }, anchors: [] }],
    };
    files[`bundles/${e.envelope.seq}.json`] = enc(`${JSON.stringify(bundle)}\n`);
  }
  const manifest = {
    format: "trialseal-evidence/v1",
    study: "BENCH",
    origin: ORIGIN,
    createdAt: new Date(Date.UTC(2026, 0, 3)).toISOString(),
    logSize: B,
    files: Object.entries(files)
      .map(([p, data]) => ({ path: p, sha256: toHex(c.sha256(data)), bytes: data.length }))
      .sort((a, b) => a.path.localeCompare(b.path)),
  };
  files["manifest.json"] = enc(`${JSON.stringify(manifest, null, 2)}\n`);
  return { zip: zipSync(files, { level: 6 }), pin: toHex(c.sha256(files["trust-policy.json"])) };
}

/** Run verify-package on a package of `n` entries; its verdict, peak RSS and unpacked size. */
export async function verifyPackageMemory(n: number) {
  const dir = mkdtempSync(path.join(tmpdir(), "ts-bench-package-"));
  try {
    const { zip, pin } = genuinePackage(n);
    const file = path.join(dir, "evidence.zip");
    writeFileSync(file, zip);
    const t0 = Date.now();
    const r = await new Promise<{ status: number | null; stdout: string; stderr: string; peak: number }>((resolve) => {
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
      const sampler = setInterval(() => {
        try {
          const kb = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"))?.[1];
          if (kb) peak = Math.max(peak, Number(kb) * 1024);
        } catch {
          // exited between samples
        }
      }, 10);
      child.on("exit", (status) => {
        clearInterval(sampler);
        resolve({ status, stdout, stderr, peak });
      });
    });
    if (r.status !== 0) throw new Error(`verify-package of the ${n}-entry package: exit ${r.status}: ${r.stderr}`);
    return { entries: n, zipMb: zip.length / MB, peakRssMb: r.peak / MB, seconds: (Date.now() - t0) / 1000 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Two sizes, the memory per entry between them and its extrapolation to 1M entries. */
export async function benchPackageMemory(sizes: number[], log: (s: string) => void = console.log) {
  const runs = [];
  for (const n of sizes) {
    const r = await verifyPackageMemory(n);
    log(
      `${`  verify-package of a genuine ${n}-entry package`.padEnd(44)} ` +
        `${`${r.peakRssMb.toFixed(0)} MB`.padStart(10)}   (ZIP ${r.zipMb.toFixed(1)} MB, ${r.seconds.toFixed(1)} s)`,
    );
    runs.push(r);
  }
  const a = runs[0];
  const b = runs[runs.length - 1];
  const kbPerEntry = ((b.peakRssMb - a.peakRssMb) * 1024) / (b.entries - a.entries);
  const at1M = b.peakRssMb + (kbPerEntry * (1_000_000 - b.entries)) / 1024;
  log(
    `${"  memory per entry; extrapolated to 1M".padEnd(44)} ${`${kbPerEntry.toFixed(1)} KB`.padStart(10)}   ` +
      `(~${(at1M / 1024).toFixed(1)} GB at 1M entries)`,
  );
  return { runs, kbPerEntry, extrapolatedPeakMbAt1M: at1M };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const sizes = process.argv.slice(2).map(Number);
  await benchPackageMemory(sizes.length ? sizes : [10_000, 40_000]);
}
