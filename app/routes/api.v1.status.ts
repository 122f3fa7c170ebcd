import type { LoaderFunctionArgs } from "@remix-run/node";
import { systemStatus } from "../services/anchoring.server.ts";

/** Public: log size and per-ledger anchoring status (for monitoring). */
export async function loader({ context }: LoaderFunctionArgs) {
  return Response.json(await systemStatus(context.ctx), { headers: { "cache-control": "no-store" } });
}
