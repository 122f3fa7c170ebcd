/**
 * The embedded local ledger: an append-only, hash-chained, signed JSON-lines file under <DATA_DIR>/ledger/,
 * kept apart from the main database and signed with its own key (not the log key), so that an edit made
 * through the database alone cannot rewrite what it attests. Server side (node:fs).
 *
 * Durability: each record is written with one append and fsync'd before its receipt is returned. Appends
 * take a lock file (several processes may share a data directory, e.g. the portal and `trialseal anchor` on
 * PostgreSQL) and first read and verify whatever other processes appended. An incomplete last line (a crash
 * or a full disk mid-write: no receipt was ever returned for it) is cut off under the lock; any other damage
 * (bad signature, broken chain, edited line) refuses to open.
 */
import {
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readSync,
  unlinkSync,
  writeSync,
  readFileSync,
} from "node:fs";
import path from "node:path";
import type { Crypto, Signer } from "../log/crypto.ts";
import { toHex } from "../log/bytes.ts";
import { LocalRecordSchema, type AnchorReceipt, type LocalRecord, type LocalLedgerPolicy } from "../ledgers/receipt.ts";
import {
  LedgerError,
  type AnchorContext,
  type AnchorOutcome,
  type AnchorRequest,
  type Ledger,
} from "../ledgers/ledger.ts";
import {
  GENESIS_PREV,
  LOCAL_FORMAT,
  recordHash,
  recordLine,
  recordSignedBy,
  signRecord,
} from "../ledgers/local-record.ts";

export class LocalLedgerCorrupt extends Error {
  readonly code = "LOCAL_LEDGER_CORRUPT";
  constructor(message: string) {
    super(message);
    this.name = "LocalLedgerCorrupt";
  }
}

export interface LocalLedgerOptions {
  name: string;
  /** The ledger id written into each record. */
  ledgerId: string;
  dir: string;
  signer: Signer;
  /**
   * Every key this ledger's records may be signed by, with its time window (after rotations); default: the
   * signer's key alone, open-ended. Records are checked against the key valid at their time.
   */
  trustedKeys?: () => { publicKey: Uint8Array; notBefore: string | null; notAfter: string | null }[];
  crypto: Crypto;
  now?: () => Date;
  /** How long to wait for another process's lock. */
  lockTimeoutMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class LocalLedgerFile {
  readonly file: string;
  private records: LocalRecord[] = [];
  private byCheckpoint = new Map<string, LocalRecord>();
  private lastHash = GENESIS_PREV;
  /** Bytes of the file already read and verified. */
  private offset = 0;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: LocalLedgerOptions) {
    this.file = path.join(o.dir, `${o.ledgerId.replace(/[^A-Za-z0-9._-]/g, "_")}.jsonl`);
    this.readNew(false);
  }

  get size() {
    return this.records.length;
  }

  /** Read and verify the complete lines appended since `offset`. Under the lock, cut an unfinished last line. */
  private readNew(underLock: boolean) {
    if (!existsSync(this.file)) return;
    const fd = openSync(this.file, underLock ? "r+" : "r");
    try {
      const size = fstatSync(fd).size;
      if (size < this.offset)
        throw new LocalLedgerCorrupt(`local ledger ${this.file} shrank from ${this.offset} to ${size} bytes`);
      if (size === this.offset) return;
      const buf = Buffer.alloc(size - this.offset);
      let got = 0;
      while (got < buf.length) got += readSync(fd, buf, got, buf.length - got, this.offset + got);
      const text = buf.toString("utf8");
      const end = text.lastIndexOf("\n") + 1;
      if (end < text.length && underLock) {
        // An unfinished append of a writer that died: no receipt was returned for it.
        ftruncateSync(fd, this.offset + Buffer.byteLength(text.slice(0, end)));
        fsyncSync(fd);
      }
      const lines = text.slice(0, end).split("\n").slice(0, -1);
      for (const line of lines) this.accept(line);
      this.offset += Buffer.byteLength(text.slice(0, end));
    } finally {
      closeSync(fd);
    }
  }

  private accept(line: string) {
    const i = this.records.length;
    const fail = (why: string): never => {
      throw new LocalLedgerCorrupt(`local ledger ${this.file} record ${i}: ${why}`);
    };
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      fail("not JSON");
    }
    const r = LocalRecordSchema.safeParse(parsed);
    if (!r.success) fail(`not a ledger record (${r.error.issues[0].path.join(".")}: ${r.error.issues[0].message})`);
    const rec = r.data!;
    if (recordLine(rec) !== line) fail("not in canonical form");
    if (rec.pos !== i) fail(`position ${rec.pos}, expected ${i}`);
    if (rec.prev !== this.lastHash) fail("prev does not match the previous record");
    if (rec.ledger !== this.o.ledgerId) fail(`ledger id ${rec.ledger}, expected ${this.o.ledgerId}`);
    const keys = this.o.trustedKeys
      ? this.o.trustedKeys()
      : [{ publicKey: this.o.signer.publicKey, notBefore: null, notAfter: null }];
    const valid = keys.filter(
      (k) => (k.notBefore === null || rec.time >= k.notBefore) && (k.notAfter === null || rec.time < k.notAfter),
    );
    if (!valid.some((k) => recordSignedBy(this.o.crypto, rec, k.publicKey)))
      fail("signature does not verify with this ledger's key (valid at the record's time)");
    this.records.push(rec);
    this.byCheckpoint.set(rec.checkpoint, rec);
    this.lastHash = recordHash(this.o.crypto, rec);
  }

  find(checkpointHashHex: string): LocalRecord | undefined {
    return this.byCheckpoint.get(checkpointHashHex);
  }

  at(pos: number): LocalRecord | undefined {
    return this.records[pos];
  }

  /** Every record (a copy), e.g. for an audit against the database. */
  all(): LocalRecord[] {
    this.readNew(false);
    return [...this.records];
  }

  /** Append a record for a checkpoint (idempotent: a checkpoint already recorded returns its record). */
  append(treeSize: number, checkpointHash: Uint8Array): Promise<LocalRecord> {
    const run = this.chain.then(() => this.withLock(() => this.appendNow(treeSize, checkpointHash)));
    this.chain = run.catch(() => {});
    return run;
  }

  private async withLock<T>(f: () => T): Promise<T> {
    const lock = `${this.file}.lock`;
    try {
      mkdirSync(this.o.dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw this.ioError(err);
    }
    const deadline = Date.now() + (this.o.lockTimeoutMs ?? 10_000);
    for (;;) {
      try {
        const fd = openSync(lock, "wx", 0o600);
        writeSync(fd, String(process.pid));
        closeSync(fd);
        break;
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (e.code !== "EEXIST") throw this.ioError(err);
        const pid = Number(readFileSafe(lock));
        if (Number.isInteger(pid) && pid > 0 && !alive(pid)) {
          try {
            unlinkSync(lock); // left by a process that died
          } catch {
            // someone else removed it
          }
          continue;
        }
        if (Date.now() > deadline)
          throw new LedgerError(this.o.name, `the local ledger ${this.file} is locked by process ${pid || "?"}`);
        await sleep(10);
      }
    }
    try {
      return f();
    } finally {
      try {
        unlinkSync(lock);
      } catch {
        // already gone
      }
    }
  }

  private ioError(err: unknown): LedgerError {
    const e = err as NodeJS.ErrnoException;
    const why =
      e.code === "ENOSPC"
        ? "the disk is full"
        : e.code === "EROFS" || e.code === "EACCES" || e.code === "EPERM"
          ? "the ledger directory is not writable"
          : e.message;
    return new LedgerError(this.o.name, `cannot write the local ledger ${this.file}: ${why} (${e.code ?? "error"})`);
  }

  private appendNow(treeSize: number, checkpointHash: Uint8Array): LocalRecord {
    this.readNew(true);
    const hex = toHex(checkpointHash);
    const existing = this.byCheckpoint.get(hex);
    if (existing) return existing;
    const last = this.records[this.records.length - 1];
    if (last && last.treeSize >= treeSize)
      throw new LedgerError(
        this.o.name,
        `the local ledger already holds tree size ${last.treeSize}, not below ${treeSize}`,
        false,
      );
    const now = (this.o.now ?? (() => new Date()))();
    const rec = signRecord(this.o.signer, {
      format: LOCAL_FORMAT,
      ledger: this.o.ledgerId,
      pos: this.records.length,
      prev: this.lastHash,
      time: now.toISOString(),
      treeSize,
      checkpoint: hex,
    });
    const line = recordLine(rec);
    const bytes = Buffer.from(`${line}\n`, "utf8");
    let fd: number | undefined;
    try {
      fd = openSync(this.file, "a", 0o600);
      const before = fstatSync(fd).size;
      try {
        const n = writeSync(fd, bytes);
        if (n !== bytes.length)
          throw Object.assign(new Error(`short write (${n} of ${bytes.length} bytes)`), { code: "ENOSPC" });
        fsyncSync(fd);
      } catch (err) {
        try {
          ftruncateSync(fd, before); // leave no partial record behind
        } catch {
          // the next append under the lock cuts an unfinished line anyway
        }
        throw err;
      }
    } catch (err) {
      throw this.ioError(err);
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    this.accept(line);
    this.offset += bytes.length;
    return rec;
  }
}

function readFileSafe(f: string): string {
  try {
    return readFileSync(f, "utf8").trim();
  } catch {
    return "";
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The local ledger as a Ledger adapter. */
export class LocalLedger implements Ledger {
  readonly type = "local" as const;
  readonly name: string;
  readonly store: LocalLedgerFile;

  constructor(private readonly o: LocalLedgerOptions) {
    this.name = o.name;
    this.store = new LocalLedgerFile(o);
  }

  async anchor(req: AnchorRequest, _ctx?: AnchorContext): Promise<AnchorOutcome> {
    const record = await this.store.append(req.treeSize, req.checkpointHash);
    return { status: "final", receipt: { type: "local", record }, anchoredAt: new Date(record.time) };
  }

  async refresh(receipt: AnchorReceipt): Promise<AnchorOutcome> {
    if (receipt.type !== "local") throw new LedgerError(this.name, "not a local-ledger receipt", false);
    const rec = this.store.all()[receipt.record.pos];
    if (!rec || recordLine(rec) !== recordLine(receipt.record))
      throw new LedgerError(this.name, `record ${receipt.record.pos} is not in the ledger file`, false);
    return { status: "final", receipt, anchoredAt: new Date(rec.time) };
  }

  policy(): LocalLedgerPolicy {
    const keys = this.o.trustedKeys
      ? this.o.trustedKeys()
      : [{ publicKey: this.o.signer.publicKey, notBefore: null, notAfter: null }];
    return {
      type: "local",
      ledger: this.o.ledgerId,
      keys: keys.map((k) => ({ publicKey: toHex(k.publicKey), notBefore: k.notBefore, notAfter: k.notAfter })),
    };
  }
}
