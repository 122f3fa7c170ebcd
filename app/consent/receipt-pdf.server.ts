/**
 * The participant's consent receipt as a PDF: the signed document (its full text and SHA-256), every
 * signature manifestation (printed name, role, meaning, UTC time), each signature's seal status, withdrawals,
 * and a QR code to the consent's public verification page. Set in DejaVu Sans, which covers Latin, Greek and
 * Cyrillic scripts (the participant's language). The download is an audit event.
 */
import { existsSync } from "node:fs";
import PDFDocument from "pdfkit";
import { parseConsentDocument, type Block } from "./consent-document.ts";
import type { AppContext } from "../platform/context.server.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import { consentReceipt } from "./receipt.server.ts";
import type { OpenedInvitation } from "./invitation-state.server.ts";
import { qrPng } from "../platform/qr.server.ts";
import { sealText } from "../log/seal-text.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { toHex } from "../../anchoring/log/bytes.ts";

const utc = (iso: string) => `${iso.replace("T", " ").slice(0, 19)} UTC`;
const plain = (s: string) => s.replace(/\*\*(.+?)\*\*/g, "$1");

export async function consentReceiptPdf(ctx: AppContext, o: OpenedInvitation, baseUrl: string): Promise<Buffer> {
  const r = await consentReceipt(ctx, o, baseUrl);
  const { regular: font, bold: boldFont } = ctx.env.pdfFont;
  if (!existsSync(font)) throw new Error(`the PDF font ${font} is missing (install fonts-dejavu-core)`);
  const doc = new PDFDocument({
    size: "A4",
    margin: 50,
    info: { Title: `Consent receipt: ${r.study.code} ${r.document.code} ${r.document.version}`, Author: "TrialSeal" },
  });
  doc.registerFont("body", font);
  doc.registerFont("bold", existsSync(boldFont) ? boldFont : font);
  const chunks: Buffer[] = [];
  doc.on("data", (c: Buffer) => chunks.push(c));
  const done = new Promise<Buffer>((resolve) => doc.on("end", () => resolve(Buffer.concat(chunks))));

  doc.font("bold").fontSize(16).text("Consent receipt");
  doc.font("body").fontSize(10).text(`Study ${r.study.code}: ${r.study.title}`);
  doc.text(
    `Document: ${r.document.title} (${r.document.code}), ` +
      `version ${r.document.version}, language ${r.document.language}`,
  );
  doc.text(`Approved by ${r.document.irbName} on ${r.document.irbApprovedOn}. Document SHA-256: ${r.document.sha256}`);
  doc.text(`Status: ${r.summary}`);
  doc.moveDown();
  doc.font("bold").fontSize(12).text("Signatures");
  doc.font("body").fontSize(10);
  for (const s of r.signatures) {
    doc.text(
      `${s.printedName ?? "-"} (${s.role}), ${utc(s.signedAt)}: ${s.meaning}` +
        `${s.fromStaffDevice && s.role !== "staff" && s.role !== "witness" ? " [signed on a staff device]" : ""}`,
    );
    doc
      .fillColor("#555555")
      .text(`entry ${s.entryId}: ${sealText(s.seal)}`, { indent: 12 })
      .fillColor("black");
  }
  for (const w of r.withdrawals) {
    doc.text(
      `Withdrawal ${utc(w.at)}: ${
        w.scope === "full"
          ? "full"
          : `partial (${w.allows.followUp ? "follow-up continues" : "no follow-up"}${
              w.allows.optionalWithdrawn.length ? `; withdrawn: ${w.allows.optionalWithdrawn.join(", ")}` : ""
            })`
      }`,
    );
  }
  if (r.verifyUrl) {
    doc.moveDown();
    const y = doc.y;
    doc.image(await qrPng(r.verifyUrl), 50, y, { width: 110 });
    doc.text(`Anyone can check this consent, without seeing your name, at:\n${r.verifyUrl}`, 175, y + 30, {
      width: 370,
    });
    doc.x = 50;
    doc.y = y + 120;
  }
  doc.moveDown();
  doc.font("bold").fontSize(12).text("The document you signed");
  const parsed = parseConsentDocument(r.document.body);
  if (parsed.ok) {
    const blocks = (bs: Block[]) => {
      for (const b of bs) {
        if (b.type === "p") doc.font("body").fontSize(10).text(plain(b.text)).moveDown(0.3);
        else
          for (const it of b.items)
            doc
              .font("body")
              .fontSize(10)
              .text(`• ${plain(it)}`, { indent: 12 });
      }
    };
    if (parsed.doc.title) doc.font("bold").fontSize(11).text(parsed.doc.title).moveDown(0.3);
    blocks(parsed.doc.intro);
    for (const s of parsed.doc.sections) {
      doc.font("bold").fontSize(11).text(s.heading).moveDown(0.2);
      blocks(s.blocks);
      for (const q of s.questions) doc.font("body").fontSize(10).text(`Question: ${q.text}`, { indent: 12 });
      for (const item of s.optional) {
        const mine = r.signatures.find((x) => x.primary)?.options[item.key];
        doc
          .font("body")
          .fontSize(10)
          .text(`Optional: ${plain(item.text)} — ${mine === undefined ? "-" : mine ? "Yes" : "No"}`, { indent: 12 });
      }
      doc.moveDown(0.4);
    }
  }
  doc.end();
  const pdf = await done;
  // Not reproducible byte for byte: its SHA-256 is sealed with the audit event (ADR 0019).
  await ctx.db.transaction(async (tx) => {
    const e = await appendEntry(tx, ctx.crypto, o.study, "document.generated", {
      document: "consent_receipt",
      subject: o.participant.subjectCode,
      invitation: o.invitation.id,
      sha256: toHex(ctx.crypto.sha256(pdf)),
      bytes: pdf.length,
      actor: null,
    });
    await audit(tx, {
      action: "consent.receipt_pdf",
      studyId: o.study.id,
      siteId: o.participant.siteId,
      participantId: o.participant.id,
      detail: { invitation: o.invitation.id, bytes: pdf.length, entry: e.id },
    });
  });
  return pdf;
}
