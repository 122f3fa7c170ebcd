/** Errors the services raise for bad input or refused actions; edges map them to HTTP codes / CLI exits. */
export type ServiceErrorCode =
  | "invalid"
  | "not_found"
  | "conflict"
  | "unauthenticated"
  | "forbidden"
  | "locked"
  | "rate_limited";

const STATUS: Record<ServiceErrorCode, number> = {
  invalid: 422,
  not_found: 404,
  conflict: 409,
  unauthenticated: 401,
  forbidden: 403,
  locked: 423,
  rate_limited: 429,
};

export class ServiceError extends Error {
  constructor(
    readonly code: ServiceErrorCode,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = "ServiceError";
  }
  get status(): number {
    return STATUS[this.code];
  }
}

/** PostgreSQL unique violation (both engines report SQLSTATE 23505). */
export function isUniqueViolation(err: unknown): boolean {
  let e: unknown = err;
  for (let i = 0; i < 4 && e; i++) {
    if ((e as { code?: string }).code === "23505") return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}
