/** A small, dependency-free SVG bar chart: entries written and sealed per day, with accessible text. */
export interface DayBar {
  day: string;
  written: number;
  sealed: number;
}

export function ActivityChart({
  days,
  title,
  light = "written",
  dark = "sealed",
  unit = "entries",
}: {
  days: DayBar[];
  title: string;
  light?: string;
  dark?: string;
  unit?: string;
}) {
  const W = 560;
  const H = 140;
  const pad = 24;
  const max = Math.max(1, ...days.map((d) => Math.max(d.written, d.sealed)));
  const bw = (W - pad * 2) / Math.max(1, days.length);
  const total = days.reduce((a, d) => a + d.written, 0);
  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${W} ${H + 20}`} role="img" aria-label={`${title}: ${total} ${unit} over ${days.length} days`}>
        <line x1={pad} y1={H} x2={W - pad} y2={H} stroke="#d0d7de" />
        {days.map((d, i) => {
          const h = Math.round(((H - 10) * d.written) / max);
          const hs = Math.round(((H - 10) * d.sealed) / max);
          const x = pad + i * bw + 2;
          return (
            <g key={d.day}>
              <title>{`${d.day}: ${d.written} ${light}, ${d.sealed} ${dark}`}</title>
              <rect x={x} y={H - h} width={Math.max(2, bw - 4)} height={h} fill="#ddf4ff" />
              <rect x={x} y={H - hs} width={Math.max(2, bw - 4)} height={hs} fill="#0b5cad" />
              {i % Math.ceil(days.length / 7) === 0 ? (
                <text x={x} y={H + 14} fontSize="10" fill="#57606a">
                  {d.day.slice(5)}
                </text>
              ) : null}
            </g>
          );
        })}
      </svg>
      <figcaption className="muted">
        {title} (dark: {dark}, light: {light}, per UTC day)
      </figcaption>
    </figure>
  );
}

/** Fill the missing days of the last `n` days with zeros. */
export function lastDays(rows: DayBar[], n: number, now = new Date()): DayBar[] {
  const byDay = new Map(rows.map((r) => [r.day, r]));
  return Array.from({ length: n }, (_, i) => {
    const day = new Date(now.getTime() - (n - 1 - i) * 86_400_000).toISOString().slice(0, 10);
    return byDay.get(day) ?? { day, written: 0, sealed: 0 };
  });
}
