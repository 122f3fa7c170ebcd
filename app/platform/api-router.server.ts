/**
 * The `/api/v1` fast path (ADR 0042): the portal calls the API's route modules itself, before Remix's request
 * handler, skipping Remix's per-request route matching (it flattens and ranks every route of the portal on each
 * request) and its response processing. The route modules are the ones in the Remix server build
 * (`build.routes[id].module`), so their module state, services, permissions and error bodies are the very same;
 * only the dispatch differs. A request this path does not answer exactly as Remix would (a method the module has
 * no function for, an ambiguous path, `?_data`, HEAD) is left to Remix.
 */
import type { AppLoadContext, ServerBuild } from "@remix-run/node";

type RouteFn = (args: { request: Request; params: Record<string, string>; context: AppLoadContext }) => unknown;

interface ApiRoute {
  id: string;
  path: string;
  pattern: RegExp;
  names: string[];
  /** Static segments: the more, the more specific (a literal beats a parameter, as in Remix). */
  statics: number;
  loader?: RouteFn;
  action?: RouteFn;
}

export interface ApiMatch {
  route: ApiRoute;
  params: Record<string, string>;
}

/** The resource routes of the build under `/api/v1/` (their full path: the parents' paths joined). */
export function apiRoutes(build: ServerBuild, prefix = "api/v1/"): ApiRoute[] {
  const routes = build.routes;
  const parents = new Set(Object.values(routes).map((r) => r.parentId));
  const out: ApiRoute[] = [];
  for (const r of Object.values(routes)) {
    const parts: string[] = [];
    for (let at: typeof r | undefined = r; at; at = at.parentId ? routes[at.parentId] : undefined)
      if (at.path) parts.unshift(at.path.replace(/^\/+|\/+$/g, ""));
    const full = parts.join("/");
    const mod = r.module as unknown as Record<string, unknown>;
    if (!full.startsWith(prefix) || parents.has(r.id) || mod.default != null || mod.ErrorBoundary != null) continue;
    const segments = full.split("/");
    // Only plain segments and :params (no splats or optional segments): anything else stays with Remix.
    if (segments.some((s) => s === "*" || s.endsWith("?") || (s.includes(":") && !/^:[\w-]+$/.test(s)))) continue;
    const names: string[] = [];
    const source = segments
      .map((s) => {
        if (s.startsWith(":")) {
          names.push(s.slice(1));
          return "([^\\/]+)";
        }
        return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      })
      .join("\\/");
    out.push({
      id: r.id,
      path: `/${full}`,
      // Remix matches paths case-insensitively and with an optional trailing slash.
      pattern: new RegExp(`^\\/${source}\\/*$`, "i"),
      names,
      statics: segments.length - names.length,
      loader: typeof mod.loader === "function" ? (mod.loader as RouteFn) : undefined,
      action: typeof mod.action === "function" ? (mod.action as RouteFn) : undefined,
    });
  }
  return out;
}

/** The one most specific API route for `pathname` (the raw, still %-encoded path), or null. */
export function matchApiRoute(routes: ApiRoute[], pathname: string): ApiMatch | null {
  let decoded: string;
  try {
    // As Remix does: each segment decoded, an encoded "/" kept encoded.
    decoded = pathname
      .split("/")
      .map((v) => decodeURIComponent(v).replace(/\//g, "%2F"))
      .join("/");
  } catch {
    return null;
  }
  let best: ApiMatch | null = null;
  let tie = false;
  for (const route of routes) {
    const m = route.pattern.exec(decoded);
    if (!m) continue;
    if (best && route.statics === best.route.statics) tie = true;
    if (!best || route.statics > best.route.statics) {
      tie = false;
      best = { route, params: Object.fromEntries(route.names.map((n, i) => [n, m[i + 1]])) };
    }
  }
  return tie ? null : best;
}

/**
 * Call the matched route's loader (GET) or action (other methods) as Remix would for a resource route: a returned
 * or thrown Response is the answer; any other error goes to the build's handleError and becomes Remix's
 * last-resort 500. Null when the module has no function for the method (Remix answers that).
 */
export async function callApiRoute(
  build: ServerBuild,
  match: ApiMatch,
  request: Request,
  context: AppLoadContext,
  production: boolean,
): Promise<Response | null> {
  const fn = request.method === "GET" ? match.route.loader : match.route.action;
  if (!fn || request.method === "HEAD") return null;
  try {
    const result = await fn({ request, params: match.params, context });
    return result instanceof Response ? result : Response.json(result);
  } catch (err) {
    if (err instanceof Response) {
      try {
        err.headers.set("X-Remix-Catch", "yes");
      } catch {
        // immutable headers (Response.redirect): Remix copies the response then; the header is informative only
      }
      return err;
    }
    const handleError = build.entry.module.handleError;
    if (handleError) handleError(err, { request, params: match.params, context });
    else if (!request.signal.aborted) console.error(err);
    const message = `Unexpected Server Error${production ? "" : `\n\n${String(err)}`}`;
    return new Response(message, { status: 500, headers: { "Content-Type": "text/plain" } });
  }
}
