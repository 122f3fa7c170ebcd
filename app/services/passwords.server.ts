/** Password hashing with argon2id (@node-rs/argon2, OWASP parameters: m=19 MiB, t=2, p=1). */
import { hash, verify } from "@node-rs/argon2";
import { ServiceError } from "./errors.server.ts";

export async function hashPassword(password: string): Promise<string> {
  return hash(password, { algorithm: 2, memoryCost: 19456, timeCost: 2, parallelism: 1 });
}

export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  try {
    return await verify(passwordHash, password);
  } catch {
    return false;
  }
}

/** Baseline rule (OWASP ASVS 2.1.1/2.1.2): 12 to 128 characters. Issue-5 hardening adds breach checks. */
export function checkPasswordRules(password: string): void {
  if (password.length < 12) throw new ServiceError("invalid", "password must be at least 12 characters", "password");
  if (password.length > 128) throw new ServiceError("invalid", "password must be at most 128 characters", "password");
}
