/**
 * The participant page's drug supply card (issue 21): each kit dispensed to the participant by number (never its kit
 * type), when and by whom, and its return with compliance, each checked against its sealed entry; a link to the
 * pharmacy page to dispense the next kit.
 */
import { Link } from "@remix-run/react";

export interface ParticipantSupplyPanelProps {
  study: string;
  site: string;
  subject: string;
  kits: {
    kit: string;
    visit: string | null;
    dispensedAt: string;
    dispensedBy: string | null;
    units: number;
    returned: { on: string; units: number; compliancePercent: number | null; seal: string; matches: boolean } | null;
    /** The dispensing checked against its sealed entry, in words. */
    seal: string;
    matches: boolean;
  }[];
  canDispense: boolean;
}

export function ParticipantSupplyPanel(p: ParticipantSupplyPanelProps) {
  return (
    <section className="card" id="drug-supply" aria-labelledby="drug-supply-title">
      <h2 id="drug-supply-title">Investigational product</h2>
      {p.kits.length === 0 ? (
        <p className="muted">No kit has been dispensed to {p.subject} yet.</p>
      ) : (
        <div className="table-scroll">
          <table>
            <thead>
              <tr>
                <th scope="col">Kit</th>
                <th scope="col">Dispensed</th>
                <th scope="col">Visit</th>
                <th scope="col">Units</th>
                <th scope="col">Returned</th>
                <th scope="col">Seal</th>
              </tr>
            </thead>
            <tbody>
              {p.kits.map((k) => (
                <tr key={k.kit}>
                  <td>
                    <Link to={`/studies/${p.study}/supply/kits/${k.kit}`}>{k.kit}</Link>
                  </td>
                  <td>
                    {k.dispensedAt.slice(0, 16).replace("T", " ")} UTC{k.dispensedBy ? ` by ${k.dispensedBy}` : ""}
                  </td>
                  <td>{k.visit ?? "-"}</td>
                  <td>{k.units}</td>
                  <td>
                    {k.returned
                      ? `${k.returned.units} units on ${k.returned.on}; compliance ${
                          k.returned.compliancePercent === null ? "not computed" : `${k.returned.compliancePercent} %`
                        }`
                      : "not yet"}
                  </td>
                  <td data-seal-matches={String(k.matches && (k.returned?.matches ?? true))}>
                    {k.matches ? k.seal : <strong className="error">{k.seal}</strong>}
                    {k.returned ? (
                      <>
                        ; return:{" "}
                        {k.returned.matches ? k.returned.seal : <strong className="error">{k.returned.seal}</strong>}
                      </>
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {p.canDispense ? (
        <p>
          <Link to={`/studies/${p.study}/supply/pharmacy?${new URLSearchParams({ site: p.site, subject: p.subject })}`}>
            Dispense a kit to {p.subject}
          </Link>
        </p>
      ) : null}
    </section>
  );
}
