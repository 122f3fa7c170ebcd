/**
 * The randomization page takes an uploaded list of up to 5 MB (app/randomization/lists.server.ts MAX_UPLOAD_BYTES,
 * ADR 0052): the body limit (app/platform/body-limit.server.ts) must let such a post through to the page, which
 * answers it, instead of the 64 KB form limit's 413; a body over the upload's size is still refused with 413.
 */
import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bodyLimitFor } from "../../app/platform/body-limit.server.ts";
import { MAX_UPLOAD_BYTES } from "../../app/randomization/lists.server.ts";
import { demoClone } from "../helpers/demo-snapshot.ts";
import { type Portal, startPortal } from "../helpers/portal.ts";

let portal: Portal;

beforeAll(async () => {
  portal = await startPortal({ DATA_DIR: (await demoClone("pglite")).dataDir });
});
afterAll(async () => {
  await portal?.stop();
});

/** A multipart post of a CSV of `bytes` bytes to the randomization page (no session: the page answers, not 413). */
async function postList(bytes: number) {
  const form = new FormData();
  form.set("intent", "upload");
  form.set("csv", new Blob(["x".repeat(bytes)], { type: "text/csv" }), "list.csv");
  return fetch(`${portal.url}/studies/DEMO-001/randomization`, {
    method: "POST",
    headers: { origin: portal.url },
    body: form,
    redirect: "manual",
  });
}

/** The status of a post that declares `bytes` of body and sends none: the limit answers from the header alone. */
function declaredPost(path: string, bytes: number) {
  const u = new URL(portal.url);
  return new Promise<number>((resolve, reject) => {
    const req = httpRequest({
      host: u.hostname,
      port: u.port,
      method: "POST",
      path,
      headers: {
        "content-type": "multipart/form-data; boundary=x",
        "content-length": String(bytes),
        origin: portal.url,
      },
    });
    req.on("response", (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
      req.destroy();
    });
    req.on("error", reject);
    req.flushHeaders();
  });
}

describe("the randomization page's upload and the body limit", () => {
  it("documents room for a 5 MB list (the page and its .data twin)", () => {
    expect(bodyLimitFor("/studies/S-1/randomization")).toBeGreaterThan(MAX_UPLOAD_BYTES);
    expect(bodyLimitFor("/studies/S-1/randomization.data")).toBeGreaterThan(MAX_UPLOAD_BYTES);
    expect(bodyLimitFor("/studies/S-1/randomization/x")).toBe(64 * 1024);
  });

  it("a 1 MB list reaches the page (not 413); a 6 MB body is refused with 413", async () => {
    const ok = await postList(1024 * 1024);
    expect(ok.status).not.toBe(413);
    expect(await ok.text()).not.toMatch(/too large/);
    expect(await declaredPost("/studies/DEMO-001/randomization", 6 * 1024 * 1024)).toBe(413);
  });
});
