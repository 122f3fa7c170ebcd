/**
 * Pieces of the issue-20 journey test (test/e2e/pre-commitment-journey.test.ts): the CLI run without blocking, with
 * standard input (`users create --password-stdin` while Chromium and the portal keep running), a one-page PDF made
 * with pdfkit, and a small pool that runs async work a few at a time.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import PDFDocument from "pdfkit";
import { ROOT } from "./portal.ts";

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run `bin/trialseal.js ARGS` with `env` on top of this process's, writing `input` to its standard input. */
export function cliWithInput(
  args: string[],
  env: Record<string, string>,
  input = "",
  timeoutMs = 120_000,
): Promise<CliResult> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [path.join(ROOT, "bin", "trialseal.js"), ...args], {
      cwd: ROOT,
      env: { ...process.env, NODE_ENV: "development", ...env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
    p.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    p.stdin.end(input);
  });
}

/** A one-page PDF with a title and a few lines (pdfkit's built-in Helvetica). */
export async function onePagePdf(title: string, lines: readonly string[]): Promise<Buffer> {
  const doc = new PDFDocument({ size: "A4", margin: 50, info: { Title: title } });
  const chunks: Buffer[] = [];
  doc.on("data", (c: Buffer) => chunks.push(c));
  const done = new Promise<Buffer>((resolve) => doc.on("end", () => resolve(Buffer.concat(chunks))));
  doc.fontSize(16).text(title);
  doc.moveDown();
  doc.fontSize(10);
  for (const l of lines) doc.text(l);
  doc.end();
  return done;
}

/** Run `work` on every item, at most `width` at a time; results in the items' order. */
export async function inPool<T, R>(items: readonly T[], width: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  return out;
}
