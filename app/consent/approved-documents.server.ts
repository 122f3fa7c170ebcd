/** The consent documents a study signs now: the latest approved version of each code, parsed. */
import { and, asc, desc, eq } from "drizzle-orm";
import { consentDocuments } from "../../db/schema/index.ts";
import type { AppContext } from "../platform/context.server.ts";
import type { DbOrTx } from "../../db/client.ts";
import { parseConsentDocument, type ParsedConsentDocument } from "./consent-document.ts";

/** The latest approved version of each consent document code of a study. */
export async function currentDocuments(ctx: AppContext, studyId: string, db: DbOrTx = ctx.db) {
  const docs = await db
    .select()
    .from(consentDocuments)
    .where(and(eq(consentDocuments.studyId, studyId), eq(consentDocuments.status, "approved")))
    .orderBy(asc(consentDocuments.code), desc(consentDocuments.approvedAt));
  const latest = new Map<string, typeof consentDocuments.$inferSelect>();
  for (const d of docs) if (!latest.has(d.code)) latest.set(d.code, d);
  return latest;
}

/** A stored document's parsed form; a stored document that no longer parses is a bug, not bad input. */
export function parsedDocument(d: { bodyMarkdown: string; code: string; version: string }): ParsedConsentDocument {
  const r = parseConsentDocument(d.bodyMarkdown);
  if (!r.ok)
    throw new Error(`stored consent document ${d.code} ${d.version} no longer parses: line ${r.line}: ${r.message}`);
  return r.doc;
}
