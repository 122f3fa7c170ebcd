/**
 * The batch log over time: one dot per signed checkpoint (x: time, y: log size in batches), and under it one
 * row per ledger with a mark where that checkpoint was anchored (filled: final, hollow: not yet final).
 */
export interface TimelinePoint {
  treeSize: number;
  at: string;
  anchors: { ledger: string; status: string }[];
}

export function CheckpointTimeline({ points, ledgers }: { points: TimelinePoint[]; ledgers: string[] }) {
  const W = 640;
  const top = 110;
  const rowH = 18;
  const H = top + 20 + ledgers.length * rowH;
  const pad = 70;
  if (points.length === 0) return <p className="muted">No checkpoint yet.</p>;
  const t0 = Date.parse(points[0].at);
  const t1 = Math.max(t0 + 1, Date.parse(points[points.length - 1].at));
  const s0 = points[0].treeSize;
  const s1 = Math.max(s0 + 1, points[points.length - 1].treeSize);
  const x = (at: string) => pad + ((W - pad - 10) * (Date.parse(at) - t0)) / (t1 - t0);
  const y = (n: number) => top - 10 - ((top - 20) * (n - s0)) / (s1 - s0);
  return (
    <figure className="chart">
      <svg
        viewBox={`0 0 ${W} ${H}`}
        role="img"
        aria-label={
          `Checkpoints ${s0} to ${points[points.length - 1].treeSize} ` +
          `between ${points[0].at} and ${points[points.length - 1].at}`
        }
      >
        <line x1={pad} y1={top} x2={W - 10} y2={top} stroke="#d0d7de" />
        <text x={4} y={y(s1) + 4} fontSize="10" fill="#57606a">
          {s1} batches
        </text>
        <text x={4} y={y(s0) + 4} fontSize="10" fill="#57606a">
          {s0}
        </text>
        <polyline
          fill="none"
          stroke="#0b5cad"
          strokeWidth="1.5"
          points={points.map((p) => `${x(p.at)},${y(p.treeSize)}`).join(" ")}
        />
        {points.map((p) => (
          <circle key={p.treeSize} cx={x(p.at)} cy={y(p.treeSize)} r="2.5" fill="#0b5cad">
            <title>{`checkpoint ${p.treeSize} at ${p.at}`}</title>
          </circle>
        ))}
        {ledgers.map((l, i) => (
          <g key={l}>
            <text x={4} y={top + 18 + i * rowH} fontSize="10" fill="#57606a">
              {l}
            </text>
            {points.flatMap((p) =>
              p.anchors
                .filter((a) => a.ledger === l)
                .map((a) => (
                  <rect
                    key={`${l}-${p.treeSize}`}
                    x={x(p.at) - 3}
                    y={top + 9 + i * rowH}
                    width="6"
                    height="10"
                    fill={a.status === "final" ? "#1a7f37" : "white"}
                    stroke={a.status === "failed" ? "#cf222e" : "#1a7f37"}
                  >
                    <title>{`${l}: checkpoint ${p.treeSize} ${a.status}`}</title>
                  </rect>
                )),
            )}
          </g>
        ))}
      </svg>
      <figcaption className="muted">
        Checkpoints of the batch log over time, and where each ledger anchored them (filled: final).
      </figcaption>
    </figure>
  );
}
