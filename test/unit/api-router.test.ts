/** The /api/v1 fast path's dispatch (ADR 0042): which route module a path reaches, as Remix would route it. */
import type { AppLoadContext, ServerBuild } from "@remix-run/node";
import { describe, expect, it } from "vitest";
import { apiRoutes, callApiRoute, matchApiRoute } from "../../app/platform/api-router.server.ts";

const context = {} as AppLoadContext;
const loader = async () => Response.json({ ok: true });
const action = async () => Response.json({ saved: true }, { status: 201 });
const route = (id: string, path: string, module: Record<string, unknown>, parentId = "root") => ({
  [id]: { id, path, parentId, module },
});
const build = {
  entry: { module: {} },
  routes: {
    root: { id: "root", path: "", module: { default: () => null } },
    ...route("routes/api/records", "api/v1/studies/:code/records", { action }),
    ...route("routes/api/record", "api/v1/studies/:code/records/:id", { loader, action }),
    ...route("routes/api/batch", "api/v1/studies/:code/records/batch", { action }),
    ...route("routes/api/openapi", "api/v1/openapi.json", { loader }),
    ...route("routes/page", "studies/:code", { loader, default: () => null }),
    ...route("routes/api/splat", "api/v1/files/*", { loader }),
  },
} as unknown as ServerBuild;

describe("/api/v1 fast path dispatch", () => {
  const routes = apiRoutes(build);
  const at = (p: string) => matchApiRoute(routes, p);

  it("takes only the API's resource routes without splats", () => {
    expect(routes.map((r) => r.id).sort()).toEqual([
      "routes/api/batch",
      "routes/api/openapi",
      "routes/api/record",
      "routes/api/records",
    ]);
  });

  it("matches case-insensitively, with a trailing slash, a literal beating a parameter", () => {
    expect(at("/api/v1/studies/ABC/records")?.route.id).toBe("routes/api/records");
    expect(at("/API/V1/studies/ABC/records/")?.params).toEqual({ code: "ABC" });
    expect(at("/api/v1/studies/ABC/records/batch")?.route.id).toBe("routes/api/batch");
    expect(at("/api/v1/studies/ABC/records/r1")?.params).toEqual({ code: "ABC", id: "r1" });
    expect(at("/api/v1/openapi.json")?.route.id).toBe("routes/api/openapi");
    expect(at("/api/v1/openapiXjson")).toBeNull();
    expect(at("/api/v1/files/a")).toBeNull();
    expect(at("/studies/ABC")).toBeNull();
  });

  it("decodes each segment as Remix does (an encoded slash stays encoded); a bad escape is left to Remix", () => {
    expect(at("/api/v1/studies/A%20B/records")?.params).toEqual({ code: "A B" });
    expect(at("/api/v1/studies/A%2FB/records")?.params).toEqual({ code: "A%2FB" });
    expect(at("/api/v1/studies/%E0%A4%A/records")).toBeNull();
  });

  it("calls the loader for GET and the action otherwise; no function for the method: left to Remix", async () => {
    const get = new Request("http://x/api/v1/studies/A/records/r1");
    expect((await callApiRoute(build, at("/api/v1/studies/A/records/r1")!, get, context, true))?.status).toBe(200);
    const post = new Request("http://x/api/v1/studies/A/records", { method: "POST" });
    expect((await callApiRoute(build, at("/api/v1/studies/A/records")!, post, context, true))?.status).toBe(201);
    const getRecords = new Request("http://x/api/v1/studies/A/records");
    expect(await callApiRoute(build, at("/api/v1/studies/A/records")!, getRecords, context, true)).toBeNull();
  });

  it("a thrown Response is the answer; another error goes to handleError, then Remix's last-resort 500", async () => {
    const seen: unknown[] = [];
    const failing = {
      entry: { module: { handleError: (e: unknown) => seen.push(e) } },
      routes: {
        ...route("a", "api/v1/a", {
          loader: async () => {
            throw Response.json({ error: { code: "not_found" } }, { status: 404 });
          },
        }),
        ...route("b", "api/v1/b", {
          loader: async () => {
            throw new Error("boom");
          },
        }),
      },
    } as unknown as ServerBuild;
    const r = apiRoutes(failing);
    const a = await callApiRoute(
      failing,
      matchApiRoute(r, "/api/v1/a")!,
      new Request("http://x/api/v1/a"),
      context,
      true,
    );
    expect(a?.status).toBe(404);
    expect(await a?.json()).toEqual({ error: { code: "not_found" } });
    const b = await callApiRoute(
      failing,
      matchApiRoute(r, "/api/v1/b")!,
      new Request("http://x/api/v1/b"),
      context,
      true,
    );
    expect(b?.status).toBe(500);
    expect(await b?.text()).toBe("Unexpected Server Error");
    expect((seen[0] as Error).message).toBe("boom");
  });
});
