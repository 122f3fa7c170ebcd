/**
 * A kit's page (issue 21, ADR 0061): its state in words, units, expiry, and its history: each event with when, who,
 * what, and its seal state checked against its entry (a row that differs from its entry, or an entry whose row is
 * gone, is shown as such, never as sealed). Roles with supply.custody download the chain-of-custody file to verify
 * offline (`trialseal verify-custody`). Blinded roles never see the kit type nor the kit's lot (ADR 0057).
 */
import { json, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { useLoaderData } from "@remix-run/react";
import { kitPage } from "../../drug-supply/custody.server.ts";
import { SealBadge } from "../../log/seal-badge.tsx";
import { ServiceError } from "../../platform/errors.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { UtcAndLocal } from "../../ui/local-time.tsx";
import { StudyPage } from "../../ui/study-page.tsx";

export const meta: MetaFunction<typeof loader> = ({ data }) => [{ title: `Kit ${data?.kit.kit ?? ""} · TrialSeal` }];

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "supply.view");
  try {
    const kit = await kitPage(context.ctx, user, study.code, params.number ?? "");
    return json(
      { user: { fullName: user.fullName, email: user.email }, study: study.code, kit },
      { headers: { "cache-control": "no-store" } },
    );
  } catch (err) {
    if (err instanceof ServiceError)
      throw new Response(err.message, { status: err.status, headers: { "content-type": "text/plain; charset=utf-8" } });
    throw err;
  }
}

export default function KitPage() {
  const { user, study, kit } = useLoaderData<typeof loader>();
  return (
    <StudyPage
      user={user}
      study={study}
      title={`Kit ${kit.kit}`}
      crumbs={[{ to: `/studies/${study}/supply`, label: "Drug supply" }]}
    >
      <dl>
        <dt>State</dt>
        <dd data-kit-state>{kit.state}</dd>
        <dt>Units</dt>
        <dd>{kit.units}</dd>
        <dt>Expires</dt>
        <dd>{kit.expiresOn}</dd>
        <dt>Site</dt>
        <dd>{kit.site ?? "not shipped to a site"}</dd>
        {kit.dispensedTo ? (
          <>
            <dt>Dispensed to</dt>
            <dd>{kit.dispensedTo}</dd>
          </>
        ) : null}
        {"kitType" in kit && kit.kitType ? (
          <>
            <dt>Kit type (unblinded)</dt>
            <dd>{kit.kitType}</dd>
            <dt>Lot</dt>
            <dd>{kit.lot ?? "?"}</dd>
          </>
        ) : null}
      </dl>
      {kit.allMatch ? null : (
        <p className="error" role="alert">
          Some of this kit's records do not match their sealed entries: they are marked below. Ask a regulator or the
          sponsor to run the integrity audit.
        </p>
      )}
      <h2>History</h2>
      <div className="table-scroll">
        <table className="kit-history">
          <thead>
            <tr>
              <th>When</th>
              <th>Who</th>
              <th>What</th>
              <th>Seal</th>
            </tr>
          </thead>
          <tbody>
            {kit.history.map((e) => (
              <tr key={`${e.kind}-${e.seal.seq ?? e.at}`} data-event={e.kind}>
                <td data-label="When">
                  <UtcAndLocal iso={e.at} />
                </td>
                <td data-label="Who">{e.by || "?"}</td>
                <td data-label="What">{e.what}</td>
                <td data-label="Seal">
                  <SealBadge seal={e.seal} />
                  {e.differs.length ? <span className="muted"> (differs in: {e.differs.join(", ")})</span> : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {kit.canDownload ? (
        <>
          <h2>Chain of custody</h2>
          <p>
            The proof bundles of every entry naming this kit, in one file. Check it offline with{" "}
            <code>trialseal verify-custody FILE --pin SHA256</code> (the SHA-256 of the trust policy you pinned).
          </p>
          <p>
            <a href={`/studies/${study}/supply/kits/${kit.kit}/custody.json`} download>
              Download the custody file
            </a>
          </p>
        </>
      ) : null}
    </StudyPage>
  );
}
