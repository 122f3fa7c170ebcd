/** RFC 8785 JSON Canonicalization Scheme, via `canonicalize` (by the RFC's author). */
import canonicalizeImpl from "canonicalize";

export class CanonicalizationError extends Error {
  readonly code = "CANONICAL_JSON";
}

/** The exact JCS text of a JSON value. Rejects values JSON cannot represent (undefined, NaN, Infinity). */
export function canonicalize(value: unknown): string {
  assertJsonValue(value, "$", 0);
  const text = canonicalizeImpl(value);
  if (typeof text !== "string") throw new CanonicalizationError("value has no JSON representation");
  return text;
}

function assertJsonValue(v: unknown, at: string, depth: number): void {
  if (depth > 64) throw new CanonicalizationError(`${at}: nested too deeply`);
  if (v === null || typeof v === "boolean") return;
  if (typeof v === "string") {
    if (!v.isWellFormed()) throw new CanonicalizationError(`${at}: not well-formed Unicode (lone surrogate)`);
    return;
  }
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new CanonicalizationError(`${at}: not a finite number`);
    return;
  }
  if (Array.isArray(v)) {
    v.forEach((x, i) => {
      assertJsonValue(x, `${at}[${i}]`, depth + 1);
    });
    return;
  }
  if (typeof v === "object") {
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) throw new CanonicalizationError(`${at}: not a plain object`);
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      if (!k.isWellFormed())
        throw new CanonicalizationError(`${at}: a key is not well-formed Unicode (lone surrogate)`);
      assertJsonValue(x, `${at}.${k}`, depth + 1);
    }
    return;
  }
  throw new CanonicalizationError(`${at}: ${typeof v} is not JSON`);
}
