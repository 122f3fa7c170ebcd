/**
 * Reconciliation of a site's kits (issue 21, ADR 0064): the monitor chooses a site and pastes or scans the kit
 * numbers counted there (one a line, or separated by commas); the result lists expected against counted, the missing
 * and the unexpected kits, sealed. Below, the past reconciliations with their discrepancies.
 */
import { json, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, useActionData, useLoaderData, useNavigation } from "@remix-run/react";
import { supplySites } from "../../drug-supply/inventory.server.ts";
import { reconcileSite, reconciliationView } from "../../drug-supply/reconciliation.server.ts";
import { SealBadge } from "../../log/seal-badge.tsx";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { FieldError } from "../../ui/error-summary.tsx";
import { UtcAndLocal } from "../../ui/local-time.tsx";
import { StudyPage } from "../../ui/study-page.tsx";

export const meta: MetaFunction = () => [{ title: "Reconciliation · TrialSeal" }];

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "supply.view");
  const sites = await supplySites(context.ctx, user, study.code, "supply.reconcile");
  const history = await reconciliationView(context.ctx, user, study.code);
  return json({
    user: { fullName: user.fullName, email: user.email },
    study: study.code,
    sites,
    history: history.map((h) => ({ ...h, at: h.at.toISOString() })),
  });
}

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "supply.reconcile");
  const form = await request.formData();
  const get = (k: string) => {
    const v = form.get(k);
    return typeof v === "string" ? v : "";
  };
  try {
    const r = await reconcileSite(context.ctx, user, study.code, { site: get("site"), counted: get("counted") });
    const clean = r.missing.length === 0 && r.unexpected.length === 0;
    return json({
      result: { site: get("site").toUpperCase(), ...r },
      message: clean
        ? "Every expected kit was counted and nothing else: no discrepancy."
        : `${r.missing.length} missing and ${r.unexpected.length} unexpected kits: see the result below.`,
      error: null,
      field: null,
      problems: null,
      counted: "",
    });
  } catch (err) {
    return serviceErrorResponse(err, { result: null, message: null, counted: get("counted") }, "counted");
  }
}

function KitList({ kits, empty }: { kits: string[]; empty: string }) {
  return kits.length ? <span>{kits.join(", ")}</span> : <span className="muted">{empty}</span>;
}

export default function Reconciliation() {
  const d = useLoaderData<typeof loader>();
  const r = useActionData<typeof action>();
  const busy = useNavigation().state === "submitting";
  const countedError = r?.error && r.field === "counted" ? r.error : null;
  const siteError = r?.error && r.field === "site" ? r.error : null;
  const res = r?.result ?? null;
  return (
    <StudyPage
      user={d.user}
      study={d.study}
      title="Reconciliation"
      crumbs={[{ to: `/studies/${d.study}/supply`, label: "Drug supply" }]}
      flash={countedError || siteError ? null : r}
    >
      {d.sites.length ? (
        <section className="card" data-reconcile>
          <h2>Count a site's kits</h2>
          <p>
            Scan or type every kit number you find at the site (on the shelves and among the returned kits awaiting
            destruction), one a line or separated by commas. The records' list is compared with yours and both are
            sealed.
          </p>
          <Form method="post" key={res?.reconciliationId ?? "reconcile"}>
            <label htmlFor="rec-site">Site</label>
            <select
              id="rec-site"
              name="site"
              aria-invalid={siteError ? true : undefined}
              aria-describedby={siteError ? "rec-site-error" : undefined}
            >
              {d.sites.map((s) => (
                <option key={s.code} value={s.code}>
                  {s.code} ({s.name})
                </option>
              ))}
            </select>
            {siteError ? <FieldError target="rec-site" message={siteError} /> : null}
            <label htmlFor="rec-counted">Kit numbers counted</label>
            <textarea
              id="rec-counted"
              name="counted"
              rows={8}
              inputMode="numeric"
              defaultValue={r?.counted ?? ""}
              aria-invalid={countedError ? true : undefined}
              aria-describedby={countedError ? "rec-counted-error" : undefined}
            />
            {countedError ? <FieldError target="rec-counted" message={countedError} /> : null}
            <button type="submit" disabled={busy}>
              Reconcile
            </button>
          </Form>
        </section>
      ) : null}
      {res ? (
        <section className="card" data-reconciliation-result={res.reconciliationId}>
          <h2>Result at {res.site}</h2>
          <dl className="facts">
            <dt>Expected</dt>
            <dd data-expected={res.expected.length}>
              {res.expected.length} kits{res.returned.length ? ` (${res.returned.length} of them returned)` : ""}
            </dd>
            <dt>Counted</dt>
            <dd data-counted={res.counted.length}>{res.counted.length} kits</dd>
            <dt>Missing</dt>
            <dd data-missing={res.missing.join(",")}>
              <KitList kits={res.missing} empty="none" />
            </dd>
            <dt>Unexpected</dt>
            <dd data-unexpected={res.unexpected.join(",")}>
              <KitList kits={res.unexpected} empty="none" />
            </dd>
          </dl>
        </section>
      ) : null}
      <section className="card" data-reconciliation-history>
        <h2>Past reconciliations</h2>
        {d.history.length === 0 ? (
          <p className="muted">None yet.</p>
        ) : (
          <div className="table-scroll">
            <table>
              <thead>
                <tr>
                  <th>Site</th>
                  <th>When, by whom</th>
                  <th>Expected</th>
                  <th>Counted</th>
                  <th>Missing</th>
                  <th>Unexpected</th>
                  <th>Seal</th>
                </tr>
              </thead>
              <tbody>
                {d.history.map((h) => (
                  <tr key={h.id} data-reconciliation={h.id}>
                    <td>{h.site}</td>
                    <td>
                      <UtcAndLocal iso={h.at} />, {h.by}
                    </td>
                    <td>{h.expected}</td>
                    <td>{h.counted}</td>
                    <td>
                      <KitList kits={h.missing} empty="none" />
                    </td>
                    <td>
                      <KitList kits={h.unexpected} empty="none" />
                    </td>
                    <td>
                      <SealBadge seal={h.seal.seal} />
                      {h.seal.differs.length ? (
                        <span className="error"> (differs: {h.seal.differs.join(", ")})</span>
                      ) : null}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </StudyPage>
  );
}
