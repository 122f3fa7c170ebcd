/** Errors the services raise for bad input or refused actions; edges map them to HTTP codes / CLI exits. */
export type ServiceErrorCode =
  | "invalid"
  | "not_found"
  | "conflict"
  | "unauthenticated"
  | "forbidden"
  | "locked"
  | "rate_limited"
  /** Existed but no longer available (an expired data-use delivery, issue 22): HTTP 410. */
  | "gone";

const STATUS: Record<ServiceErrorCode, number> = {
  invalid: 422,
  not_found: 404,
  conflict: 409,
  unauthenticated: 401,
  forbidden: 403,
  locked: 423,
  rate_limited: 429,
  gone: 410,
};

/**
 * One of several problems of one input (a CRF entry lists every problem at once): `field` as in `ServiceError.field`
 * ("data.sbp"), `message` a whole sentence naming the field's label ("Systolic BP is required"); `kind` "confirm"
 * for a value outside its expected range that the user may confirm.
 */
export interface Problem {
  field: string;
  message: string;
  kind?: "error" | "confirm";
}

export class ServiceError extends Error {
  constructor(
    readonly code: ServiceErrorCode,
    message: string,
    readonly field?: string,
    /** Every problem of the input, when there are several; `message` and `field` are then the first one's. */
    readonly problems?: Problem[],
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
