import type { LoaderFunctionArgs } from "@remix-run/node";
import { systemStatus } from "../../anchor-worker/anchor-worker.server.ts";

/** Public: log size and per-ledger anchoring status (for monitoring). */
export async function loader({ context }: LoaderFunctionArgs) {
  return Response.json(await systemStatus(context.ctx), { headers: { "cache-control": "no-store" } });
}
