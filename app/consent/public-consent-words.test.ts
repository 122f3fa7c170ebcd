import { describe, expect, it } from "vitest";
import { PAYLOAD_SCHEMAS } from "../../anchoring/log/payloads.ts";
import { BatchHeaderSchema, EnvelopeSchema } from "../../anchoring/log/envelope.ts";
import { BundleCheckpointSchema, BundleSchema } from "../../anchoring/verifier/bundle.ts";
import { BUNDLE_CARRIES, partialWithdrawalWords } from "./public-consent-words.ts";

const keys = (o: { shape: Record<string, unknown> }) => Object.keys(o.shape);

describe("the public consent page's words", () => {
  it("lists every field of a consent.signed proof bundle, each once", () => {
    // `form` (the form version's definition) is carried by record.saved bundles only (ADR 0028), never by a consent's.
    expect(keys(BundleSchema).sort()).toEqual(["batch", "checkpoints", "envelope", "form", "format", "payload"]);
    const batch = BundleSchema.shape.batch;
    const checkpointLog = BundleCheckpointSchema.shape.log;
    const expected = [
      "format",
      ...keys(PAYLOAD_SCHEMAS["consent.signed"]).map((k) => `payload.${k}`),
      ...keys(EnvelopeSchema).map((k) => `envelope.${k}`),
      ...keys(BatchHeaderSchema).map((k) => `batch.header.${k}`),
      ...keys(batch)
        .filter((k) => k !== "header")
        .map((k) => `batch.${k}`),
      ...keys(checkpointLog).map((k) => `checkpoints[].log.${k}`),
      ...keys(BundleCheckpointSchema)
        .filter((k) => k !== "log")
        .map((k) => `checkpoints[].${k}`),
    ];
    const listed = BUNDLE_CARRIES.flatMap((l) => l.fields);
    expect(new Set(listed).size).toBe(listed.length);
    expect([...listed].sort()).toEqual([...expected].sort());
  });

  it("says what a partial withdrawal withdrew", () => {
    expect(partialWithdrawalWords({ followUp: false, optionalWithdrawn: ["future_research"] })).toBe("future research");
    expect(partialWithdrawalWords({ followUp: true, optionalWithdrawn: ["future_research", "genetic_tests"] })).toBe(
      "the study treatment (follow-up visits continue), future research, genetic tests",
    );
  });
});
