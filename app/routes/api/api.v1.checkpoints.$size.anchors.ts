import type { LoaderFunctionArgs } from "@remix-run/node";
import { checkpointAnchors } from "../../log/proofs.server.ts";
import { apiError } from "../../platform/api.server.ts";

/** Public: a checkpoint with the receipts of its final anchors (no study data), for monitors and auditors. */
export async function loader({ context, params }: LoaderFunctionArgs) {
  const size = String(params.size ?? "");
  if (!/^\d{1,15}$/.test(size)) return apiError(400, "invalid", "size: must be a whole number", "size");
  const found = await checkpointAnchors(context.ctx, Number(size));
  if (!found) return apiError(404, "not_found", `no checkpoint of size ${size}`);
  const { checkpoint: cp, anchors } = found;
  return Response.json(
    {
      treeSize: cp.treeSize,
      note: cp.noteText,
      anchors: anchors.map((a) => ({ ledger: a.ledger, receipt: JSON.parse(a.receiptText!) })),
    },
    { headers: { "cache-control": "no-store" } },
  );
}
