import type { LoaderFunctionArgs } from "@remix-run/node";
import { deploymentTrustPolicy } from "../../anchor-worker/anchor-worker.server.ts";

/** Public: this deployment's trust policy. Verifiers must pin its SHA-256; never trust it unpinned. */
export async function loader({ context }: LoaderFunctionArgs) {
  const { ctx } = context;
  return new Response(`${JSON.stringify(deploymentTrustPolicy(ctx), null, 2)}\n`, {
    headers: { "content-type": "application/json" },
  });
}
