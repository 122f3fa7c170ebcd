/**
 * Give a participant a complete consent quickly, through the paper path (ADR 0021): two investigators of the
 * participant's site (created once per site: one uploads the scan, the other attests it), and an approved consent
 * document (the study's current one, or a small one created once). Tests that save CRF data use it, because no
 * CRF data may be recorded before a complete consent.
 */
import { Readable } from "node:stream";
import { eq } from "drizzle-orm";
import type { AppContext } from "../../app/platform/context.server.ts";
import { getStudyOrThrow } from "../../app/studies/studies.server.ts";
import { participantBySubject } from "../../app/participants/find-participant.server.ts";
import { currentDocuments } from "../../app/consent/approved-documents.server.ts";
import { createApprovedConsentDocument } from "../../app/records/forms.server.ts";
import { createUser } from "../../app/accounts/users.server.ts";
import { principalForUser } from "../../app/accounts/auth.server.ts";
import { attestPaperConsent, hashScan, recordPaperConsent } from "../../app/consent/paper-consent.server.ts";
import { findUserByEmail } from "../../db/queries/users.ts";
import { sites } from "../../db/schema/index.ts";

const PASSWORD = "paper consent helper password 2026";
const meta = { ip: "127.0.0.1", userAgent: "vitest consent helper" };

export const HELPER_CONSENT_BODY = [
  "# Informed consent (test)",
  "",
  "## Purpose",
  "A test study's consent form, signed on paper.",
  "",
].join("\n");

async function investigator(ctx: AppContext, study: string, site: string, who: "upload" | "attest") {
  const email = `paper-${who}.${site}.${study}@consent-helper.test`.toLowerCase();
  const found = await findUserByEmail(ctx.db, email);
  const user =
    found ??
    (await createUser(
      ctx,
      { email, fullName: `Paper ${who} ${site}`, password: PASSWORD, role: "investigator", study, site },
      null,
    ));
  return (await principalForUser(ctx, user.id))!;
}

/**
 * A complete (scanned and attested) paper consent for `subject`, to the study's current consent document (one is
 * created when the study has none). Returns the paper consent's id.
 */
export async function giveCompleteConsent(ctx: AppContext, studyCode: string, subject: string): Promise<string> {
  const study = await getStudyOrThrow(ctx, studyCode);
  const p = await participantBySubject(ctx, study.id, subject);
  if (!p) throw new Error(`giveCompleteConsent: no subject ${subject} in ${studyCode}`);
  const [site] = await ctx.db.select().from(sites).where(eq(sites.id, p.siteId));
  let doc = [...(await currentDocuments(ctx, study.id)).values()][0];
  if (!doc) {
    await createApprovedConsentDocument(
      ctx,
      study.code,
      {
        code: "ICF",
        version: "1.0",
        title: "Informed consent form",
        bodyMarkdown: HELPER_CONSENT_BODY,
        irbName: "Test IRB",
        irbApprovedOn: "2026-01-15",
      },
      null,
    );
    doc = [...(await currentDocuments(ctx, study.id)).values()][0];
  }
  const uploader = await investigator(ctx, study.code, site.code, "upload");
  const attester = await investigator(ctx, study.code, site.code, "attest");
  const scan = await hashScan(Readable.from([Buffer.from(`scanned consent form of ${p.subjectCode}`)]));
  const paper = await recordPaperConsent(
    ctx,
    uploader,
    study.code,
    p.subjectCode,
    { document: doc.code, version: doc.version },
    scan,
  );
  await attestPaperConsent(ctx, attester, study.code, p.subjectCode, paper.id, { password: PASSWORD }, meta);
  return paper.id;
}
