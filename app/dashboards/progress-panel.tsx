/**
 * The study home page's "How is my study going" panel (ADR 0031): visx SVG charts rendered on the server (readable
 * without JavaScript, scaled by their viewBox to any width), each with a text summary and its numbers as a table.
 * Colour is never alone: lines and bars carry text labels, the target line is dashed and labelled.
 */
import { Group } from "@visx/group";
import { scaleBand, scaleLinear } from "@visx/scale";
import { Bar, LinePath } from "@visx/shape";
import type { StudyProgress } from "./study-progress.server.ts";

const COLOURS = ["#0b5cad", "#8250df", "#1a7f37", "#bc4c00", "#cf222e", "#57606a"];
const DASHES = ["", "6 3", "2 3", "8 3 2 3", "1 2", "4 4"];

export const pct = (n: number, of: number) => (of > 0 ? `${Math.round((100 * n) / of)}%` : "0%");

/** "12 of 40 enrolled (30%)" or "12 enrolled (no target set)". */
export function enrolmentSummary(enrolled: number, target: number | null): string {
  return target === null
    ? `${enrolled} enrolled (no target set)`
    : `${enrolled} of ${target} enrolled (${pct(enrolled, target)})`;
}

function Numbers({
  caption,
  head,
  rows,
  metric,
}: {
  caption: string;
  head: string[];
  rows: (string | number)[][];
  metric: string;
}) {
  return (
    <details className="numbers">
      <summary>Numbers</summary>
      <div className="table-scroll">
        <table data-metric={metric}>
          <caption>{caption}</caption>
          <thead>
            <tr>
              {head.map((h) => (
                <th key={h} scope="col">
                  {h}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={String(r[0])}>
                {r.map((c, i) =>
                  i === 0 ? (
                    <th key={head[i]} scope="row">
                      {c}
                    </th>
                  ) : (
                    <td key={head[i]}>{c}</td>
                  ),
                )}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </details>
  );
}

function EnrolmentChart({ p }: { p: StudyProgress }) {
  const W = 360;
  const H = 200;
  const m = { l: 30, r: 56, t: 12, b: 26 };
  const { weeks, cumulative, target } = p.enrolment;
  const totals = weeks.map((_, i) => cumulative.reduce((a, c) => a + c.counts[i], 0));
  const max = Math.max(1, target ?? 0, ...totals);
  const x = scaleLinear<number>({ domain: [0, Math.max(1, weeks.length - 1)], range: [m.l, W - m.r] });
  const y = scaleLinear<number>({ domain: [0, max], range: [H - m.b, m.t], nice: true });
  const lines = [{ site: "All sites", counts: totals }, ...(cumulative.length > 1 ? cumulative : [])];
  const id = "chart-enrolment";
  return (
    <figure className="chart progress-chart">
      <figcaption id={id}>
        <strong>Enrolment over time:</strong> {enrolmentSummary(p.enrolment.enrolled, target)}
      </figcaption>
      {weeks.length === 0 ? (
        <p className="empty">
          Nobody is enrolled yet. Enrol the first participant on the Participants page; the chart starts with them.
        </p>
      ) : (
        <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-labelledby={id}>
          <title>{`Enrolment over time: ${enrolmentSummary(p.enrolment.enrolled, target)}`}</title>
          <line x1={m.l} x2={W - m.r} y1={H - m.b} y2={H - m.b} stroke="#d0d7de" />
          {y.ticks(4).map((t) => (
            <text key={t} x={m.l - 4} y={y(t)} fontSize="10" textAnchor="end" dominantBaseline="middle">
              {t}
            </text>
          ))}
          <text x={m.l} y={H - 8} fontSize="10">
            {weeks[0]}
          </text>
          <text x={W - m.r} y={H - 8} fontSize="10" textAnchor="end">
            week of {weeks[weeks.length - 1]}
          </text>
          {target !== null ? (
            <g>
              <line x1={m.l} x2={W - m.r} y1={y(target)} y2={y(target)} stroke="#cf222e" strokeDasharray="5 4" />
              <text x={W - m.r + 4} y={y(target)} fontSize="10" dominantBaseline="middle">
                target {target}
              </text>
            </g>
          ) : null}
          {lines.map((l, i) => (
            <g key={l.site}>
              <LinePath
                data={l.counts}
                x={(_, j) => x(j)}
                y={(d) => y(d)}
                stroke={COLOURS[i % COLOURS.length]}
                strokeWidth={i === 0 ? 3 : 1.5}
                strokeDasharray={DASHES[i % DASHES.length] || undefined}
                fill="none"
              />
              <circle
                cx={x(l.counts.length - 1)}
                cy={y(l.counts[l.counts.length - 1])}
                r={i === 0 ? 3.5 : 2.5}
                fill={COLOURS[i % COLOURS.length]}
              />
              <text
                x={W - m.r + 4}
                y={y(l.counts[l.counts.length - 1]) + (i === 0 ? 0 : 10 * i)}
                fontSize="10"
                fill={COLOURS[i % COLOURS.length]}
                dominantBaseline="middle"
              >
                {i === 0 ? "all" : l.site} {l.counts[l.counts.length - 1]}
              </text>
            </g>
          ))}
        </svg>
      )}
      <Numbers
        metric="enrolment-weeks"
        caption="Cumulative enrolment by week (week starting Monday, UTC)"
        head={["Week", "All sites", ...(cumulative.length > 1 ? cumulative.map((c) => c.site) : [])]}
        rows={weeks.map((w, i) => [w, totals[i], ...(cumulative.length > 1 ? cumulative.map((c) => c.counts[i]) : [])])}
      />
    </figure>
  );
}

/** Horizontal bars: each row's value against its whole (or target), the numbers written at the bar's end. */
function BarsChart({
  id,
  title,
  summary,
  rows,
  metric,
  head,
  empty,
}: {
  id: string;
  title: string;
  summary: string;
  rows: { label: string; value: number; of: number | null }[];
  metric: string;
  head: [string, string, string];
  empty: string | null;
}) {
  const W = 360;
  const rowH = 26;
  const H = rows.length * rowH + 8;
  const m = { l: 96, r: 96 };
  const max = Math.max(1, ...rows.map((r) => Math.max(r.value, r.of ?? 0)));
  const x = scaleLinear<number>({ domain: [0, max], range: [0, W - m.l - m.r] });
  const band = scaleBand<string>({ domain: rows.map((r) => r.label), range: [4, H - 4], padding: 0.25 });
  return (
    <figure className="chart progress-chart">
      <figcaption id={id}>
        <strong>{title}:</strong> {summary}
      </figcaption>
      {empty ? (
        <p className="empty">{empty}</p>
      ) : (
        <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-labelledby={id}>
          <title>{`${title}: ${summary}`}</title>
          <Group left={m.l}>
            {rows.map((r, i) => {
              const yy = band(r.label) ?? 0;
              const bh = band.bandwidth();
              return (
                <g key={r.label}>
                  <text x={-6} y={yy + bh / 2} fontSize="11" textAnchor="end" dominantBaseline="middle">
                    {r.label}
                  </text>
                  {r.of !== null ? (
                    <Bar x={0} y={yy} width={x(r.of)} height={bh} fill="#ddf4ff" stroke="#0b5cad" strokeWidth={0.5} />
                  ) : null}
                  <Bar x={0} y={yy} width={x(r.value)} height={bh} fill={COLOURS[i % COLOURS.length]} />
                  <text
                    x={Math.max(x(r.value), x(r.of ?? 0)) + 4}
                    y={yy + bh / 2}
                    fontSize="11"
                    dominantBaseline="middle"
                  >
                    {r.of === null ? r.value : `${r.value} of ${r.of} (${pct(r.value, r.of)})`}
                  </text>
                </g>
              );
            })}
          </Group>
        </svg>
      )}
      <Numbers
        metric={metric}
        caption={title}
        head={rows.every((r) => r.of === null) ? head.slice(0, 2) : head}
        rows={rows.map((r) =>
          rows.every((q) => q.of === null) ? [r.label, r.value] : [r.label, r.value, r.of ?? "none"],
        )}
      />
    </figure>
  );
}

export function ProgressPanel({ p, canSetTargets }: { p: StudyProgress; canSetTargets: boolean }) {
  const rec = p.forms.records;
  const noRecords = rec === 0 ? "No CRF record is saved yet. Open a participant and enter their first form." : null;
  const targetHint =
    p.enrolment.target === null
      ? canSetTargets
        ? "No enrolment target is set: set one on the Settings page."
        : "No enrolment target is set: ask a study administrator to set one."
      : null;
  const openQueries =
    `${p.queries.open} open ${p.queries.open === 1 ? "query" : "queries"} ` +
    `(${p.queries.byAge[3].count} over 30 days)`;
  return (
    <section className="card progress-panel" aria-labelledby="progress-heading" data-as-of={p.asOf}>
      <h2 id="progress-heading">How is my study going</h2>
      <p className="muted">
        As of {p.asOf} (UTC){p.scopedTo ? `, for your sites: ${p.scopedTo.join(", ")}` : ", all sites"}.
        {targetHint ? ` ${targetHint}` : ""}
      </p>
      <ul className="progress-summary" data-testid="progress-summary">
        <li>{enrolmentSummary(p.enrolment.enrolled, p.enrolment.target)}</li>
        <li>
          {p.screening.screenFailed} of {p.screening.screened} screened failed screening (
          {pct(p.screening.screenFailed, p.screening.screened)}); {p.screening.screening} still in screening
        </li>
        <li>
          {p.forms.complete} of {rec} records complete ({pct(p.forms.complete, rec)}); {p.forms.incomplete} with
          required fields empty
        </li>
        <li>
          {openQueries}; {p.queries.answered} answered, waiting to be closed
        </li>
        <li>
          SDV done on {p.sdv.verified} of {rec} records ({pct(p.sdv.verified, rec)}); {p.signatures.awaiting} awaiting
          signature; {p.locked.locked} locked ({pct(p.locked.locked, rec)})
        </li>
      </ul>
      <div className="progress-charts">
        <EnrolmentChart p={p} />
        <BarsChart
          id="chart-sites"
          title="Enrolment per site against its target"
          summary={p.sites.map((s) => `${s.code}: ${enrolmentSummary(s.enrolled, s.target)}`).join("; ") || "no site"}
          rows={p.sites.map((s) => ({ label: s.code, value: s.enrolled, of: s.target }))}
          metric="enrolment-sites"
          head={["Site", "Enrolled", "Target"]}
          empty={p.sites.length === 0 ? "The study has no site yet: add one on the Staff and sites page." : null}
        />
        <BarsChart
          id="chart-screening"
          title="Screening"
          summary={`${p.screening.screenFailed} screen failures of ${p.screening.screened} screened`}
          rows={[
            { label: "Enrolled", value: p.enrolment.enrolled, of: p.screening.screened },
            { label: "In screening", value: p.screening.screening, of: p.screening.screened },
            { label: "Screen failed", value: p.screening.screenFailed, of: p.screening.screened },
          ]}
          metric="screening"
          head={["Participants", "Count", "Of screened"]}
          empty={p.screening.screened === 0 ? "Nobody is screened yet: register a participant first." : null}
        />
        <BarsChart
          id="chart-records"
          title="Records"
          summary={
            `${rec} records: ${p.forms.complete} complete, ${p.sdv.verified} SDV done, ` + `${p.locked.locked} locked`
          }
          rows={[
            { label: "Complete", value: p.forms.complete, of: rec },
            { label: "Incomplete", value: p.forms.incomplete, of: rec },
            { label: "SDV done", value: p.sdv.verified, of: rec },
            { label: "To sign", value: p.signatures.awaiting, of: rec },
            { label: "Locked", value: p.locked.locked, of: rec },
          ]}
          metric="records"
          head={["Records", "Count", "Of all records"]}
          empty={noRecords}
        />
        <BarsChart
          id="chart-queries"
          title="Open queries by age"
          summary={`${p.queries.open} open`}
          rows={p.queries.byAge.map((b) => ({ label: b.label, value: b.count, of: null }))}
          metric="queries"
          head={["Age", "Open queries", ""]}
          empty={p.queries.open === 0 ? "No open query. Queries raised on a record's page appear here by age." : null}
        />
      </div>
      <details>
        <summary>How these numbers are counted</summary>
        <p className="muted">
          Enrolled: disposition enrolled, randomized, discontinued or completed. Complete record: its current version
          has a value or a missing-data code for every required field without a show-if condition (on the field or its
          section). Open query: raised or re-opened and not answered, aged from when it was raised. SDV and signatures
          count the current version only. Locked: the record, its casebook or the study is locked.
        </p>
      </details>
    </section>
  );
}
