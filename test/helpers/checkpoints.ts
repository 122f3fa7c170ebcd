/** Real signed checkpoints (C2SP notes) for ledger tests that need no database. */
import { nodeCrypto, nodeSigner } from "../../anchoring/adapters/crypto-node.ts";
import { checkpointHash, checkpointText, signNote } from "../../anchoring/log/checkpoint.ts";

export const ORIGIN = "trialseal.test/log";
const logKey = nodeSigner(new Uint8Array(32).fill(9));

export function note(n: number): string {
  const root = nodeCrypto.sha256(new TextEncoder().encode(`root ${n}`));
  return signNote(nodeCrypto, checkpointText({ origin: ORIGIN, treeSize: n, root }), ORIGIN, logKey);
}
export const hashOf = (n: number) => checkpointHash(nodeCrypto, note(n));
export const req = (n: number) => ({ origin: ORIGIN, treeSize: n, checkpointHash: hashOf(n), note: note(n) });
export const cp = (n: number) => ({ note: note(n), treeSize: n, origin: ORIGIN });
