/**
 * The demo study's documents (ADR 0048): a protocol version 1.0 and a SAP version 1.0, small PDFs made here with
 * pdfkit, and the protocol's approval at the study's first site, so that the demo's record pages show the protocol
 * in force. Registered through the services, as the study's admin would.
 */
import PDFDocument from "pdfkit";
import { asc, eq } from "drizzle-orm";
import { sites } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import type { Principal } from "../platform/permissions.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { approveAtSite, registerDocument } from "./study-documents.server.ts";

/** A one-page PDF with a title and a few lines (the built-in Helvetica: no font file needed). */
export async function demoPdf(title: string, lines: readonly string[]): Promise<Uint8Array> {
  // A fixed creation date, so the same demo document has the same bytes (and SHA-256) wherever it is made.
  const doc = new PDFDocument({ size: "A4", margin: 50, info: { Title: title, CreationDate: new Date(0) } });
  const chunks: Buffer[] = [];
  doc.on("data", (c: Buffer) => chunks.push(c));
  const done = new Promise<Buffer>((resolve) => doc.on("end", () => resolve(Buffer.concat(chunks))));
  doc.fontSize(16).text(title);
  doc.moveDown();
  doc.fontSize(10);
  for (const l of lines) doc.text(l);
  doc.end();
  return new Uint8Array(await done);
}

export async function seedDemoDocuments(ctx: AppContext, admin: Principal, studyCode: string) {
  const study = await getStudyOrThrow(ctx, studyCode);
  const protocol = await registerDocument(
    ctx,
    admin,
    study.code,
    { type: "protocol", version: "1.0", approvedOn: "2026-01-10", approvingBody: "Demo Central Ethics Committee" },
    {
      fileName: `${study.code}-protocol-1.0.pdf`,
      content: await demoPdf(`${study.title}: protocol version 1.0`, [
        `Study ${study.code}. A demonstration protocol: not a real trial.`,
        "Objective: compare seated systolic blood pressure at week 12 between the two arms.",
        "Design: randomized, double-blind, parallel groups, permuted blocks stratified by site.",
      ]),
    },
  );
  const sap = await registerDocument(
    ctx,
    admin,
    study.code,
    { type: "sap", version: "1.0", approvedOn: "2026-01-12", approvingBody: "Demo sponsor's trial steering committee" },
    {
      fileName: `${study.code}-sap-1.0.pdf`,
      content: await demoPdf(`${study.title}: statistical analysis plan version 1.0`, [
        `Study ${study.code}. A demonstration analysis plan: not a real trial.`,
        "Primary outcome: change in seated systolic blood pressure from baseline to week 12 (ANCOVA).",
      ]),
    },
  );
  const [site] = await ctx.db
    .select({ code: sites.code })
    .from(sites)
    .where(eq(sites.studyId, study.id))
    .orderBy(asc(sites.code))
    .limit(1);
  const approval = site
    ? await approveAtSite(ctx, admin, study.code, { document: protocol.id, site: site.code, approvedOn: "2026-01-14" })
    : null;
  return { protocol, sap, approval };
}
