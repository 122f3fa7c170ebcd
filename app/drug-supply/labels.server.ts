/**
 * Kit labels (issue 21, ADR 0065): a PDF sheet of labels for the kits of one lot (pdfkit, qrcode). Each label says
 * the study, "Investigational product - for clinical trial use only", the product as labelled, the kit number, units
 * and expiry, and carries a QR code of the public kit check `${PUBLIC_URL}/kits/<label token>` (ADR 0060). No kit type,
 * lot number or arm is printed: a blinded pharmacist handles the kit. Only the depot manager prints labels.
 */
import { existsSync } from "node:fs";
import { asc, eq } from "drizzle-orm";
import PDFDocument from "pdfkit";
import { supplyKits } from "../../db/schema/index.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { auditActor } from "../platform/attribution.ts";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { can, type Principal } from "../platform/permissions.server.ts";
import { qrPng } from "../platform/qr.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { lotByNumber } from "./lots.server.ts";

/** The statement every label carries. */
export const LABEL_STATEMENT = "Investigational product - for clinical trial use only";

/** The public kit check a label's QR code opens. */
export const kitCheckUrl = (publicUrl: string, labelToken: string) =>
  `${publicUrl.replace(/\/+$/, "")}/kits/${labelToken}`;

// A4 in points, two columns of four labels.
const PAGE = { width: 595.28, height: 841.89, margin: 36 };
const COLS = 2;
const ROWS = 4;
const GAP = 12;
const LABEL_W = (PAGE.width - 2 * PAGE.margin - (COLS - 1) * GAP) / COLS;
const LABEL_H = (PAGE.height - 2 * PAGE.margin - (ROWS - 1) * GAP) / ROWS;
const QR = 96;

/** The label sheet of a lot's kits (supply.manage), in kit-number order; an audit event records the printing. */
export async function labelSheetPdf(
  ctx: AppContext,
  principal: Principal,
  studyCode: string,
  input: { lotNumber: string },
): Promise<Uint8Array<ArrayBuffer>> {
  const study = await getStudyOrThrow(ctx, studyCode);
  if (!can(principal, "supply.manage", { studyId: study.id }))
    throw new ServiceError("forbidden", "not permitted: supply.manage (only the depot manager prints kit labels)");
  const lot = await lotByNumber(ctx.db, study, input.lotNumber);
  const kits = await ctx.db
    .select({ number: supplyKits.number, units: supplyKits.units, labelToken: supplyKits.labelToken })
    .from(supplyKits)
    .where(eq(supplyKits.lotId, lot.id))
    .orderBy(asc(supplyKits.number));
  if (kits.length === 0)
    throw new ServiceError(
      "conflict",
      `Lot number: lot ${lot.lotNumber} has no kits yet: register kits first`,
      "lotNumber",
    );
  const { regular, bold } = ctx.env.pdfFont;
  const doc = new PDFDocument({
    size: "A4",
    margin: PAGE.margin,
    autoFirstPage: false,
    info: { Title: `Kit labels: ${study.code}`, Author: "TrialSeal" },
  });
  const hasFont = existsSync(regular);
  doc.registerFont("body", hasFont ? regular : "Helvetica");
  doc.registerFont("bold", hasFont && existsSync(bold) ? bold : hasFont ? regular : "Helvetica-Bold");
  const chunks: Buffer[] = [];
  doc.on("data", (c: Buffer) => chunks.push(c));
  const done = new Promise<Buffer>((resolve) => doc.on("end", () => resolve(Buffer.concat(chunks))));
  const perPage = COLS * ROWS;
  for (let i = 0; i < kits.length; i++) {
    const k = kits[i];
    const slot = i % perPage;
    if (slot === 0) doc.addPage();
    const x = PAGE.margin + (slot % COLS) * (LABEL_W + GAP);
    const y = PAGE.margin + Math.floor(slot / COLS) * (LABEL_H + GAP);
    doc.save().lineWidth(0.5).strokeColor("#888888").rect(x, y, LABEL_W, LABEL_H).stroke().restore();
    const pad = 8;
    const textW = LABEL_W - QR - 3 * pad;
    const url = kitCheckUrl(ctx.env.publicUrl, k.labelToken);
    doc.image(await qrPng(url), x + LABEL_W - QR - pad, y + pad, { width: QR, height: QR });
    doc
      .fillColor("black")
      .font("bold")
      .fontSize(10)
      .text(`Study ${study.code}`, x + pad, y + pad, { width: textW });
    doc.font("body").fontSize(7.5).text(LABEL_STATEMENT, { width: textW });
    doc.moveDown(0.4).fontSize(8.5).text(lot.product, { width: textW, height: 40, ellipsis: true });
    doc.moveDown(0.4).font("bold").fontSize(15).text(`Kit ${k.number}`, { width: textW });
    doc.font("body").fontSize(9).text(`Units: ${k.units}`, { width: textW });
    doc.text(`Expiry: ${lot.expiresOn}`, { width: textW });
    doc
      .fontSize(6)
      .fillColor("#444444")
      .text(`Check this kit: scan the code or open ${url}`, x + pad, y + LABEL_H - pad - 18, {
        width: LABEL_W - 2 * pad,
      })
      .fillColor("black");
  }
  doc.end();
  const pdf = await done;
  // The audit trail is read by blinded roles: the lot and a count, never which kits are of it.
  await audit(ctx.db, {
    action: "supply.labels_printed",
    ...auditActor(principal),
    studyId: study.id,
    detail: { lot: lot.id, lotNumber: lot.lotNumber, labels: kits.length, bytes: pdf.length },
  });
  return new Uint8Array(pdf);
}
