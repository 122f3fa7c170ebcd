/**
 * A refused service call (ServiceError) as a response, in the portal's two flavours: a page's action data, and
 * the JSON API's error body. Anything that is not a ServiceError is rethrown (Remix answers 500).
 */
import { json } from "@remix-run/node";
import { apiError } from "./api.server.ts";
import { ServiceError } from "./errors.server.ts";

/**
 * For pages: `{ ...extra, error: message, field, problems }` with the error's status (422 invalid, 404, 409, 423, ...);
 * `field` is the error's field, else `fallbackField`. The page shows `error` and marks `field` aria-invalid.
 */
export function serviceErrorResponse<const E extends object = Record<never, never>>(
  err: unknown,
  extra?: E,
  fallbackField: string | null = null,
) {
  if (!(err instanceof ServiceError)) throw err;
  return json(
    { ...(extra as E), error: err.message, field: err.field ?? fallbackField, problems: err.problems ?? null },
    { status: err.status },
  );
}

/** For the JSON API: `{"error":{code,message,field?,problems?}}` with the error's status. */
export function apiServiceErrorResponse(err: unknown): Response {
  if (!(err instanceof ServiceError)) throw err;
  return apiError(err.status, err.code, err.message, err.field, err.problems);
}
