/** Password hashing with argon2id (@node-rs/argon2, OWASP parameters: m=19 MiB, t=2, p=1). */
import { hash, verify } from "@node-rs/argon2";
import { ServiceError } from "../platform/errors.server.ts";

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

/** Passwords found in breach corpora that still pass a length rule (a short, representative list). */
const COMMON = new Set([
  "123456789012",
  "1234567890123",
  "12345678901234",
  "password1234",
  "password12345",
  "passwordpassword",
  "qwertyuiopasdf",
  "qwertyuiop123",
  "qwerty123456",
  "iloveyou1234",
  "administrator",
  "letmein12345",
  "welcome12345",
  "changeme1234",
  "trustno1trustno1",
  "abcdefghijkl",
  "abc123abc123",
  "111111111111",
  "000000000000",
  "aaaaaaaaaaaa",
  "football1234",
  "baseball1234",
  "sunshine1234",
  "princess1234",
  "monkey123456",
  "dragon123456",
  "superman1234",
  "123qweasdzxc",
  "1q2w3e4r5t6y",
  "zaq12wsxcde3",
  "p@ssw0rd1234",
  "passw0rd1234",
  "correcthorsebatterystaple",
  "trialseal1234",
]);

/**
 * OWASP ASVS 2.1: 12 to 128 characters (spaces and any Unicode allowed, nothing truncated), not a known
 * breached or common password, not a single repeated character, not containing the account's email name.
 */
export function checkPasswordRules(password: string, email?: string): void {
  const length = [...password].length;
  if (length < 12) throw new ServiceError("invalid", "password must be at least 12 characters", "password");
  if (length > 128) throw new ServiceError("invalid", "password must be at most 128 characters", "password");
  const lower = password.toLowerCase();
  if (COMMON.has(lower) || COMMON.has(lower.replace(/\s+/g, "")))
    throw new ServiceError(
      "invalid",
      "this password is too common (it appears in breach lists); choose another",
      "password",
    );
  if (new Set(lower).size <= 2)
    throw new ServiceError("invalid", "password must not be one or two repeated characters", "password");
  const name = email?.split("@")[0]?.toLowerCase();
  if (name && name.length >= 4 && lower.includes(name))
    throw new ServiceError("invalid", "password must not contain your email name", "password");
}
