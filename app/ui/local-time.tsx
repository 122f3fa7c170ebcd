/** A time as UTC in the server's HTML, and the viewer's local time beside it once in the browser (no mismatch). */
import { useEffect, useState } from "react";

export function UtcAndLocal({ iso }: { iso: string }) {
  const [local, setLocal] = useState<string | null>(null);
  useEffect(() => setLocal(new Date(iso).toLocaleString()), [iso]);
  return (
    <>
      <time dateTime={iso}>{`${iso.replace("T", " ").slice(0, 19)} UTC`}</time>
      {local ? <span className="muted local-time"> {local} local</span> : null}
    </>
  );
}
