/** Start and stop real portal processes and CLI invocations for integration tests. */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { BUNDLE_DIR, bundleIsCurrent } from "../../bin/bundle-current.js";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const TSX = ["--import", "tsx"];

/**
 * How to run the portal's server: the bundle built ahead of time (build/cli/serve.mjs, bin/build-cli.mjs) while its
 * sources are unchanged, as `npm start` does; else bin/serve.ts through tsx (about 15 s more CPU per start).
 */
function serveArgs(): string[] {
  return bundleIsCurrent() ? [path.join(BUNDLE_DIR, "serve.mjs")] : [...TSX, path.join(ROOT, "bin", "serve.ts")];
}

export function ensureBuilt(): void {
  if (existsSync(path.join(ROOT, "build", "index.js"))) return;
  const r = spawnSync(process.execPath, [path.join(ROOT, "node_modules/@remix-run/dev/dist/cli.js"), "build"], {
    cwd: ROOT,
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`remix build failed: ${r.stderr}`);
  const v = spawnSync(process.execPath, [path.join(ROOT, "bin", "build-verifier.mjs")], {
    cwd: ROOT,
    encoding: "utf8",
  });
  if (v.status !== 0) throw new Error(`verifier build failed: ${v.stderr}`);
}

export function tempDataDir(): string {
  return mkdtempSync(path.join(tmpdir(), "trialseal-it-"));
}

export interface Portal {
  url: string;
  proc: ChildProcess;
  output(): string;
  stop(): Promise<number | null>;
}

function baseEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  // One portal process unless a test asks for a cluster (WEB_CONCURRENCY defaults to the number of cores: ADR 0043).
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_ENV: "development",
    PORT: "0",
    HOST: "127.0.0.1",
    WEB_CONCURRENCY: "1",
    ...extra,
  };
  if (!("DATABASE_URL" in extra)) delete env.DATABASE_URL;
  return env;
}

/** Start the portal's server and wait until it listens (or exits); a start on a loaded machine can take a minute. */
export async function startPortal(extra: Record<string, string>, timeoutMs = 180_000): Promise<Portal> {
  ensureBuilt();
  const proc = spawn(process.execPath, serveArgs(), {
    cwd: ROOT,
    env: baseEnv(extra),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stdout!.on("data", (d) => (out += d));
  proc.stderr!.on("data", (d) => (out += d));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`portal did not start within ${timeoutMs} ms:\n${out}`)),
      timeoutMs,
    );
    const check = () => {
      const m = /portal on http:\/\/localhost:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(`http://127.0.0.1:${m[1]}`);
      }
    };
    proc.stdout!.on("data", check);
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`portal exited with ${code}:\n${out}`));
    });
  });
  return {
    url,
    proc,
    output: () => out,
    stop: () =>
      new Promise((resolve) => {
        if (proc.exitCode !== null) return resolve(proc.exitCode);
        proc.once("exit", (code) => resolve(code));
        proc.kill("SIGTERM");
      }),
  };
}

/**
 * The demo password of the database a portal seeded: read from the credentials file its start names (one file
 * per database, so a PostgreSQL portal's is not DATA_DIR/demo-credentials.txt): "Demo logins written to FILE" when
 * it seeded, "the demo logins of this database are in FILE" when the demo study was there (a demo snapshot's clone,
 * test/helpers/demo-snapshot.ts, or a restart).
 */
export function demoPasswordOf(portal: Portal): string {
  const file = /(?:Demo logins written to|the demo logins of this database are in) (\S+)/.exec(portal.output())?.[1];
  if (!file) throw new Error(`the portal did not seed the demo:\n${portal.output()}`);
  const password = /password for every account: (\S+)/.exec(readFileSync(file, "utf8"))?.[1];
  if (!password) throw new Error(`${file} names no demo password`);
  return password;
}

/** Run the portal expecting it to fail at start; returns exit code and output. */
export function portalStartFailure(extra: Record<string, string>) {
  ensureBuilt();
  const r = spawnSync(process.execPath, serveArgs(), {
    cwd: ROOT,
    env: baseEnv(extra),
    encoding: "utf8",
    timeout: 180_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Run the CLI (`bin/trialseal.js`). */
export function cli(args: string[], extra: Record<string, string>, input?: string) {
  const r = spawnSync(process.execPath, [path.join(ROOT, "bin", "trialseal.js"), ...args], {
    cwd: ROOT,
    env: baseEnv(extra),
    encoding: "utf8",
    input: input ?? "",
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Run the CLI without blocking this process (needed when the test itself serves a TSA or a proxy). */
export function cliAsync(
  args: string[],
  extra: Record<string, string>,
  timeoutMs = 120_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [path.join(ROOT, "bin", "trialseal.js"), ...args], {
      cwd: ROOT,
      env: baseEnv(extra),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    p.stdout!.on("data", (d) => (stdout += d));
    p.stderr!.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
    p.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A tiny cookie-keeping HTTP client (no redirects followed). */
export class Browser {
  cookie = "";
  constructor(readonly base: string) {}
  async get(p: string) {
    return this.request(p, { method: "GET" });
  }
  async post(p: string, form: Record<string, string>, headers: Record<string, string> = {}) {
    // A browser sends Origin with every form post.
    return this.request(p, {
      method: "POST",
      body: new URLSearchParams(form).toString(),
      headers: { "content-type": "application/x-www-form-urlencoded", origin: this.base, ...headers },
    });
  }
  /**
   * Sign in; when the account must use a second factor, enrol an authenticator (reading the key from the
   * enrolment page, as a person would type it into their app) or answer the code step. Returns the TOTP secret.
   * `opts.code` answers the code step instead of the current step's code (e.g. test/helpers/totp.ts nextStepTotp).
   */
  async signIn(
    email: string,
    password: string,
    secret?: string,
    opts: { code?: (secret: string) => string | Promise<string> } = {},
  ): Promise<{ status: number; location: string | null; secret?: string }> {
    const r = await this.post("/login", { email, password });
    if (r.status !== 302) return r;
    const { generateTOTP } = await import("@epic-web/totp");
    const code = async (key: string) =>
      (await generateTOTP({ secret: key, period: 30, digits: 6, algorithm: "SHA-1" })).otp;
    if (r.location?.startsWith("/account/totp")) {
      const page = await this.get(r.location);
      const key = /data-testid="totp-secret">([A-Z2-7]+)</.exec(page.text)?.[1];
      if (!key) throw new Error("no enrolment key on the page");
      const done = await this.post(r.location, { code: await code(key) });
      return { ...done, secret: key };
    }
    if (r.location?.startsWith("/login/totp")) {
      if (!secret) throw new Error(`${email} needs a TOTP code`);
      const done = await this.post(r.location, { code: await (opts.code ?? code)(secret) });
      return { ...done, secret };
    }
    return r;
  }
  private async request(p: string, init: RequestInit) {
    const res = await fetch(this.base + p, {
      ...init,
      redirect: "manual",
      headers: { ...(init.headers as Record<string, string>), cookie: this.cookie },
    });
    const set = res.headers.get("set-cookie");
    if (set) this.cookie = set.split(";")[0];
    return { status: res.status, location: res.headers.get("location"), text: await res.text(), headers: res.headers };
  }
}
