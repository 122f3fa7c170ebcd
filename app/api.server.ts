/** Helpers for the JSON API: errors as {"error":{code,message,field?}}, and session-or-token principals. */
import type { AppContext } from "./services/context.server.ts";
import { tokenPrincipal } from "./services/tokens.server.ts";
import { sessionPrincipal } from "./services/auth.server.ts";
import { sessionToken } from "./session.server.ts";
import type { Principal } from "./services/permissions.server.ts";

export function apiError(status: number, code: string, message: string, field?: string) {
  return Response.json({ error: { code, message, ...(field ? { field } : {}) } }, { status });
}

export async function apiPrincipal(request: Request, ctx: AppContext): Promise<Principal | null> {
  const auth = request.headers.get("authorization");
  if (auth) {
    const m = /^Bearer (\S+)$/.exec(auth);
    return m ? tokenPrincipal(ctx, m[1]) : null;
  }
  const token = await sessionToken(request, ctx);
  return token ? sessionPrincipal(ctx, token) : null;
}
