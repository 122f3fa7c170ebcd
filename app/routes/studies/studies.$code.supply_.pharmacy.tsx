/**
 * The site pharmacy (issue 21, ADR 0059): pick a randomized participant of the site, assign them a kit (drawn at random
 * among the site's kits of their allocation; its number only), type the kit number handed out or scan its label's code
 * (the label's address, resolved to this study's kit; any other kit is refused with the reason next to the field),
 * record returned kits with their counts (compliance shown after saving), and the site's inventory. Kit types appear
 * only for roles that may see them (supply.view_kit_types at the site).
 */
import { json, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, Link, useActionData, useLoaderData, useNavigation } from "@remix-run/react";
import {
  assignKit,
  dispenseKit,
  proposeKit,
  randomizedSubjects,
  returnKit,
  scheduleVisits,
} from "../../drug-supply/dispensing.server.ts";
import { siteInventory, supplySites } from "../../drug-supply/inventory.server.ts";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { can } from "../../platform/permissions.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { FieldError } from "../../ui/error-summary.tsx";
import { StudyPage } from "../../ui/study-page.tsx";

export const meta: MetaFunction = () => [{ title: "Pharmacy · TrialSeal" }];

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "supply.view");
  const ctx = context.ctx;
  const search = new URL(request.url).searchParams;
  const sites = await supplySites(ctx, user, study.code);
  const base = { user: { fullName: user.fullName, email: user.email }, study: study.code, sites };
  const siteCode = sites.find((s) => s.code === search.get("site"))?.code ?? sites[0]?.code ?? null;
  if (!siteCode)
    return json({ ...base, site: null, inventory: null, subjects: [], subject: null, proposal: null, visits: [] });
  const inventory = await siteInventory(ctx, user, study.code, siteCode);
  const scope = { studyId: study.id, siteId: inventory.site.id };
  const canDispense = can(user, "supply.dispense", scope);
  const subjects = canDispense ? await randomizedSubjects(ctx, user, study.code, siteCode) : [];
  const wanted = (search.get("subject") ?? "").toUpperCase();
  const subject = subjects.includes(wanted) ? wanted : null;
  return json({
    ...base,
    site: siteCode,
    canDispense,
    canReturn: can(user, "supply.return", scope),
    inventory: {
      today: inventory.today,
      showKitTypes: inventory.showKitTypes,
      kits: inventory.kits,
    },
    subjects,
    subject,
    proposal: subject ? await proposeKit(ctx, user, study.code, subject) : null,
    visits: subject ? await scheduleVisits(ctx, study.id) : [],
  });
}

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "supply.view");
  const form = await request.formData();
  const get = (k: string) => {
    const v = form.get(k);
    return typeof v === "string" ? v : "";
  };
  const wanted = get("intent");
  const intent = wanted === "return" || wanted === "assign" ? wanted : "dispense";
  try {
    if (intent === "assign") {
      const a = await assignKit(context.ctx, user, study.code, get("subject"));
      return json({
        form: intent,
        error: null,
        field: null,
        problems: null,
        message: `Kit ${a.kit} is assigned to ${get("subject").toUpperCase()}: take it from the shelf and scan it.`,
        compliancePercent: null,
      });
    }
    if (intent === "return") {
      const r = await returnKit(context.ctx, user, study.code, {
        kit: get("kit"),
        unitsReturned: get("units"),
        returnedOn: get("returnedOn"),
      });
      const compliance =
        r.compliancePercent === null
          ? "compliance is not computed (returned the day it was dispensed, or no daily units for this product)"
          : `compliance ${r.compliancePercent}%`;
      return json({
        form: intent,
        error: null,
        field: null,
        problems: null,
        message: `Kit ${r.kit} returned with ${get("units").trim()} units: ${compliance}.`,
        compliancePercent: r.compliancePercent,
      });
    }
    const r = await dispenseKit(context.ctx, user, study.code, get("subject"), {
      kit: get("kit"),
      visit: get("visit"),
    });
    return json({
      form: intent,
      error: null,
      field: null,
      problems: null,
      message: `Kit ${r.kit} dispensed to ${get("subject").toUpperCase()}.`,
      compliancePercent: null,
    });
  } catch (err) {
    return serviceErrorResponse(err, { form: intent, message: null, compliancePercent: null }, "kit");
  }
}

export default function Pharmacy() {
  const d = useLoaderData<typeof loader>();
  const r = useActionData<typeof action>();
  const busy = useNavigation().state === "submitting";
  const err = (form: string, field: string) => (r?.form === form && r.field === field && r.error ? r.error : null);
  const flash = r && !(r.error && (r.field || r.form === "assign")) ? r : null;
  const dispenseKitError = err("dispense", "kit");
  const assignError = r?.form === "assign" && r.error ? r.error : null;
  const subjectError = err("dispense", "subject");
  const visitError = err("dispense", "visit");
  const returnErrors = { kit: err("return", "kit"), units: err("return", "units"), on: err("return", "returnedOn") };
  const inv = d.inventory;
  return (
    <StudyPage
      user={d.user}
      study={d.study}
      title="Pharmacy"
      crumbs={[{ to: `/studies/${d.study}/supply`, label: "Drug supply" }]}
      flash={flash}
    >
      {d.sites.length > 1 ? (
        <Form method="get" className="inline-form">
          <label htmlFor="site">Site</label>
          <select id="site" name="site" defaultValue={d.site ?? undefined}>
            {d.sites.map((s) => (
              <option key={s.code} value={s.code}>
                {s.code} ({s.name})
              </option>
            ))}
          </select>{" "}
          <button type="submit">Show</button>
        </Form>
      ) : null}
      {!d.site || !inv ? (
        <p>You have no site whose supply you can see in this study.</p>
      ) : (
        <>
          {"canDispense" in d && d.canDispense ? (
            <section className="card" data-dispense>
              <h2>Dispense a kit at {d.site}</h2>
              <Form method="get">
                <input type="hidden" name="site" value={d.site} />
                <label htmlFor="pick-subject">Participant (randomized at {d.site})</label>
                {d.subjects.length === 0 ? (
                  <p className="muted">No participant of this site is randomized yet.</p>
                ) : (
                  <>
                    <select id="pick-subject" name="subject" defaultValue={d.subject ?? ""}>
                      <option value="">Choose a participant</option>
                      {d.subjects.map((s) => (
                        <option key={s} value={s}>
                          {s}
                        </option>
                      ))}
                    </select>{" "}
                    <button type="submit">Show the kit to dispense</button>
                  </>
                )}
              </Form>
              {d.subject && d.proposal && !d.proposal.kit ? (
                <Form method="post" data-assign-form>
                  <input type="hidden" name="intent" value="assign" />
                  <input type="hidden" name="subject" value={d.subject} />
                  <p className="muted" data-no-kit>
                    {d.proposal.why}
                  </p>
                  <p className="muted">
                    A kit of {d.subject}'s allocation is drawn at random among the kits on hand here; only that kit can
                    then be dispensed to them.
                  </p>
                  {assignError ? (
                    <p className="field-error" role="alert" id="assign-error">
                      {assignError}
                    </p>
                  ) : null}
                  <button type="submit" disabled={busy}>
                    Assign a kit
                  </button>
                </Form>
              ) : null}
              {d.subject && d.proposal?.kit ? (
                <Form method="post" key={`dispense-${d.subject}-${d.proposal.kit}`} data-dispense-form>
                  <input type="hidden" name="intent" value="dispense" />
                  <input type="hidden" name="subject" value={d.subject} />
                  <p data-proposed-kit={d.proposal.kit}>
                    Kit assigned to {d.subject}: <strong>{d.proposal.kit}</strong>. Take it from the shelf and scan or
                    type its number.
                  </p>
                  {subjectError ? <FieldError target="dispense-subject" message={subjectError} /> : null}
                  <label htmlFor="dispense-kit">Kit number on the label</label>
                  <p className="muted" id="dispense-kit-hint">
                    Type or scan: type the kit number, or scan the code on the kit's label.
                  </p>
                  <input
                    id="dispense-kit"
                    name="kit"
                    type="text"
                    inputMode="numeric"
                    autoComplete="off"
                    // biome-ignore lint/a11y/noAutofocus: the pharmacist scans the label straight away
                    autoFocus
                    aria-invalid={dispenseKitError ? true : undefined}
                    aria-describedby={dispenseKitError ? "dispense-kit-hint dispense-kit-error" : "dispense-kit-hint"}
                  />
                  {dispenseKitError ? <FieldError target="dispense-kit" message={dispenseKitError} /> : null}
                  {d.visits.length ? (
                    <>
                      <label htmlFor="dispense-visit">Visit</label>
                      <select
                        id="dispense-visit"
                        name="visit"
                        defaultValue=""
                        aria-invalid={visitError ? true : undefined}
                        aria-describedby={visitError ? "dispense-visit-error" : undefined}
                      >
                        <option value="">(not at a scheduled visit)</option>
                        {d.visits.map((v) => (
                          <option key={v.code} value={v.code}>
                            {v.name} ({v.code})
                          </option>
                        ))}
                      </select>
                      {visitError ? <FieldError target="dispense-visit" message={visitError} /> : null}
                    </>
                  ) : null}
                  <button type="submit" disabled={busy}>
                    Dispense
                  </button>
                </Form>
              ) : null}
            </section>
          ) : null}
          {"canReturn" in d && d.canReturn ? (
            <section className="card" data-returns>
              <h2>Record a returned kit</h2>
              <Form method="post" data-return-form>
                <input type="hidden" name="intent" value="return" />
                <label htmlFor="return-kit">Kit number</label>
                <p className="muted" id="return-kit-hint">
                  Type or scan: type the kit number, or scan the code on the kit's label.
                </p>
                <input
                  id="return-kit"
                  name="kit"
                  type="text"
                  inputMode="numeric"
                  autoComplete="off"
                  aria-invalid={returnErrors.kit ? true : undefined}
                  aria-describedby={returnErrors.kit ? "return-kit-hint return-kit-error" : "return-kit-hint"}
                />
                {returnErrors.kit ? <FieldError target="return-kit" message={returnErrors.kit} /> : null}
                <label htmlFor="return-units">Units returned (counted)</label>
                <input
                  id="return-units"
                  name="units"
                  type="text"
                  inputMode="numeric"
                  aria-invalid={returnErrors.units ? true : undefined}
                  aria-describedby={returnErrors.units ? "return-units-error" : undefined}
                />
                {returnErrors.units ? <FieldError target="return-units" message={returnErrors.units} /> : null}
                <label htmlFor="return-on">Date returned</label>
                <input
                  id="return-on"
                  name="returnedOn"
                  type="date"
                  defaultValue={inv.today}
                  max={inv.today}
                  aria-invalid={returnErrors.on ? true : undefined}
                  aria-describedby={returnErrors.on ? "return-on-error" : undefined}
                />
                {returnErrors.on ? <FieldError target="return-on" message={returnErrors.on} /> : null}
                <button type="submit" disabled={busy}>
                  Record the return
                </button>
              </Form>
              {r?.form === "return" && !r.error && r.message ? (
                <p role="status" data-compliance={r.compliancePercent ?? ""}>
                  {r.message}
                </p>
              ) : null}
            </section>
          ) : null}
          <section className="card" data-inventory={d.site}>
            <h2>Inventory at {d.site}</h2>
            {inv.kits.length === 0 ? (
              <p className="muted">No kit has been shipped to this site yet.</p>
            ) : (
              <div className="table-scroll">
                <table>
                  <thead>
                    <tr>
                      <th>Kit</th>
                      <th>State</th>
                      <th>Expiry</th>
                      <th>Dispensed to</th>
                      {inv.showKitTypes ? <th>Kit type</th> : null}
                    </tr>
                  </thead>
                  <tbody>
                    {inv.kits.map((k) => (
                      <tr key={k.number} data-kit={k.number} data-location={k.location}>
                        <td>
                          <Link to={`/studies/${d.study}/supply/kits/${k.number}`}>{k.number}</Link>
                        </td>
                        <td>{k.state}</td>
                        <td>{k.expiresOn}</td>
                        <td>{k.subject ?? ""}</td>
                        {inv.showKitTypes ? <td>{k.kitType}</td> : null}
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </section>
        </>
      )}
    </StudyPage>
  );
}
