import { json, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { useLoaderData } from "@remix-run/react";
import { systemStatus } from "../../anchor-worker/anchor-worker.server.ts";
import { getUser } from "../../platform/session.server.ts";
import { TopBar } from "../../ui/top-bar.tsx";

export const meta: MetaFunction = () => [{ title: "Log and anchoring status · TrialSeal" }];

/** Public, like a transparency log's status: sizes, times and errors only (no study data, no personal data). */
export async function loader({ request, context }: LoaderFunctionArgs) {
  const user = await getUser(request, context);
  const status = await systemStatus(context.ctx);
  return json(
    { user: user ? { fullName: user.fullName, email: user.email } : null, status },
    { headers: { "cache-control": "no-store" } },
  );
}

const STATE_CLASS: Record<string, string> = {
  "up to date": "ok",
  anchoring: "",
  "awaiting finality": "",
  retrying: "bad",
};

export default function Status() {
  const { user, status } = useLoaderData<typeof loader>();
  const max = Math.max(1, status.logSize);
  return (
    <>
      <TopBar user={user} />
      <main className="page">
        <h1>Log and anchoring status</h1>
        <div className="grid">
          <div className="card">
            <div className="muted">Log</div>
            <div className="stat">{status.logSize}</div>
            <div className="muted">
              batches in {status.origin}
              {status.checkpointAt
                ? `, last checkpoint ${new Date(status.checkpointAt).toISOString().replace("T", " ").slice(0, 19)} UTC`
                : ""}
            </div>
          </div>
        </div>
        <h2>Ledgers</h2>
        {status.ledgers.length === 0 ? <p className="muted">No anchoring ledger is enabled.</p> : null}
        <table>
          <thead>
            <tr>
              <th>Ledger</th>
              <th>State</th>
              <th>Anchored up to</th>
              <th aria-label="coverage">Coverage</th>
              <th>Pending</th>
              <th>Awaiting finality</th>
              <th>Failed</th>
              <th>Last error</th>
            </tr>
          </thead>
          <tbody>
            {status.ledgers.map((l) => (
              <tr key={l.ledger} data-ledger={l.ledger}>
                <td>
                  <strong>{l.ledger}</strong>{" "}
                  <span className="muted">
                    every {l.intervalMs >= 60_000 ? `${l.intervalMs / 60_000} min` : `${l.intervalMs / 1000} s`}
                  </span>
                </td>
                <td>
                  <span className={`badge ${STATE_CLASS[l.state] ?? ""}`}>{l.state}</span>
                </td>
                <td>
                  {l.lastFinalSize === null ? "nothing yet" : `size ${l.lastFinalSize}`}
                  {l.lastFinalAt ? (
                    <div className="muted">
                      {new Date(l.lastFinalAt).toISOString().replace("T", " ").slice(0, 19)} UTC
                    </div>
                  ) : null}
                </td>
                <td>
                  <svg
                    width="120"
                    height="12"
                    role="img"
                    aria-label={`${l.lastFinalSize ?? 0} of ${status.logSize} batches anchored`}
                  >
                    <rect width="120" height="12" rx="3" fill="#d0d7de" />
                    <rect
                      width={Math.round((120 * (l.lastFinalSize ?? 0)) / max)}
                      height="12"
                      rx="3"
                      fill={l.state === "retrying" ? "#cf222e" : "#1a7f37"}
                    />
                  </svg>
                  <div className="muted">{l.behind === 0 ? "current" : `${l.behind} behind`}</div>
                </td>
                <td>{l.pending}</td>
                <td>{l.included}</td>
                <td>{l.failed}</td>
                <td>
                  {l.lastError ? <span className="error">{l.lastError}</span> : "-"}
                  {l.nextAttemptAt && l.lastError ? (
                    <div className="muted">next try {new Date(l.nextAttemptAt).toISOString().slice(11, 19)} UTC</div>
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </main>
    </>
  );
}
