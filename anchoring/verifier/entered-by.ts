/**
 * Who entered a record version, as the CSV export's `entered_by` column and the verifier's messages say it, from
 * the record.saved payload's `actor` (a user id) or `token` ({id, name at the time}): `user <id>`,
 * `token <name> (<id>)`, or empty for an old write by the study's integration key (neither). Deterministic from
 * the sealed payload, so `verify-package` can recompute it (ADR 0019).
 */
export function enteredBy(p: { actor?: unknown; token?: unknown }): string {
  const token = p.token as { id?: unknown; name?: unknown } | null | undefined;
  if (token && typeof token === "object") return `token ${String(token.name)} (${String(token.id)})`;
  if (typeof p.actor === "string" && p.actor) return `user ${p.actor}`;
  return "";
}
