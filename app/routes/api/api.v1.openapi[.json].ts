import { OPENAPI } from "../../platform/openapi.ts";

/** Public: the OpenAPI 3.1 description of the API. */
export async function loader() {
  return Response.json(OPENAPI, { headers: { "cache-control": "public, max-age=300" } });
}
