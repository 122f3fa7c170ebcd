/**
 * A study's sealed ledger entries as the evidence-package cross-checks see them (anchoring/verifier/
 * cross-check-sealed.ts), read straight from the database: for tests of the cross-checks of one derived file
 * without building a whole package.
 */
import { eq, isNotNull, and } from "drizzle-orm";
import { toHex } from "../../anchoring/log/bytes.ts";
import type { Envelope } from "../../anchoring/log/envelope.ts";
import type { Sealed } from "../../anchoring/verifier/cross-check-sealed.ts";
import { ledgerEntries, studies } from "../../db/schema/index.ts";
import type { AppContext } from "../../app/platform/context.server.ts";

export async function sealedEntriesOf(ctx: AppContext, studyCode: string): Promise<Sealed> {
  const [study] = await ctx.db.select().from(studies).where(eq(studies.code, studyCode));
  const rows = await ctx.db
    .select()
    .from(ledgerEntries)
    .where(and(eq(ledgerEntries.studyId, study.id), isNotNull(ledgerEntries.seq), isNotNull(ledgerEntries.leafHash)));
  const out: Sealed = new Map();
  for (const r of rows)
    out.set(r.seq!, {
      seq: r.seq!,
      kind: r.kind,
      payload: JSON.parse(r.payloadText) as Record<string, unknown>,
      envelope: { at: r.at.toISOString() } as unknown as Envelope,
      leafHash: toHex(r.leafHash!),
    });
  return out;
}
