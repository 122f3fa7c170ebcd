/**
 * The data-use pages through the running portal (issue 22, ADR 0068-0070): an external researcher reaches only the
 * study's data-use requests (the studies list links there; every other study page is 403), asks for data (bad input
 * named on its field), the committee decides and makes a delivery (or is told why nothing can be delivered), the
 * researcher downloads it; another researcher gets 404 for the request.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Browser, cli, startPortal, type Portal } from "../helpers/portal.ts";
import { demoClone } from "../helpers/demo-snapshot.ts";

const PW = "amber otter winter forty-two";
let portal: Portal;
let drop: (() => Promise<void>) | undefined;
const res = () => new Browser(portal.url);
let researcher: Browser;
let other: Browser;
let committee: Browser;

beforeAll(async () => {
  const clone = await demoClone("pglite");
  drop = clone.drop;
  portal = await startPortal(clone.env);
  for (const [email, role] of [
    ["res@du.test", "external_researcher"],
    ["res2@du.test", "external_researcher"],
    ["dac@du.test", "data_access_committee"],
  ] as const) {
    const r = cli(
      ["users", "create", "--email", email, "--role", role, "--study", "DEMO-001", "--name", email, "--password-stdin"],
      clone.env,
      PW,
    );
    expect(r.code, r.stderr).toBe(0);
  }
  researcher = res();
  other = res();
  committee = res();
  expect((await researcher.signIn("res@du.test", PW)).status).toBe(302);
  expect((await other.signIn("res2@du.test", PW)).status).toBe(302);
  expect((await committee.signIn("dac@du.test", PW)).status).toBe(302); // enrols an authenticator
}, 300_000);
afterAll(async () => {
  await portal?.stop();
  await drop?.();
});

describe("data-use pages", () => {
  let requestPath = "";

  it("a researcher reaches the study's data-use requests only", async () => {
    const list = await researcher.get("/studies");
    expect(list.text).toContain('href="/studies/DEMO-001/data-requests"');
    for (const p of ["/studies/DEMO-001", "/studies/DEMO-001/participants", "/studies/DEMO-001/review"])
      expect((await researcher.get(p)).status, p).toBe(403);
    const page = await researcher.get("/studies/DEMO-001/data-requests");
    expect(page.status).toBe(200);
    expect(page.text).toContain("Ask for data");
  });

  it("asks for data: an unknown field is named; a good request opens its page", async () => {
    const page = await researcher.get("/studies/DEMO-001/data-requests");
    const field = /name="fields" value="([A-Z0-9_-]+\.[a-z0-9_]+)"/.exec(page.text)?.[1];
    expect(field, "a deliverable field of the demo's forms").toBeTruthy();
    const body = {
      purpose: "HRESCH",
      extraFields: "",
      fields: field as string,
      periodFrom: "2020-01-01",
      periodTo: "2099-12-31",
      institution: "Institute of Examples",
      justification: "Blood pressure across trials.",
    };
    const bad = await researcher.post("/studies/DEMO-001/data-requests", { ...body, extraFields: "VITALS.nope" });
    expect(bad.status).toBe(422);
    expect(bad.text).toContain("VITALS.nope is not a field of an approved form");
    const ok = await researcher.post("/studies/DEMO-001/data-requests", body);
    expect(ok.status).toBe(302);
    requestPath = ok.location ?? "";
    expect(requestPath).toMatch(/^\/studies\/DEMO-001\/data-requests\/[0-9a-f-]{36}$/);
    expect((await researcher.get(requestPath)).text).toContain("Awaiting the data access committee");
    expect((await other.get(requestPath)).status).toBe(404);
  });

  it("the committee decides, then delivers or is told why nothing can be; the researcher downloads", async () => {
    const page = await committee.get(requestPath);
    expect(page.status).toBe(200);
    expect(page.text).toContain("Record the decision");
    const decided = await committee.post(requestPath, {
      intent: "decide",
      outcome: "approved",
      expiresInDays: "30",
      reason: "Sound science",
    });
    expect(decided.status).toBe(200);
    const delivered = await committee.post(requestPath, { intent: "deliver" });
    if (delivered.status === 409) {
      // The demo's consent may govern no purpose: the reason is shown on the page.
      expect(delivered.text).toContain("Nothing can be delivered");
      return;
    }
    expect(delivered.status).toBe(200);
    const mine = await researcher.get(requestPath);
    const zip = /href="(\/studies\/DEMO-001\/data-requests\/[^"]+\/deliveries\/[0-9a-f-]{36}\.zip)"/.exec(
      mine.text,
    )?.[1];
    expect(zip).toBeTruthy();
    const dl = await researcher.get(zip as string);
    expect(dl.status).toBe(200);
    expect(dl.headers.get("content-type")).toBe("application/zip");
    expect((await other.get(zip as string)).status).toBe(404);
    expect((await committee.get(zip as string)).status).toBe(403);
  });
});
