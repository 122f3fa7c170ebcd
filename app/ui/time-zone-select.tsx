/** A choice of IANA time zone for a site (ADR 0030); the list comes from the loader (the server's Intl). */
export function TimeZoneSelect({
  id,
  name,
  zones,
  defaultValue = "UTC",
  invalid,
}: {
  id: string;
  name: string;
  zones: string[];
  defaultValue?: string;
  invalid?: boolean;
}) {
  return (
    <select id={id} name={name} defaultValue={defaultValue} aria-invalid={invalid || undefined} className="fit">
      {zones.map((z) => (
        <option key={z} value={z}>
          {z.replaceAll("_", " ")}
        </option>
      ))}
    </select>
  );
}
