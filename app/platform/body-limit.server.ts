/**
 * Request body limits, enforced while the body streams in and before anything parses it (issue 16 item 4): a
 * form post may carry 64 KiB unless its route documents more (uploads); a larger body is answered 413 and the
 * connection closed, so a chunked body without Content-Length cannot grow the process.
 */
import { Transform } from "node:stream";

const KiB = 1024;
const MiB = 1024 * KiB;

/** What a form post may carry when its route documents nothing larger. */
export const FORM_BODY_LIMIT = 64 * KiB;

/** Routes that take more than a form (the route itself checks its own, smaller, limit on the part it reads). */
const LARGER_BODIES: { path: RegExp; limit: number; what: string }[] = [
  // A 10 MB training evidence file, plus the form around it (app/routes/studies/studies.$code.delegation.tsx).
  { path: /^\/studies\/[^/]+\/delegation\/?$/, limit: 10 * MiB + 64 * KiB, what: "a 10 MB evidence file" },
  // A paper consent scan of at most 20 MiB (app/consent/paper-consent.server.ts PAPER_SCAN_MAX_BYTES).
  {
    path: /^\/studies\/[^/]+\/participants\/[^/]+\/paper-consent\/?$/,
    limit: 20 * MiB + 64 * KiB,
    what: "a 20 MB consent scan",
  },
  // A study document's PDF of at most 20 MiB (app/study-documents/study-documents.server.ts STUDY_DOCUMENT_MAX_BYTES).
  { path: /^\/studies\/[^/]+\/documents\/?$/, limit: 20 * MiB + 64 * KiB, what: "a 20 MB study document" },
  // A file of forms, JSON, REDCap dictionary or ODM, of at most 1 MiB (app/form-exchange/form-format.ts
  // FORM_FILE_MAX_BYTES), uploaded on the forms page (app/routes/studies/studies.$code.forms.tsx).
  { path: /^\/studies\/[^/]+\/forms\/?$/, limit: 1024 * KiB + 64 * KiB, what: "a 1 MB file of forms" },
  // A data file to import, at most 64 MiB (app/data-import/read-import.ts IMPORT_MAX_BYTES; ADR 0037).
  { path: /^\/studies\/[^/]+\/import\/?$/, limit: 64 * MiB + 64 * KiB, what: "a 64 MB data file" },
  // An uploaded randomization list of at most 5 MiB (app/randomization/lists.server.ts MAX_UPLOAD_BYTES; ADR 0052).
  { path: /^\/studies\/[^/]+\/randomization\/?$/, limit: 5 * MiB + 64 * KiB, what: "a 5 MB randomization list" },
  // Issue 21: a lot's certificate of analysis, a PDF of at most 20 MiB (app/drug-supply/lots.server.ts COA_MAX_BYTES),
  // and a shipment's temperature logger file of at most 1 MiB (app/drug-supply/shipments.server.ts LOGGER_MAX_BYTES).
  { path: /^\/studies\/[^/]+\/supply\/lots\/?$/, limit: 20 * MiB + 64 * KiB, what: "a 20 MB certificate of analysis" },
  { path: /^\/studies\/[^/]+\/supply\/shipments\/?$/, limit: 1024 * KiB + 64 * KiB, what: "a 1 MB logger file" },
  // A form definition (app/routes/api/api.v1.studies.$code.forms.ts reads at most 256 KiB).
  { path: /^\/api\/v1\/studies\/[^/]+\/forms\/?$/, limit: 256 * KiB, what: "a form definition" },
  // A batch of at most 1,000 new records (app/records/batch.server.ts MAX_BATCH_BYTES; ADR 0040).
  { path: /^\/api\/v1\/studies\/[^/]+\/records\/batch\/?$/, limit: 4 * MiB, what: "a batch of 1,000 records" },
];

/** The most a request to this path may send. */
export function bodyLimitFor(pathname: string): number {
  // Remix's single fetch posts a page's form to `<path>.data` (`/_root.data` for the index): the page's own limit.
  const page = pathname.replace(/\.data$/, "");
  return LARGER_BODIES.find((r) => r.path.test(page))?.limit ?? FORM_BODY_LIMIT;
}

/** The body of a request as a stream that fails, and remembers it, once more than `limit` bytes came in. */
export function limitedBody(source: NodeJS.ReadableStream, limit: number) {
  let received = 0;
  let exceeded = false;
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      received += chunk.length;
      if (received > limit) {
        exceeded = true;
        done(new Error(`the request body is larger than ${limit} bytes`));
        return;
      }
      done(null, chunk);
    },
  });
  source.pipe(stream);
  return { stream, exceeded: () => exceeded };
}

export function tooLargeMessage(limit: number): string {
  const size = limit >= MiB ? `${Math.floor(limit / MiB)} MB` : `${Math.floor(limit / KiB)} KB`;
  return `the request is too large: this page accepts at most ${size}; nothing was changed`;
}
