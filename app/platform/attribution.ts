/**
 * Who made a write: a user (by id) or a study API token (by id and its name at the time). Token writes carry the
 * token in the data row, the ledger payload (`token`), the audit trail and every export, never as "integration".
 */
import type { Principal } from "./permissions.server.ts";

export interface TokenRef {
  id: string;
  name: string;
}

/** The token a principal acts with, or undefined for a user. */
export function principalToken(p: Principal): TokenRef | undefined {
  return p.kind === "token" && p.token ? { id: p.token.id, name: p.token.name } : undefined;
}

/** How a token is shown: "API token <name> (<first 8 of its id>)". */
export function tokenLabel(t: TokenRef): string {
  return `API token ${t.name} (${t.id.slice(0, 8)})`;
}

/** The payload's attribution: `actor` (the user or null) and, for a token, `token` (absent otherwise). */
export function payloadActor(p: Principal): { actor: string | null; token?: TokenRef } {
  const token = principalToken(p);
  return token ? { actor: null, token } : { actor: p.userId };
}

/** A data row's attribution columns (actor_token_id, actor_token_name). */
export function rowTokenColumns(p: Principal): { actorTokenId: string | null; actorTokenName: string | null } {
  const token = principalToken(p);
  return { actorTokenId: token?.id ?? null, actorTokenName: token?.name ?? null };
}

/** An audit event's actor: the user, or the token's label (and `detail.token`). */
export function auditActor(p: Principal): { actorUserId: string | null; actorLabel: string } {
  const token = principalToken(p);
  return { actorUserId: p.userId, actorLabel: token ? tokenLabel(token) : p.label };
}

/** The `detail` of an audit event of a write, with the token when it was made with one. */
export function auditDetail(p: Principal, detail: Record<string, unknown> = {}): Record<string, unknown> {
  const token = principalToken(p);
  return token ? { ...detail, token } : detail;
}
