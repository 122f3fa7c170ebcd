/**
 * The drug supply hub (issue 21): what the signed-in person may do with the investigational product, in words, kits by
 * state at the depot and at each site they may see (counts only: never a kit type, a lot of a kit, or a kit number),
 * and links to lots, shipments, pharmacy, reconciliation, destructions and exports.
 */
import { json, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Link, useLoaderData } from "@remix-run/react";
import { supplyOverview } from "../../drug-supply/lots.server.ts";
import { can } from "../../platform/permissions.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { StudyPage } from "../../ui/study-page.tsx";

export const meta: MetaFunction = () => [{ title: "Drug supply · TrialSeal" }];

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "supply.view");
  const o = await supplyOverview(context.ctx, user, study.code);
  const scope = { studyId: study.id };
  const may = (a: Parameters<typeof can>[1]) => can(user, a, scope);
  return json(
    {
      user: { fullName: user.fullName, email: user.email },
      study: study.code,
      abilities: o.abilities,
      depot: o.depot,
      sites: o.sites,
      links: {
        pharmacy:
          may("supply.dispense") || may("supply.return") || may("supply.receive") || may("supply.view_kit_types"),
        reconciliation: may("supply.reconcile"),
        destructions: may("supply.destroy") || may("supply.witness"),
        exports: may("supply.export"),
      },
    },
    { headers: { "cache-control": "no-store" } },
  );
}

const COLUMNS = [
  ["atDepot", "At depot"],
  ["inTransit", "In transit"],
  ["quarantined", "Quarantined"],
  ["rejected", "Rejected"],
  ["onHand", "On hand"],
  ["dispensed", "Dispensed"],
  ["returned", "Returned"],
  ["destroyed", "Destroyed"],
  ["recalled", "Recalled, held"],
  ["expired", "Expired, held"],
] as const;

export default function Supply() {
  const d = useLoaderData<typeof loader>();
  const base = `/studies/${d.study}/supply`;
  const rows = [...(d.depot ? [{ code: "Depot", name: "not yet shipped", kits: d.depot }] : []), ...d.sites];
  return (
    <StudyPage user={d.user} study={d.study} title="Drug supply">
      <p>
        Investigational product from lot to participant: lots and their kits, shipments from the depot to the sites,
        dispensing by each participant's allocation, returns, destruction with a witness, reconciliation, and recalls.
        Every step is sealed in the study's log.
      </p>
      <section aria-labelledby="can-title">
        <h2 id="can-title">What you can do here</h2>
        {d.abilities.length === 0 ? (
          <p className="muted">You can see the lots and the kits' states; your role records nothing here.</p>
        ) : (
          <ul data-abilities>
            {d.abilities.map((a) => (
              <li key={a}>{a}</li>
            ))}
          </ul>
        )}
      </section>
      <nav aria-labelledby="pages-title">
        <h2 id="pages-title">Pages</h2>
        <ul>
          <li>
            <Link to={`${base}/lots`}>Lots</Link>: certificates, release, kits, labels, recalls
          </li>
          <li>
            <Link to={`${base}/shipments`}>Shipments</Link>: sent, received, temperature excursions
          </li>
          {d.links.pharmacy ? (
            <li>
              <Link to={`${base}/pharmacy`}>Pharmacy</Link>: site inventory, dispensing, returns
            </li>
          ) : null}
          {d.links.destructions ? (
            <li>
              <Link to={`${base}/destructions`}>Destructions</Link>: record, witness
            </li>
          ) : null}
          {d.links.reconciliation ? (
            <li>
              <Link to={`${base}/reconciliation`}>Reconciliation</Link>: expected against counted per site
            </li>
          ) : null}
          {d.links.exports ? (
            <li>
              Exports: <a href={`${base}/fhir.json`}>FHIR R4 (JSON)</a>, <a href={`${base}/odm.xml`}>CDISC ODM (XML)</a>
              {d.sites.map((s) => (
                <span key={s.code}>
                  ; accountability log of {s.code}:{" "}
                  <a href={`${base}/accountability.csv?site=${encodeURIComponent(s.code)}`}>CSV</a>,{" "}
                  <a href={`${base}/accountability.pdf?site=${encodeURIComponent(s.code)}`}>PDF</a>
                </span>
              ))}
            </li>
          ) : null}
        </ul>
      </nav>
      <section aria-labelledby="kits-title">
        <h2 id="kits-title">Kits by state</h2>
        {rows.length === 0 ? (
          <p className="muted">No site to show.</p>
        ) : (
          <div className="table-scroll">
            <table data-kit-counts>
              <thead>
                <tr>
                  <th>Where</th>
                  {COLUMNS.map(([k, label]) => (
                    <th key={k}>{label}</th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {rows.map((r) => (
                  <tr key={r.code} data-site={r.code}>
                    <th scope="row">
                      {r.code} <span className="muted">({r.name})</span>
                    </th>
                    {COLUMNS.map(([k]) => (
                      <td key={k} data-count={k}>
                        {r.kits[k]}
                      </td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        <p className="muted">
          "Recalled, held" and "Expired, held" count kits of a recalled or expired lot still at the depot or a site:
          they must not be dispensed.
        </p>
      </section>
    </StudyPage>
  );
}
