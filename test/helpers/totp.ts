/**
 * Authenticator codes for tests, for a chosen 30-second time step (RFC 6238, SHA-1, 6 digits: what the portal
 * and authenticator apps use). The portal accepts a code of the current step or of an adjacent one (clock skew,
 * `window: 1` in app/accounts/auth.server.ts) and each step once only. A test that needs a second code soon
 * after the first uses the next step's code (what an authenticator running a little ahead shows) instead of
 * waiting up to 30 s for the clock to reach a new step.
 */
import { createHmac } from "node:crypto";
import { verifyTOTP } from "@epic-web/totp";

export const TOTP_PERIOD_S = 30;

/** The time step a moment falls in (default: now). */
export function totpStep(at = Date.now()): number {
  return Math.floor(at / 1000 / TOTP_PERIOD_S);
}

function base32Decode(s: string): Buffer {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const ch of s.replace(/=+$/, "").toUpperCase()) {
    const i = alphabet.indexOf(ch);
    if (i < 0) throw new Error(`not base32: ${s}`);
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** The code of a base32 TOTP secret for a time step. */
export function totpAt(secret: string, step: number): string {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const h = createHmac("sha1", base32Decode(secret)).update(counter).digest();
  const offset = h[h.length - 1] & 0xf;
  return String((h.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}

/**
 * A code for the step after the current one: never used yet when every earlier code was of the current or an
 * earlier step, and accepted by the portal until the end of the step after it (at least 60 s from now).
 * Checked against @epic-web/totp (the library the portal verifies with), so the two can never drift apart.
 */
export async function nextStepTotp(secret: string): Promise<string> {
  const otp = totpAt(secret, totpStep() + 1);
  const r = await verifyTOTP({ otp, secret, period: TOTP_PERIOD_S, digits: 6, algorithm: "SHA-1", window: 2 });
  if (!r || r.delta < 1) throw new Error(`test TOTP code for the next step does not verify (${JSON.stringify(r)})`);
  return otp;
}
