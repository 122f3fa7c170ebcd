/**
 * Configuration, parsed once with zod. In development, missing secrets are generated into
 * `<DATA_DIR>/secrets.json` on first start (never committed); in production every secret must be given.
 */
import { randomBytes } from "node:crypto";
import { availableParallelism } from "node:os";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { parseDatabaseUrl } from "../../db/url.ts";
import type { LedgerTimePolicy } from "../../anchoring/ledgers/ledger-time.ts";

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

const boolFromString = z
  .enum(["true", "false", "1", "0", "yes", "no"])
  .transform((v) => v === "true" || v === "1" || v === "yes");

const intFrom = (min: number, max: number) =>
  z.string().regex(/^\d+$/, "must be a whole number").transform(Number).pipe(z.number().int().min(min).max(max));

const dataKey = z.string().transform((v, ctx) => {
  const bytes = /^[0-9a-fA-F]{64}$/.test(v) ? Buffer.from(v, "hex") : Buffer.from(v, "base64");
  if (bytes.length !== 32) {
    ctx.addIssue({ code: "custom", message: "must be 32 bytes, as 64 hex characters or base64" });
    return z.NEVER;
  }
  return new Uint8Array(bytes);
});

const EnvSchema = z.object({
  NODE_ENV: z.enum(["development", "production", "test"]).default("development"),
  DATA_DIR: z.string().min(1).default("./data"),
  DATABASE_URL: z
    .string()
    .optional()
    .transform((v) => (v === "" ? undefined : v)),
  // A streaming replica of DATABASE_URL for reads of sealed rows (ADR 0044); only with DATABASE_URL.
  DATABASE_REPLICA_URL: z
    .string()
    .optional()
    .transform((v) => (v === "" ? undefined : v)),
  PGLITE_DIR: z.string().min(1).optional(),
  SESSION_SECRET: z.string().min(32, "must be at least 32 characters").optional(),
  DATA_KEY: dataKey.optional(),
  PORT: intFrom(0, 65535).default(3000),
  // The portal's address as its users reach it: every link in a message is built from it, never from headers.
  PUBLIC_URL: z
    .url({ protocol: /^https?$/, error: "must be an http(s) URL such as https://trials.example.org" })
    .refine((v) => {
      if (!URL.canParse(v)) return true; // reported by .url() above
      const u = new URL(v);
      return u.pathname === "/" && !u.search && !u.hash && !u.username && !u.password;
    }, "must be an origin such as https://trials.example.org (no path, query or credentials)")
    .transform((v) => new URL(v).origin)
    .optional(),
  HOST: z.string().min(1).default("0.0.0.0"),
  LOG_ORIGIN: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9.\-/_:]*$/, "must be a schema-less URL such as example.com/trialseal")
    .optional(),
  SEAL_INTERVAL_MS: intFrom(10, 3_600_000).default(1000),
  SEAL_MAX_BATCH: intFrom(1, 1_000_000).default(10000),
  SEED_DEMO: boolFromString.optional(),
  SESSION_TTL_HOURS: intFrom(1, 24 * 30).default(12),
  SESSION_IDLE_MINUTES: intFrom(1, 24 * 60).default(30),
  API_RATE_PER_SECOND: intFrom(1, 100_000).default(50),
  // Portal worker processes on PostgreSQL (ADR 0043); default: the number of cores. One on the embedded database.
  WEB_CONCURRENCY: intFrom(1, 256).optional(),
  // Anchoring (docs/ledgers.md). The local ledger is on unless LOCAL_LEDGER=false.
  LOCAL_LEDGER: boolFromString.optional(),
  LOCAL_LEDGER_ID: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]{0,200}$/, "letters, digits and . _ : / - only")
    .optional(),
  LOCAL_ANCHOR_INTERVAL_MS: intFrom(100, 86_400_000).default(10_000),
  EVM_RPC_URL: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).optional(),
  EVM_CHAIN_ID: intFrom(1, Number.MAX_SAFE_INTEGER).optional(),
  EVM_CONTRACT: z
    .string()
    .regex(/^0x[0-9a-fA-F]{40}$/, "must be a 0x-prefixed 20-byte address")
    .optional(),
  EVM_PRIVATE_KEY: z
    .string()
    .regex(/^(0x)?[0-9a-fA-F]{64}$/, "must be 32 bytes as hex")
    .optional(),
  EVM_CONFIRMATIONS: intFrom(1, 10_000).default(2),
  EVM_ANCHOR_INTERVAL_MS: intFrom(100, 86_400_000).default(300_000),
  EVM_RECEIPT_TIMEOUT_MS: intFrom(100, 3_600_000).default(60_000),
  TSA_URL: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).optional(),
  TSA_CERTS: z.string().min(1).optional(),
  TSA_TIMEOUT_MS: intFrom(100, 600_000).default(15_000),
  RFC3161_ANCHOR_INTERVAL_MS: intFrom(100, 86_400_000).default(60_000),
  ANCHOR_RETRY_MAX_MS: intFrom(100, 86_400_000).default(300_000),
  // Per-ledger-type override of the clock drift verifiers allow (trust policy `ledgerTime`; docs/ledgers.md).
  LOCAL_LEDGER_TIME_DRIFT_MS: intFrom(0, 86_400_000).optional(),
  EVM_TIME_DRIFT_MS: intFrom(0, 86_400_000).optional(),
  TSA_TIME_DRIFT_MS: intFrom(0, 86_400_000).optional(),
  // PDFs (certified copies, consent receipts): a TrueType font covering the participants' scripts.
  PDF_FONT: z.string().min(1).default("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
  PDF_FONT_BOLD: z.string().min(1).default("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
  // The CLI's progress bar on stderr when it is not a terminal.
  TRIALSEAL_PROGRESS: boolFromString.optional(),
  // Notifications (ADR 0035): the SMTP server the outbox is sent through; without it nothing is sent.
  SMTP_URL: z
    .url({ protocol: /^smtps?$/, error: "must be an smtp:// or smtps:// URL such as smtp://user:pass@host:587" })
    .optional(),
  SMTP_FROM: z.string().min(3).max(300).optional(),
});

/** LOG_ORIGIN when it is not set. */
export const DEFAULT_LOG_ORIGIN = "trialseal.localhost/log";

export type Env = {
  nodeEnv: "development" | "production" | "test";
  production: boolean;
  dataDir: string;
  databaseUrl?: string;
  /** DATABASE_REPLICA_URL: a read replica serving reads of sealed rows (ADR 0044); only with databaseUrl. */
  databaseReplicaUrl?: string;
  pgliteDir: string;
  sessionSecret: string;
  dataKey: Uint8Array;
  port: number;
  host: string;
  /**
   * The portal's public origin (PUBLIC_URL; required in production). Without it, http://localhost:PORT (or
   * HOST:PORT when HOST is one address), which the portal corrects to the port it actually listens on (PORT=0).
   */
  publicUrl: string;
  /** PUBLIC_URL was given (not the development default). */
  publicUrlConfigured: boolean;
  /** Where SESSION_SECRET and DATA_KEY came from: the environment, <DATA_DIR>/secrets.json, or created there now. */
  devSecrets: "environment" | "file" | "created";
  logOrigin: string;
  sealIntervalMs: number;
  sealMaxBatch: number;
  seedDemo: boolean;
  sessionTtlMs: number;
  sessionIdleMs: number;
  apiRatePerSecond: number;
  /** WEB_CONCURRENCY: portal worker processes (ADR 0043); always 1 on the embedded database. */
  webConcurrency: number;
  anchoring: AnchoringConfig;
  /** TrueType fonts of the generated PDFs (the bold one falls back to the regular one when missing). */
  pdfFont: { regular: string; bold: string };
  /** The CLI shows its progress bar even when stderr is not a terminal. */
  cliProgress: boolean;
  /** SMTP_URL: where the outbox is sent (ADR 0035); undefined in development: nothing is sent. */
  smtpUrl?: string;
  /** SMTP_FROM: the sender address of notifications (default no-reply at the PUBLIC_URL host). */
  smtpFrom?: string;
};

/** Which ledgers are on, and how to reach them. */
export interface AnchoringConfig {
  local: { id: string; intervalMs: number } | null;
  evm: {
    rpcUrl: string;
    chainId: number;
    contract: `0x${string}`;
    privateKey: `0x${string}`;
    confirmations: number;
    intervalMs: number;
    receiptTimeoutMs: number;
  } | null;
  rfc3161: { url: string; certsFile: string; timeoutMs: number; intervalMs: number } | null;
  retryMaxMs: number;
  /** Drift overrides per ledger type for the trust policy's `ledgerTime`; empty (no key written) by default. */
  ledgerTime: LedgerTimePolicy;
}

interface DevSecrets {
  SESSION_SECRET: string;
  DATA_KEY: string;
}

/**
 * The portal's address in development, without PUBLIC_URL: http://localhost:PORT when it listens on every
 * interface, else the address it listens on (HOST=127.0.0.1 gives http://127.0.0.1:PORT).
 */
export function developmentPublicUrl(host: string, port: number): string {
  const name = host === "0.0.0.0" || host === "::" ? "localhost" : host.includes(":") ? `[${host}]` : host;
  return `http://${name}:${port}`;
}

/** The one line every command says when DATA_DIR holds no deployment keys or secrets (issue 16 item 12). */
export function noKeysMessage(dataDir: string): string {
  return (
    `no deployment keys in DATA_DIR (${path.resolve(dataDir)}): run this where the portal keeps its data or ` +
    "set DATA_DIR to it (only npm start, `trialseal db migrate` and `trialseal keys init` create keys)"
  );
}

function loadOrCreateDevSecrets(dataDir: string, create: boolean): DevSecrets & { created: boolean } {
  const file = path.join(dataDir, "secrets.json");
  if (existsSync(file)) {
    const parsed = z
      .object({ SESSION_SECRET: z.string().min(32), DATA_KEY: z.string() })
      .safeParse(JSON.parse(readFileSync(file, "utf8")));
    if (!parsed.success) throw new ConfigError(`${file} is damaged; delete it to generate new development secrets`);
    return { ...parsed.data, created: false };
  }
  if (!create) throw new ConfigError(noKeysMessage(dataDir));
  mkdirSync(dataDir, { recursive: true });
  const secrets: DevSecrets = {
    SESSION_SECRET: randomBytes(32).toString("base64url"),
    DATA_KEY: randomBytes(32).toString("hex"),
  };
  writeFileSync(file, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600, flag: "wx" });
  return { ...secrets, created: true };
}

function relevantVars(source: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(source).filter(([, v]) => v !== undefined && v !== "")) as Record<
    string,
    string
  >;
}

function configError(error: z.ZodError): ConfigError {
  const issue = error.issues[0];
  return new ConfigError(`invalid ${String(issue.path[0] ?? "environment")}: ${issue.message}`);
}

/**
 * What `trialseal ledger deploy-evm` reads: it runs before the contract exists (so before EVM_CONTRACT can be
 * set), needs no secrets of the portal, and checks these variables with the same rules as parseEnv.
 */
export function parseDeployEnv(source: Record<string, string | undefined> = process.env): {
  rpcUrl?: string;
  privateKey?: `0x${string}`;
  logOrigin: string;
} {
  const result = EnvSchema.pick({ EVM_RPC_URL: true, EVM_PRIVATE_KEY: true, LOG_ORIGIN: true }).safeParse(
    relevantVars(source),
  );
  if (!result.success) throw configError(result.error);
  const key = result.data.EVM_PRIVATE_KEY;
  return {
    rpcUrl: result.data.EVM_RPC_URL,
    privateKey: key === undefined ? undefined : ((key.startsWith("0x") ? key : `0x${key}`) as `0x${string}`),
    logOrigin: result.data.LOG_ORIGIN ?? DEFAULT_LOG_ORIGIN,
  };
}

/**
 * Parse the environment. Throws ConfigError with one line naming the variable at fault. Outside production,
 * missing secrets come from <DATA_DIR>/secrets.json, created there unless `createDevSecrets` is false (CLI
 * commands other than `db migrate` and `keys init`: they refuse instead, naming DATA_DIR).
 */
export function parseEnv(
  source: Record<string, string | undefined> = process.env,
  opts: { createDevSecrets?: boolean } = {},
): Env {
  const result = EnvSchema.safeParse(relevantVars(source));
  if (!result.success) throw configError(result.error);
  const e = result.data;
  const production = e.NODE_ENV === "production";
  if (e.DATABASE_URL) {
    // Checked here so that a malformed URL is reported as configuration, before anything starts.
    try {
      parseDatabaseUrl(e.DATABASE_URL);
    } catch (err) {
      throw new ConfigError(`invalid ${(err as Error).message}`);
    }
  }
  if (e.DATABASE_REPLICA_URL) {
    if (!e.DATABASE_URL)
      throw new ConfigError(
        "invalid DATABASE_REPLICA_URL: a read replica needs DATABASE_URL (the primary); the embedded database has none",
      );
    try {
      parseDatabaseUrl(e.DATABASE_REPLICA_URL);
    } catch (err) {
      throw new ConfigError(
        `invalid DATABASE_REPLICA_URL: ${(err as Error).message.replace(/^DATABASE_URL:?\s*/, "")}`,
      );
    }
  }
  if (!e.DATABASE_URL && e.WEB_CONCURRENCY !== undefined && e.WEB_CONCURRENCY > 1)
    throw new ConfigError(
      "invalid WEB_CONCURRENCY: the embedded database (no DATABASE_URL) is served by one process; " +
        "set DATABASE_URL (PostgreSQL) for several workers, or WEB_CONCURRENCY=1",
    );
  let devSecrets: Env["devSecrets"] = "environment";
  let sessionSecret = e.SESSION_SECRET;
  let key = e.DATA_KEY;
  if (production) {
    if (!sessionSecret)
      throw new ConfigError("missing SESSION_SECRET: production needs a random secret of at least 32 characters");
    if (!key)
      throw new ConfigError(
        "missing DATA_KEY: production needs a 32-byte key (64 hex characters) for personal data encryption",
      );
    if (!e.PUBLIC_URL)
      throw new ConfigError(
        "missing PUBLIC_URL: production needs the portal's public address (such as https://trials.example.org)",
      );
  }
  let evm: AnchoringConfig["evm"] = null;
  if (e.EVM_RPC_URL) {
    // Never echo the key: only the variable's name appears in errors.
    if (!e.EVM_CHAIN_ID)
      throw new ConfigError("missing EVM_CHAIN_ID: the chain id the EVM_RPC_URL endpoint must serve");
    if (!e.EVM_CONTRACT)
      throw new ConfigError(
        "missing EVM_CONTRACT: deploy the anchoring contract with `trialseal ledger deploy-evm` and set its address",
      );
    if (!e.EVM_PRIVATE_KEY)
      throw new ConfigError("missing EVM_PRIVATE_KEY: the key of the account that deployed the contract");
    evm = {
      rpcUrl: e.EVM_RPC_URL,
      chainId: e.EVM_CHAIN_ID,
      contract: e.EVM_CONTRACT as `0x${string}`,
      privateKey: (e.EVM_PRIVATE_KEY.startsWith("0x") ? e.EVM_PRIVATE_KEY : `0x${e.EVM_PRIVATE_KEY}`) as `0x${string}`,
      confirmations: e.EVM_CONFIRMATIONS,
      intervalMs: e.EVM_ANCHOR_INTERVAL_MS,
      receiptTimeoutMs: e.EVM_RECEIPT_TIMEOUT_MS,
    };
  }
  let rfc3161: AnchoringConfig["rfc3161"] = null;
  if (e.TSA_URL) {
    if (!e.TSA_CERTS)
      throw new ConfigError(
        "missing TSA_CERTS: a PEM file with the certificate(s) the TSA's certificate must chain to",
      );
    if (!existsSync(e.TSA_CERTS)) throw new ConfigError(`invalid TSA_CERTS: ${e.TSA_CERTS} does not exist`);
    rfc3161 = {
      url: e.TSA_URL,
      certsFile: e.TSA_CERTS,
      timeoutMs: e.TSA_TIMEOUT_MS,
      intervalMs: e.RFC3161_ANCHOR_INTERVAL_MS,
    };
  }
  // Development secrets last: a variable at fault is named before a missing DATA_DIR is.
  if (!production && (!sessionSecret || !key)) {
    const dev = loadOrCreateDevSecrets(e.DATA_DIR, opts.createDevSecrets ?? true);
    devSecrets = dev.created ? "created" : "file";
    sessionSecret ??= dev.SESSION_SECRET;
    key ??= dataKey.parse(dev.DATA_KEY);
  }
  const logOrigin = e.LOG_ORIGIN ?? DEFAULT_LOG_ORIGIN;
  const anchoring: AnchoringConfig = {
    local:
      e.LOCAL_LEDGER === false
        ? null
        : { id: e.LOCAL_LEDGER_ID ?? `${logOrigin}/local-ledger`, intervalMs: e.LOCAL_ANCHOR_INTERVAL_MS },
    evm,
    rfc3161,
    retryMaxMs: e.ANCHOR_RETRY_MAX_MS,
    ledgerTime: {
      ...(e.LOCAL_LEDGER_TIME_DRIFT_MS === undefined ? {} : { local: { driftMs: e.LOCAL_LEDGER_TIME_DRIFT_MS } }),
      ...(e.EVM_TIME_DRIFT_MS === undefined ? {} : { evm: { driftMs: e.EVM_TIME_DRIFT_MS } }),
      ...(e.TSA_TIME_DRIFT_MS === undefined ? {} : { rfc3161: { driftMs: e.TSA_TIME_DRIFT_MS } }),
    },
  };
  return {
    nodeEnv: e.NODE_ENV,
    production,
    dataDir: e.DATA_DIR,
    databaseUrl: e.DATABASE_URL,
    databaseReplicaUrl: e.DATABASE_REPLICA_URL,
    pgliteDir: e.PGLITE_DIR ?? path.join(e.DATA_DIR, "pglite"),
    sessionSecret: sessionSecret!,
    dataKey: key!,
    port: e.PORT,
    host: e.HOST,
    publicUrl: e.PUBLIC_URL ?? developmentPublicUrl(e.HOST, e.PORT),
    publicUrlConfigured: e.PUBLIC_URL !== undefined,
    devSecrets,
    logOrigin,
    sealIntervalMs: e.SEAL_INTERVAL_MS,
    sealMaxBatch: e.SEAL_MAX_BATCH,
    seedDemo: e.SEED_DEMO ?? !production,
    sessionTtlMs: e.SESSION_TTL_HOURS * 3600_000,
    sessionIdleMs: e.SESSION_IDLE_MINUTES * 60_000,
    apiRatePerSecond: e.API_RATE_PER_SECOND,
    webConcurrency: e.DATABASE_URL ? (e.WEB_CONCURRENCY ?? availableParallelism()) : 1,
    anchoring,
    pdfFont: { regular: e.PDF_FONT, bold: e.PDF_FONT_BOLD },
    cliProgress: e.TRIALSEAL_PROGRESS ?? false,
    smtpUrl: e.SMTP_URL,
    smtpFrom: e.SMTP_FROM,
  };
}
