/**
 * The randomization pages over HTTP against the built portal (ADR 0052/0053), on PostgreSQL, on a study of its own (the
 * demo study's list is already committed): its staff and a consented participant are made through the services on the
 * portal's database. The unblinded statistician enters a design (a bad one is refused naming the field), generates a
 * draft, previews and commits it; a coordinator sees that a list is committed and the allocations per stratum,
 * randomizes a consented participant from the participant page (a missing factor named) and sees the randomization
 * number, never an arm or a kit type; an investigator of the site unblinds that participant in an emergency (reason and
 * confirmation required) and then sees the arm.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { enrollParticipant } from "../../app/participants/participants.server.ts";
import { type AppContext, createAppContext } from "../../app/platform/context.server.ts";
import { parseEnv } from "../../app/platform/env.server.ts";
import { createStudy } from "../../app/studies/studies.server.ts";
import { giveCompleteConsent } from "../helpers/consent.ts";
import { createScratchPostgres } from "../helpers/db.ts";
import { Browser, startPortal, tempDataDir, type Portal } from "../helpers/portal.ts";
import { createStaff, STAFF_PASSWORD } from "../helpers/study-staff.ts";

const CODE = "RANDPAGE-1";
const DOMAIN = "randpage.test";
let scratch: { url: string; drop: () => Promise<void> };
let portal: Portal;
let ctx: AppContext;
const PAGE = `/studies/${CODE}/randomization`;
let SUBJECT = "";
const SECRET = /ZOLVATREX|PLACEBOQ|KIT-ZOLVA|KIT-PLACQ|Zolvatrex/;

const design = {
  arms: "ZOLVATREX, Zolvatrex 10 mg, 1\nPLACEBOQ, Placebo, 1",
  blockSizes: "4, 6",
  factor1Name: "sex",
  factor1Label: "Sex",
  factor1Levels: "F, M",
  factor2Name: "",
  factor2Label: "",
  factor2Levels: "",
  sites: "SITE-01",
  slotsPerStratum: "20",
  kitTypes: "KIT-ZOLVA = ZOLVATREX\nKIT-PLACQ = PLACEBOQ",
  source: "generate",
};

beforeAll(async () => {
  scratch = await createScratchPostgres({ migrated: true });
  const env = {
    DATA_DIR: tempDataDir(),
    DATABASE_URL: scratch.url,
    SESSION_SECRET: "randomization-page-test-session-secret-0123456789",
    DATA_KEY: "37".repeat(32),
    SEED_DEMO: "false",
  };
  portal = await startPortal(env);
  ctx = await createAppContext(parseEnv({ ...env, NODE_ENV: "development" }, { createDevSecrets: false }), {
    migrate: false,
  });
  await createStudy(
    ctx,
    { code: CODE, title: "Randomization pages", sites: [{ code: "SITE-01", name: "Site 1" }] },
    null,
  );
  const staff = await createStaff(ctx, CODE, DOMAIN, [
    ["statistician", "unblinded_statistician"],
    ["coordinator", "coordinator", "SITE-01"],
    ["investigator", "investigator", "SITE-01"],
  ]);
  const { subjectCode } = await enrollParticipant(ctx, staff.principals.investigator, { study: CODE, site: "SITE-01" });
  await giveCompleteConsent(ctx, CODE, subjectCode);
  SUBJECT = `/studies/${CODE}/participants/${subjectCode}`;
}, 240_000);
afterAll(async () => {
  await ctx?.database.close();
  await portal?.stop();
  await scratch?.drop();
});

async function signedIn(key: string) {
  const b = new Browser(portal.url);
  expect((await b.signIn(`${key}@${DOMAIN}`, STAFF_PASSWORD)).status).toBe(302);
  return b;
}

describe("the randomization pages", () => {
  it("statistician commits a list; blinded staff randomize and see numbers only; emergency unblinding", async () => {
    const stat = await signedIn("statistician");
    const empty = await stat.get(PAGE);
    expect(empty.status).toBe(200);
    expect(empty.text).toContain("No randomization list has been committed yet");
    const bad = await stat.post(PAGE, { ...design, blockSizes: "5" });
    expect(bad.status).toBe(422);
    expect(bad.text).toContain("block sizes (0): block size 5 is not a multiple of 2");
    // A new draft: straight to its preview.
    const made = await stat.post(PAGE, design);
    expect(made.status, made.text).toBe(302);
    const listId = /\?preview=([0-9a-f-]{36})&made=generated/.exec(made.location ?? "")?.[1];
    expect(listId).toBeDefined();
    const preview = await stat.get(made.location ?? "");
    expect(preview.text).toContain(`data-preview="${listId}"`);
    expect(preview.text).toContain("Zolvatrex 10 mg");
    expect(preview.text).toContain("A list was generated from a new random seed");
    // Committing is final: refused without the confirmation, named.
    const unconfirmed = await stat.post(PAGE, { intent: "commit", list: String(listId) });
    expect(unconfirmed.status).toBe(422);
    expect(unconfirmed.text).toContain("I understand that committing is final");
    const committed = await stat.post(PAGE, { intent: "commit", list: String(listId), confirm: "on" });
    expect(committed.status, committed.text).toBe(200);
    expect(committed.text).toContain("The randomization list is committed and sealed");
    const after = await stat.get(PAGE);
    expect(after.text).toMatch(/data-committed="yes"/);
    expect(after.text).toMatch(/<code>[0-9a-f]{64}<\/code>/); // the statistician sees the committed roots

    const coord = await signedIn("coordinator");
    const seen = await coord.get(PAGE);
    expect(seen.status).toBe(200);
    expect(seen.text).toMatch(/data-committed="yes"/);
    expect(seen.text).not.toMatch(SECRET);
    expect(seen.text).not.toMatch(/[0-9a-f]{64}/);
    const missing = await coord.post(SUBJECT, { intent: "randomize" });
    expect(missing.status).toBe(422);
    expect(missing.text).toContain("Sex: choose one of F, M");
    const randomized = await coord.post(SUBJECT, { intent: "randomize", "factor:sex": "F" });
    expect(randomized.status, randomized.text).toBe(302);
    const page = await coord.get(SUBJECT);
    expect(page.text).toMatch(/data-randomization-number="?[^>]*>R01-0001</);
    expect(page.text).toContain("The treatment arm is blinded.");
    expect(page.text).not.toMatch(SECRET);
    expect(page.text).not.toContain("data-emergency-unblind-form");

    const inv = await signedIn("investigator");
    const blinded = await inv.get(SUBJECT);
    expect(blinded.text).toContain("data-emergency-unblind-form");
    expect(blinded.text).not.toMatch(SECRET);
    const noConfirm = await inv.post(SUBJECT, { intent: "emergency_unblind", reason: "Anaphylaxis" });
    expect(noConfirm.status).toBe(422);
    expect(noConfirm.text).toContain("tick the box to confirm");
    const noReason = await inv.post(SUBJECT, { intent: "emergency_unblind", reason: " ", confirm: "yes" });
    expect(noReason.status).toBe(422);
    expect(noReason.text).toContain("reason: give the medical reason");
    const done = await inv.post(SUBJECT, { intent: "emergency_unblind", reason: "Anaphylaxis", confirm: "yes" });
    expect(done.status, done.text).toBe(302);
    const open = await inv.get(SUBJECT);
    expect(open.text).toMatch(/data-arm="(ZOLVATREX|PLACEBOQ)"/);
    expect(open.text).toContain("data-emergency-unblinded");
    // The coordinator still sees the number only.
    expect((await coord.get(SUBJECT)).text).not.toMatch(SECRET);
  });
});
