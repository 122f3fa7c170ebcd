/** The integration API's OpenAPI 3.1 document (served at /api/v1/openapi.json; a test keeps it complete). */
import { DISPOSITIONS } from "../../anchoring/log/payloads.ts";
const error = { $ref: "#/components/schemas/Error" };
// Every operation may meet a database outage: 503 database_unavailable with Retry-After.
const errors = (...codes: number[]) =>
  Object.fromEntries(
    [...codes, 503].map((c) => [
      String(c),
      { description: ERROR_TEXT[c], content: { "application/json": { schema: error } } },
    ]),
  );
const ERROR_TEXT: Record<number, string> = {
  400: "unreadable request (not JSON, bad query or header)",
  401: "no or unknown credentials",
  403: "not allowed for this principal",
  404: "unknown, or not visible to this principal",
  405: "method not allowed",
  409:
    "conflict (exists already; Idempotency-Key reused with another body; for a new record: the participant's " +
    "consent is not complete, or was withdrawn)",
  413: "body too large",
  415: "not application/json",
  422: "invalid content; `field` names the offending part",
  423: "locked",
  429: "rate limited; see Retry-After",
  503:
    "the database is unavailable (restarting); nothing was changed; " +
    "retry after Retry-After seconds (with the same Idempotency-Key for writes)",
};
const bearer = [{ bearer: [] }, { session: [] }];
const code = {
  name: "code",
  in: "path",
  required: true,
  schema: { type: "string" },
  description: "study protocol code",
};
const json = (schema: unknown, description = "OK") => ({ description, content: { "application/json": { schema } } });

export const OPENAPI = {
  openapi: "3.1.0",
  info: {
    title: "TrialSeal API",
    version: "1",
    description:
      "Study-scoped integration API and public log endpoints. " +
      'Errors are {"error":{code,message,field?,problems?}}: a refused CRF entry lists every problem in `problems`.',
  },
  servers: [{ url: "/" }],
  components: {
    securitySchemes: {
      bearer: { type: "http", scheme: "bearer", description: "study-scoped API token (`trialseal tokens create`)" },
      session: { type: "apiKey", in: "cookie", name: "ts_session" },
    },
    schemas: {
      Error: {
        type: "object",
        required: ["error"],
        properties: {
          error: {
            type: "object",
            required: ["code", "message"],
            properties: {
              code: { type: "string" },
              message: { type: "string", description: 'the first problem, in words ("Systolic BP is required")' },
              field: { type: "string", description: "the first problem's field (`data.<name>` for a CRF value)" },
              problems: {
                type: "array",
                description: "every problem of a refused CRF entry at once, in form order",
                items: { $ref: "#/components/schemas/Problem" },
              },
            },
          },
        },
      },
      Problem: {
        type: "object",
        required: ["field", "message"],
        properties: {
          field: { type: "string", description: "`data.<name>`, or `data` for the entry as a whole" },
          message: { type: "string", description: "a whole sentence naming the field's label" },
          kind: {
            enum: ["error", "confirm"],
            description:
              "`confirm`: a value outside its expected (soft) range; send it again with the field in `confirmed`",
          },
        },
      },
      FieldValues: {
        type: "object",
        description:
          "values by field name; `null` (or leaving a field out) is no value; calculated fields are computed by the " +
          "server and refused here; values of fields hidden by the form's branching are dropped",
        additionalProperties: true,
      },
      Missing: {
        type: "object",
        description: "missing-data codes instead of values, by field name (only codes the field allows), with a reason",
        additionalProperties: {
          type: "object",
          required: ["code", "reason"],
          properties: {
            code: { enum: ["NI", "UNK", "ASKU", "NASK", "NA", "NOT_DONE"] },
            reason: { type: "string", minLength: 1, maxLength: 2000 },
          },
        },
      },
      Confirmed: {
        type: "array",
        description:
          "fields whose value outside the expected (soft) range was checked; each opens an automatic query " +
          "(unchanged values of a correction need no new confirmation)",
        items: { type: "string" },
      },
      Entry: {
        type: "object",
        properties: { id: { type: "string", format: "uuid" }, status: { enum: ["pending", "sealed"] } },
      },
      SavedRecord: {
        type: "object",
        required: ["id", "version", "instance", "entry"],
        properties: {
          id: { type: "string", format: "uuid" },
          version: { type: "integer" },
          instance: {
            type: "integer",
            minimum: 1,
            description: "the row of a repeating form, assigned by the server (1 for any other form)",
          },
          entry: { $ref: "#/components/schemas/Entry" },
          queries: {
            type: "array",
            items: { type: "string", format: "uuid" },
            description: "automatic queries opened for confirmed values outside their expected range",
          },
        },
      },
      NewRecord: {
        type: "object",
        required: ["subject", "form", "visit", "data"],
        properties: {
          subject: { type: "string" },
          form: { type: "string" },
          formVersion: { type: "integer", description: "default: the latest approved" },
          visit: { type: "string" },
          data: { $ref: "#/components/schemas/FieldValues" },
          missing: { $ref: "#/components/schemas/Missing" },
          confirmed: { $ref: "#/components/schemas/Confirmed" },
        },
        description: "on a repeating form (an adverse-event log) each POST adds the next row",
      },
      BatchRecord: {
        description:
          "a new record as POST /records takes it, plus its own optional idempotency key (the Idempotency-Key " +
          "header's rules, per item: a replayed item returns its stored result and writes nothing; the same key " +
          "with another record is that item's 409)",
        allOf: [
          { $ref: "#/components/schemas/NewRecord" },
          {
            type: "object",
            properties: { idempotencyKey: { type: "string", minLength: 1, maxLength: 200, pattern: "^[!-~]+$" } },
          },
        ],
      },
      BatchItemResult: {
        type: "object",
        required: ["index", "status"],
        properties: {
          index: { type: "integer", minimum: 0, description: "the item's position in `records`" },
          status: {
            type: "integer",
            description:
              "201 written, or replayed: an item whose idempotencyKey already holds a stored result gets it back " +
              "before any check, whatever changed since; 422 invalid; 403 not permitted at the subject's site; " +
              "409 no complete consent, a duplicate in the batch or in the database, or the key used for another " +
              "record; 413 the item's JSON is over 64 KiB (error code too_large, field records[i]); 423 locked",
          },
          record: { $ref: "#/components/schemas/SavedRecord" },
          error: {
            type: "object",
            required: ["code", "message"],
            properties: {
              code: { type: "string" },
              message: { type: "string" },
              field: {
                type: "string",
                description: "within the item (`subject`, `data.sbp`, `idempotencyKey`); `records[i]` for a 413",
              },
              problems: { type: "array", items: { $ref: "#/components/schemas/Problem" } },
            },
          },
          replayed: { type: "boolean", description: "true: written by an earlier call with the same key" },
        },
      },
      BatchResults: {
        type: "object",
        required: ["results", "written", "replayed", "failed"],
        properties: {
          results: { type: "array", items: { $ref: "#/components/schemas/BatchItemResult" } },
          written: { type: "integer", description: "items with a record (status 201), replays included" },
          replayed: { type: "integer" },
          failed: { type: "integer" },
        },
      },
      Correction: {
        type: "object",
        required: ["data", "reason"],
        description: "every value of the new version; a value left out, or hidden by branching, is cleared",
        properties: {
          data: { $ref: "#/components/schemas/FieldValues" },
          missing: { $ref: "#/components/schemas/Missing" },
          confirmed: { $ref: "#/components/schemas/Confirmed" },
          reason: { type: "string", minLength: 1 },
        },
      },
      FormDefinition: {
        type: "object",
        required: ["code", "title", "version", "visits", "fields"],
        description: "see docs and anchoring/forms/definition.ts",
      },
      ProofBundle: { type: "object", description: "trialseal-proof/v1 (docs/proof-format.md)" },
    },
  },
  paths: {
    "/api/v1/checkpoint": {
      get: {
        summary: "latest signed checkpoint (C2SP signed note)",
        responses: { "200": { description: "text/plain note" }, ...errors(404) },
      },
    },
    "/api/v1/consistency": {
      get: {
        summary: "RFC 9162 consistency proof between two log sizes",
        parameters: [
          { name: "from", in: "query", required: true, schema: { type: "integer" } },
          { name: "to", in: "query", required: true, schema: { type: "integer" } },
        ],
        responses: { "200": json({ type: "object" }), ...errors(400) },
      },
    },
    "/api/v1/checkpoints/{size}/anchors": {
      get: {
        summary: "a checkpoint (signed note) and the receipts of its final anchors, for monitors",
        parameters: [
          {
            name: "size",
            in: "path",
            required: true,
            schema: { type: "integer" },
            description: "log size (tree size) of the checkpoint",
          },
        ],
        responses: {
          "200": json({
            type: "object",
            properties: { treeSize: { type: "integer" }, note: { type: "string" }, anchors: { type: "array" } },
          }),
          ...errors(400, 404),
        },
      },
    },
    "/api/v1/status": {
      get: { summary: "log size and per-ledger anchoring status", responses: { "200": json({ type: "object" }) } },
    },
    "/api/v1/entries/{ref}/proof": {
      get: {
        summary: "proof bundle of a ledger entry (id, or seq once sealed)",
        security: bearer,
        parameters: [{ name: "ref", in: "path", required: true, schema: { type: "string" } }],
        responses: {
          "200": json({ $ref: "#/components/schemas/ProofBundle" }),
          "202": json({ type: "object" }, "not sealed yet; see Retry-After"),
          ...errors(401, 404),
        },
      },
    },
    "/api/v1/studies/{code}/forms": {
      get: {
        summary: "every version of every form",
        security: bearer,
        parameters: [code],
        responses: { "200": json({ type: "object" }), ...errors(401, 404) },
      },
      post: {
        summary:
          "import a form definition (approved unless ?draft=true); needs the admin role or a token with forms.manage",
        security: bearer,
        parameters: [code, { name: "draft", in: "query", schema: { type: "boolean" } }],
        requestBody: {
          required: true,
          content: { "application/json": { schema: { $ref: "#/components/schemas/FormDefinition" } } },
        },
        responses: { "201": json({ type: "object" }, "created"), ...errors(400, 401, 403, 404, 409, 413, 415, 422) },
      },
    },
    "/api/v1/studies/{code}/participants": {
      post: {
        summary:
          "enrol a participant at a site; returns the generated subject code; Idempotency-Key makes retries safe",
        security: bearer,
        parameters: [code, { name: "Idempotency-Key", in: "header", schema: { type: "string", maxLength: 200 } }],
        requestBody: {
          required: true,
          content: {
            "application/json": {
              schema: {
                type: "object",
                required: ["site"],
                properties: {
                  site: { type: "string" },
                  disposition: { type: "string", enum: ["screening", "enrolled"] },
                },
              },
            },
          },
        },
        responses: {
          "201": json(
            {
              type: "object",
              properties: {
                subject: { type: "string" },
                id: { type: "string" },
                entry: { $ref: "#/components/schemas/Entry" },
              },
            },
            "created (or the replayed original)",
          ),
          ...errors(400, 401, 403, 404, 409, 413, 415, 422, 429),
        },
      },
    },
    "/api/v1/studies/{code}/participants/{subject}/disposition": {
      post: {
        summary:
          "change a participant's disposition (screening, screen_failed, enrolled, randomized, discontinued, " +
          "completed); a reason is required for screen_failed and discontinued",
        security: bearer,
        parameters: [code, { name: "subject", in: "path", required: true, schema: { type: "string" } }],
        requestBody: {
          required: true,
          content: {
            "application/json": {
              schema: {
                type: "object",
                required: ["status", "date"],
                properties: {
                  status: { type: "string", enum: [...DISPOSITIONS] },
                  date: { type: "string", format: "date" },
                  reason: { type: "string", maxLength: 2000 },
                },
              },
            },
          },
        },
        responses: { "201": json({ type: "object" }, "changed"), ...errors(401, 403, 404, 409, 413, 415, 422, 429) },
      },
    },
    "/api/v1/studies/{code}/participants/{subject}/randomization": {
      post: {
        summary:
          "randomize a participant (ADR 0052): the next slot of the stratum of their site and the factor levels " +
          "given; answers the randomization number, never the arm",
        security: bearer,
        parameters: [code, { name: "subject", in: "path", required: true, schema: { type: "string" } }],
        requestBody: {
          required: true,
          content: {
            "application/json": {
              schema: {
                type: "object",
                properties: {
                  factors: { type: "object", additionalProperties: { type: "string", maxLength: 64 } },
                },
              },
            },
          },
        },
        responses: {
          "201": json(
            {
              type: "object",
              properties: { allocation: { type: "string" }, number: { type: "string" }, stratum: { type: "string" } },
            },
            "randomized",
          ),
          ...errors(401, 403, 404, 409, 413, 415, 422, 423, 429),
        },
      },
    },
    "/api/v1/studies/{code}/records": {
      post: {
        summary: "enter a record (version 1); Idempotency-Key makes retries safe",
        security: bearer,
        parameters: [code, { name: "Idempotency-Key", in: "header", schema: { type: "string", maxLength: 200 } }],
        requestBody: {
          required: true,
          content: { "application/json": { schema: { $ref: "#/components/schemas/NewRecord" } } },
        },
        responses: {
          "201": json({ $ref: "#/components/schemas/SavedRecord" }, "created (or the replayed original)"),
          ...errors(400, 401, 403, 404, 409, 413, 415, 422, 429),
        },
      },
    },
    "/api/v1/studies/{code}/records/batch": {
      post: {
        summary:
          "enter up to 1,000 new records (ADR 0040): each item checked as POST /records checks one, the valid ones " +
          "written in one transaction, a result per item in item order; body at most 4 MiB, an item at most " +
          "64 KiB (else that item's 413); each item counts as one request against the rate limit",
        security: bearer,
        parameters: [code],
        requestBody: {
          required: true,
          content: {
            "application/json": {
              schema: {
                type: "object",
                required: ["records"],
                properties: {
                  records: {
                    type: "array",
                    minItems: 1,
                    maxItems: 1000,
                    items: { $ref: "#/components/schemas/BatchRecord" },
                  },
                },
              },
            },
          },
        },
        responses: {
          "200": json(
            { $ref: "#/components/schemas/BatchResults" },
            "every item's result (the call succeeds even when items fail)",
          ),
          ...errors(400, 401, 404, 413, 415, 422, 429),
        },
      },
    },
    "/api/v1/studies/{code}/records/{id}": {
      get: {
        summary:
          "current version (data, missing, calculated, instance), every version with its changes, reason and " +
          "seal status",
        security: bearer,
        parameters: [code, { name: "id", in: "path", required: true, schema: { type: "string", format: "uuid" } }],
        responses: { "200": json({ type: "object" }), ...errors(401, 404, 429) },
      },
      put: {
        summary: "correct a record (a reason is required); keeps every prior version",
        security: bearer,
        parameters: [code, { name: "id", in: "path", required: true, schema: { type: "string", format: "uuid" } }],
        requestBody: {
          required: true,
          content: { "application/json": { schema: { $ref: "#/components/schemas/Correction" } } },
        },
        responses: {
          "200": json({ $ref: "#/components/schemas/SavedRecord" }),
          ...errors(400, 401, 403, 404, 413, 415, 422, 423, 429),
        },
      },
    },
    "/api/v1/studies/{code}/queries": {
      get: {
        summary:
          "the study's queries (ADR 0034): field label, raiser, answerer, age in days, whom it waits for, history",
        security: bearer,
        parameters: [
          code,
          ...["status", "site", "form", "field", "raiser", "mine"].map((name) => ({
            name,
            in: "query",
            required: false,
            schema: { type: "string" },
          })),
        ],
        responses: { "200": json({ type: "object" }), ...errors(400, 401, 404, 429) },
      },
    },
    "/api/v1/studies/{code}/queries/{id}/reopen": {
      post: {
        summary: "re-open an answered or closed query, with a reason (sealed as a salted hash)",
        security: bearer,
        parameters: [code, { name: "id", in: "path", required: true, schema: { type: "string", format: "uuid" } }],
        requestBody: {
          required: true,
          content: {
            "application/json": {
              schema: { type: "object", required: ["reason"], properties: { reason: { type: "string" } } },
            },
          },
        },
        responses: { "200": json({ type: "object" }), ...errors(400, 401, 403, 404, 409, 413, 415, 429) },
      },
    },
    "/api/v1/openapi.json": { get: { summary: "this document", responses: { "200": json({ type: "object" }) } } },
  },
} as const;
