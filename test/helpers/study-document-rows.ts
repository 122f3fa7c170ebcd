/**
 * A study document version registered through the portal's own service (app/study-documents registerDocument: row,
 * `study_document.registered` entry and audit event in one transaction), for tests of what is built on documents
 * (outcome lists, the public registration page) without going through the upload page.
 */
import { principalForUser } from "../../app/accounts/auth.server.ts";
import type { AppContext } from "../../app/platform/context.server.ts";
import { registerDocument } from "../../app/study-documents/study-documents.server.ts";

/** A small valid-looking PDF whose bytes (and so SHA-256) depend on `seed`. */
export function tinyPdf(seed: string): Uint8Array {
  return new Uint8Array(
    Buffer.from(`%PDF-1.4\n% ${seed}\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n`),
  );
}

/** Register a version as the user `actorUserId` (a study admin); an amendment names the version it `replaces`. */
export async function insertStudyDocument(
  ctx: AppContext,
  studyCode: string,
  actorUserId: string,
  d: {
    type: "protocol" | "sap" | "ib" | "dmp";
    version: string;
    content: Uint8Array;
    replaces?: string;
    reason?: string;
  },
) {
  const principal = await principalForUser(ctx, actorUserId);
  if (!principal) throw new Error(`no user ${actorUserId}`);
  return registerDocument(
    ctx,
    principal,
    studyCode,
    {
      type: d.type,
      version: d.version,
      approvedOn: "2026-01-15",
      approvingBody: "Ethics Committee of the test university",
      replaces: d.replaces ?? "",
      reason: d.replaces ? (d.reason ?? "amended") : "",
    },
    { fileName: `${d.type}-${d.version}.pdf`, content: d.content },
  );
}
