/**
 * IANA time zones (a site's clock: CRF datetimes are entered and shown on it, ADR 0030). Browser-safe: Intl only.
 */

const known = new Set<string>();

/** Whether a text is an IANA time zone name this runtime knows ("Europe/Berlin", "UTC"). */
export function isTimeZone(name: string): boolean {
  if (known.has(name)) return true;
  if (!/^[A-Za-z][A-Za-z0-9_+\-/]{0,63}$/.test(name)) return false;
  try {
    new Intl.DateTimeFormat("en", { timeZone: name });
    known.add(name); // a check costs about a millisecond; an import checks each of its rows' zone
    return true;
  } catch {
    return false;
  }
}

/** The IANA names to choose from (the runtime's list, with UTC first). */
export function timeZoneNames(): string[] {
  const all = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  return ["UTC", ...all.filter((z) => z !== "UTC")];
}
