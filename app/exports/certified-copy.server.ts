/**
 * Certified copy of a subject's casebook (21 CFR 11.10(b)): a human-readable PDF with every record's values,
 * its full audit trail (who, when, what changed, why, the protocol version in force at the site then), signature
 * manifestations, queries, and the proof reference (ledger entry id, seq and batch) of every version, so each can
 * be checked with `trialseal verify`.
 * The export itself is an audit event. Text is set in DejaVu Sans (covers Latin, Greek and Cyrillic).
 */
import { PRIMARY_USE_CHOICES } from "../data-sharing/choices-statement.ts";
import { existsSync } from "node:fs";
import PDFDocument from "pdfkit";
import type { AppContext } from "../platform/context.server.ts";
import { ServiceError } from "../platform/errors.server.ts";
import { audit } from "../audit-trail/record-event.server.ts";
import type { Principal } from "../platform/permissions.server.ts";
import { getStudyOrThrow } from "../studies/studies.server.ts";
import { recordDefinition, recordHistory, subjectCasebook } from "../records/records.server.ts";
import { queriesOf, signaturesOf } from "../clinical-monitoring/clinical-monitoring.server.ts";
import { sealText } from "../log/seal-text.ts";
import { appendEntry } from "../log/append-entry.server.ts";
import { toHex } from "../../anchoring/log/bytes.ts";
import { protocolInForceText, protocolVersionsAt } from "../study-documents/protocol-in-force.server.ts";

const show = (v: unknown) =>
  v === null || v === undefined
    ? "-"
    : Array.isArray(v)
      ? v.join(", ")
      : typeof v === "boolean"
        ? v
          ? "Yes"
          : "No"
        : String(v);

export async function casebookPdf(
  ctx: AppContext,
  principal: Principal & { fullName?: string },
  studyCode: string,
  subject: string,
): Promise<Buffer> {
  const study = await getStudyOrThrow(ctx, studyCode);
  const casebook = await subjectCasebook(ctx, principal, study.id, subject);
  if (!casebook) throw new ServiceError("not_found", `no subject ${subject}`, "subject");
  const { regular: font, bold: boldFont } = ctx.env.pdfFont;
  if (!existsSync(font)) throw new Error(`the PDF font ${font} is missing (install fonts-dejavu-core)`);
  const doc = new PDFDocument({
    size: "A4",
    margin: 50,
    info: { Title: `Certified copy: ${study.code} ${casebook.participant.subject}`, Author: "TrialSeal" },
  });
  doc.registerFont("body", font);
  doc.registerFont("bold", existsSync(boldFont) ? boldFont : font);
  const chunks: Buffer[] = [];
  doc.on("data", (c: Buffer) => chunks.push(c));
  const done = new Promise<Buffer>((resolve) => doc.on("end", () => resolve(Buffer.concat(chunks))));

  const now = new Date().toISOString();
  doc.font("bold").fontSize(16).text(`Certified copy: casebook of subject ${casebook.participant.subject}`);
  doc
    .font("body")
    .fontSize(10)
    .text(
      `Study ${study.code} (${study.title}), site ${casebook.participant.site}, status ${casebook.participant.status}`,
    );
  doc.text(
    `Generated ${now.replace("T", " ").slice(0, 19)} UTC by ${principal.label} from the records as stored; ` +
      "every version below carries its ledger entry, whose proof (GET /api/v1/entries/<entry>/proof) " +
      "can be verified offline with `trialseal verify`.",
  );
  doc.text(`Choices honoured: ${PRIMARY_USE_CHOICES}.`); // ADR 0071
  doc.moveDown();

  for (const rec of casebook.records) {
    const h = await recordHistory(ctx, principal, study.code, rec.id);
    const def = await recordDefinition(ctx, rec.id);
    const [sigs, qs] = await Promise.all([signaturesOf(ctx, rec.id, h.version), queriesOf(ctx, rec.id)]);
    doc
      .font("bold")
      .fontSize(13)
      .text(
        `${def?.title ?? rec.form} (${rec.form}), ` +
          `visit ${rec.visit}: version ${h.version}${h.status === "locked" ? ", locked" : ""}`,
      );
    doc.font("body").fontSize(10);
    for (const f of def?.fields ?? [])
      doc.text(`${f.label}: ${show(h.data[f.name])}${f.type === "number" && f.unit ? ` ${f.unit}` : ""}`, {
        indent: 12,
      });
    doc.moveDown(0.3).font("bold").text("Audit trail").font("body");
    // The protocol version in force at the site when each version was entered, in the record page's words (ADR 0048).
    const protocol = await protocolVersionsAt(
      ctx,
      study.id,
      casebook.participant.siteId,
      h.history.map((v) => v.at),
    );
    for (const [i, v] of h.history.entries()) {
      const what =
        v.version === 1 ? "entered" : v.changes.map((c) => `${c.field}: ${show(c.old)} -> ${show(c.new)}`).join("; ");
      const seal = sealText(v.entry);
      doc.text(
        `v${v.version}  ${v.at.replace("T", " ").slice(0, 19)} UTC  ${v.actor}  ` +
          `${what}${v.reason ? `  reason: ${v.reason}` : ""}`,
        { indent: 12 },
      );
      doc
        .fillColor("#555555")
        .text(protocolInForceText(protocol.site, protocol.versions[i]), { indent: 24 })
        .text(`entry ${v.entry.id} (${seal})`, { indent: 24 })
        .fillColor("black");
    }
    if (sigs.length) {
      doc.moveDown(0.3).font("bold").text("Signatures").font("body");
      for (const s of sigs)
        doc.text(
          `${s.printedName}, ${s.signedAt.replace("T", " ").slice(0, 19)} UTC, ` +
            `meaning: ${s.meaning} (version ${s.version})${s.valid ? "" : ` [${s.note}]`}`,
          { indent: 12 },
        );
    }
    if (qs.length) {
      doc.moveDown(0.3).font("bold").text("Queries").font("body");
      for (const q of qs) doc.text(`${q.field}: ${q.text} | answer: ${q.answer ?? "-"} | ${q.status}`, { indent: 12 });
    }
    doc.moveDown();
  }
  if (casebook.records.length === 0) doc.text("No CRF records yet.");
  doc.end();
  const pdf = await done;
  // The PDF is not reproducible byte for byte: its SHA-256 is sealed with the audit event (ADR 0019), so the
  // copy handed out (and the one in an evidence package) can be checked against the log.
  await ctx.db.transaction(async (tx) => {
    const e = await appendEntry(tx, ctx.crypto, study, "document.generated", {
      document: "certified_copy",
      subject: casebook.participant.subject,
      invitation: null,
      sha256: toHex(ctx.crypto.sha256(pdf)),
      bytes: pdf.length,
      actor: principal.userId,
    });
    await audit(tx, {
      action: "export.certified_copy",
      actorUserId: principal.userId,
      actorLabel: principal.label,
      studyId: study.id,
      siteId: casebook.participant.siteId,
      participantId: casebook.participant.id,
      detail: {
        records: casebook.records.length,
        bytes: pdf.length,
        entry: e.id,
        participants: [casebook.participant.id],
      },
    });
  });
  return pdf;
}
