/** Study-scoped API tokens. The token is shown once; only its SHA-256 is stored. */
import { z } from "zod";
import { newToken, tokenHash } from "./secret-tokens.server.ts";
import {
  findApiTokenByName,
  findLiveApiToken,
  insertApiToken,
  listApiTokens,
  revokeApiToken,
} from "../../db/queries/sessions.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError, isUniqueViolation } from "../platform/errors.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { TOKEN_SCOPES, type Principal } from "../platform/permissions.server.ts";

export const TOKEN_PREFIX = "ts_";

export async function createApiToken(
  ctx: AppContext,
  input: { study: string; name: string; scopes?: string[] },
  actorId: string | null,
) {
  const name = z.string().trim().min(1, "name is required").max(100).safeParse(input.name);
  if (!name.success) throw new ServiceError("invalid", `name: ${name.error.issues[0].message}`, "name");
  const scopes = [...new Set(input.scopes ?? [])];
  const unknown = scopes.filter((x) => !(TOKEN_SCOPES as readonly string[]).includes(x));
  if (unknown.length)
    throw new ServiceError(
      "invalid",
      `scope: unknown scope ${unknown.join(", ")} (allowed: ${TOKEN_SCOPES.join(", ")})`,
      "scope",
    );
  const study = await getStudyOrThrow(ctx, input.study);
  const nameTaken = (other: string) =>
    new ServiceError(
      "conflict",
      `name: study ${study.code} already has a token named ${JSON.stringify(other)}; token names are unique per study`,
      "name",
    );
  const same = await findApiTokenByName(ctx.db, study.id, name.data);
  if (same) throw nameTaken(same.name);
  const token = newToken(TOKEN_PREFIX);
  const created = ctx.db.transaction(async (tx) => {
    const r = await insertApiToken(tx, {
      studyId: study.id,
      name: name.data,
      tokenHash: tokenHash(ctx.crypto, token),
      tokenPrefix: token.slice(0, 10),
      scopes,
      createdBy: actorId,
    });
    await audit(tx, {
      action: "token.create",
      actorUserId: actorId,
      studyId: study.id,
      detail: { token: r.id, name: name.data, scopes },
    });
    return r;
  });
  // A concurrent creation of the same name: the unique index (study_id, lower(name)) refused this one.
  const row = await created.catch((err) => {
    throw isUniqueViolation(err) ? nameTaken(name.data) : err;
  });
  return { token, id: row.id, study: study.code };
}

/** A study's tokens: name, shown prefix, scopes, created, last used, revoked (never the token or its hash). */
export async function listTokens(ctx: AppContext, studyCode: string) {
  const study = await getStudyOrThrow(ctx, studyCode);
  return { study: study.code, tokens: await listApiTokens(ctx.db, study.id) };
}

/**
 * Revoke a token (by id, or by the prefix `tokens list` shows): from this moment every request with it is a 401.
 * What it wrote stays, attributed to it.
 */
export async function revokeToken(ctx: AppContext, input: { study: string; token: string }, actorId: string | null) {
  const study = await getStudyOrThrow(ctx, input.study);
  const ref = /^[0-9a-f-]{36}$/i.test(input.token)
    ? { id: input.token.toLowerCase() }
    : /^ts_[A-Za-z0-9_-]{1,7}$/.test(input.token)
      ? { prefix: input.token }
      : null;
  if (!ref)
    throw new ServiceError("invalid", "token: give the token's id or the prefix `tokens list` shows (ts_...)", "token");
  return ctx.db.transaction(async (tx) => {
    const r = await revokeApiToken(tx, study.id, ref, new Date());
    if (!r) throw new ServiceError("not_found", `no live token ${input.token} in study ${study.code}`, "token");
    await audit(tx, {
      action: "token.revoke",
      actorUserId: actorId,
      studyId: study.id,
      detail: { token: r.id, name: r.name },
    });
    return { ...r, study: study.code };
  });
}

/** The principal for a Bearer token: acts with the integration roles within its one study. */
export async function tokenPrincipal(ctx: AppContext, token: string): Promise<Principal | null> {
  if (!token.startsWith(TOKEN_PREFIX) || token.length > 200) return null;
  const found = await findLiveApiToken(ctx.db, tokenHash(ctx.crypto, token));
  if (!found) return null;
  return {
    kind: "token",
    userId: null,
    label: `token:${found.token.tokenPrefix}`,
    token: { id: found.token.id, name: found.token.name },
    platformAdmin: false,
    scopes: found.token.scopes.filter((x): x is (typeof TOKEN_SCOPES)[number] =>
      (TOKEN_SCOPES as readonly string[]).includes(x),
    ),
    memberships: (["coordinator", "monitor"] as const).map((role) => ({
      role,
      studyId: found.token.studyId,
      studyCode: found.studyCode,
      siteId: null,
      siteCode: null,
    })),
  };
}
