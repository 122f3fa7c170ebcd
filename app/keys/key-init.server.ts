/**
 * `trialseal keys init`: create the deployment's keys in DATA_DIR unless they exist (the log key, the local
 * ledger's key when that ledger is on, and outside production the development secrets), and say which were
 * created and which were already there. Idempotent: a second run creates nothing.
 */
import path from "node:path";
import { toHex } from "../../anchoring/log/bytes.ts";
import type { Env } from "../platform/env.server.ts";
import { ringExists, ringSigner } from "./key-ring.server.ts";

export function initDeploymentKeys(env: Env): string {
  const keysDir = path.resolve(env.dataDir, "keys");
  const state = (existed: boolean) => (existed ? "already present" : "created");
  const lines: string[] = [];
  const logExisted = ringExists(env.dataDir, "log");
  lines.push(`log key ${toHex(ringSigner(env.dataDir, "log").publicKey)} ${state(logExisted)} in ${keysDir}`);
  if (env.anchoring.local) {
    const existed = ringExists(env.dataDir, "ledger-local");
    const key = toHex(ringSigner(env.dataDir, "ledger-local").publicKey);
    lines.push(`local ledger key ${key} ${state(existed)} in ${keysDir}`);
  }
  if (env.devSecrets !== "environment")
    lines.push(`development secrets ${state(env.devSecrets === "file")}: ${path.resolve(env.dataDir, "secrets.json")}`);
  return `${lines.join("\n")}\n`;
}
