/** The participant page's drug supply card (issue 21): kits dispensed, their returns, and whether to offer a kit. */
import type { AppContext } from "../platform/context.server.ts";
import { can, type Principal } from "../platform/permissions.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { participantSupply, supplyParticipant } from "./dispensing.server.ts";

export async function participantSupplyCard(ctx: AppContext, principal: Principal, studyCode: string, subject: string) {
  const study = await getStudyOrThrow(ctx, studyCode);
  const p = await supplyParticipant(ctx, principal, study.id, subject, "supply.view");
  const kits = await participantSupply(ctx, principal, study.code, p.subjectCode);
  return {
    study: study.code,
    site: p.siteCode,
    subject: p.subjectCode,
    kits: kits.map((k) => ({ ...k, dispensedAt: k.dispensedAt.toISOString() })),
    canDispense: can(principal, "supply.dispense", { studyId: study.id, siteId: p.siteId }),
  };
}
