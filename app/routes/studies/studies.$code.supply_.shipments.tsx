/**
 * Shipments (issue 21, ADR 0058): the depot manager sends kits of released lots to a site (how many of each lot, or
 * kit numbers); the site receives a shipment once with the lowest and highest temperature in transit or the
 * logger's CSV file (read as it streams in, at most 1 MiB); an excursion quarantines its kits until the sponsor
 * releases them or has them destroyed, with a reason. Site staff see their sites' shipments only; kits appear as
 * numbers and states, never with their lot or type.
 */
import {
  json,
  unstable_composeUploadHandlers,
  unstable_createMemoryUploadHandler,
  unstable_parseMultipartFormData,
  type ActionFunctionArgs,
  type LoaderFunctionArgs,
  type MetaFunction,
} from "@remix-run/node";
import { Form, useActionData, useLoaderData, useNavigation } from "@remix-run/react";
import {
  decideQuarantine,
  LOGGER_MAX_BYTES,
  readLoggerUpload,
  receiveShipment,
  type RowSeal,
  sendShipment,
  shipmentFormData,
  shipmentsView,
} from "../../drug-supply/shipments.server.ts";
import { SealBadge } from "../../log/seal-badge.tsx";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { FieldError } from "../../ui/error-summary.tsx";
import { UtcAndLocal } from "../../ui/local-time.tsx";
import { StudyPage } from "../../ui/study-page.tsx";

export const meta: MetaFunction = () => [{ title: "Shipments · TrialSeal" }];

/** A row's seal checked against its entry; a row that differs says so and names the fields, never "sealed". */
function RowSealBadge({ s }: { s: RowSeal }) {
  return (
    <>
      <SealBadge seal={s.seal} />
      {s.differs.length ? <span className="error"> (differs: {s.differs.join(", ")})</span> : null}
    </>
  );
}

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "supply.view");
  const view = await shipmentsView(context.ctx, user, study.code);
  const form = await shipmentFormData(context.ctx, user, study.code);
  return json(
    {
      user: { fullName: user.fullName, email: user.email },
      study: study.code,
      shipments: view.shipments,
      send: form.sites.length ? form : null,
      maxMb: LOGGER_MAX_BYTES / (1024 * 1024),
    },
    { headers: { "cache-control": "no-store" } },
  );
}

type Intent = "send" | "receive" | "decide";

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "supply.view");
  // The receipt is the multipart form (the logger file); sending and deciding are plain forms.
  const multipart = (request.headers.get("content-type") ?? "").startsWith("multipart/form-data");
  let intent: Intent = multipart ? "receive" : "send";
  let target = "";
  try {
    if (multipart) {
      let logger: { fileName: string; bytes: Uint8Array } | null = null;
      const form = await unstable_parseMultipartFormData(
        request,
        unstable_composeUploadHandlers(
          async ({ name, data, filename }) => {
            if (name !== "logger" || !filename) return undefined;
            // Read as it streams in: refused once it passes the limit, never held whole beyond it.
            logger = { fileName: filename, bytes: await readLoggerUpload(data) };
            return "received";
          },
          unstable_createMemoryUploadHandler({ maxPartSize: 16 * 1024 }),
        ),
      );
      const text = (k: string) => String(form.get(k) ?? "");
      target = text("shipment");
      const r = await receiveShipment(context.ctx, user, study.code, target, {
        temperatureMinC: text("temperatureMinC"),
        temperatureMaxC: text("temperatureMaxC"),
        excursion: text("excursion"),
        logger,
      });
      return json({
        form: intent,
        target,
        error: null,
        field: null,
        message: r.excursion
          ? `Shipment ${target} received with a temperature excursion (${r.why.join("; ")}): its ${r.quarantined} ` +
            "kits are quarantined until the sponsor decides; the sponsor has been told."
          : `Shipment ${target} received; its kits are on hand at the site.`,
      });
    }
    const form = await request.formData();
    const text = (k: string) => {
      const v = form.get(k);
      return typeof v === "string" ? v : "";
    };
    intent = text("intent") === "decide" ? "decide" : "send";
    if (intent === "decide") {
      target = text("shipment");
      const r = await decideQuarantine(context.ctx, user, study.code, target, {
        outcome: text("outcome") || undefined,
        reason: text("reason"),
      });
      return json({
        form: intent,
        target,
        error: null,
        field: null,
        message:
          r.outcome === "release"
            ? `The kits of shipment ${target} are released for use; the decision and its reason are sealed.`
            : `The kits of shipment ${target} are rejected: record their destruction at the site.`,
      });
    }
    const fromLots = [...form.keys()]
      .filter((k) => k.startsWith("count:") && text(k).trim() !== "" && text(k).trim() !== "0")
      .map((k) => ({ lotNumber: k.slice("count:".length), count: text(k) }));
    const kits = text("kits")
      .split(/[\s,;]+/)
      .filter(Boolean);
    const r = await sendShipment(context.ctx, user, study.code, {
      site: text("site"),
      depot: text("depot"),
      kits: kits.length ? kits : undefined,
      fromLots: fromLots.length ? fromLots : undefined,
    });
    return json({
      form: intent,
      target: r.number,
      error: null,
      field: null,
      message: `Shipment ${r.number} sent with ${r.kits.length} kits: ${r.kits.join(", ")}.`,
    });
  } catch (err) {
    if (err instanceof Error && /exceeded upload size/i.test(err.message))
      return json({ form: intent, target, error: "a form field is too long", field: null, message: null }, 413);
    return serviceErrorResponse(err, { form: intent, target, message: null });
  }
}

export default function Shipments() {
  const d = useLoaderData<typeof loader>();
  const r = useActionData<typeof action>();
  const busy = useNavigation().state === "submitting";
  const err = (form: Intent, field: string, target = "") =>
    r?.form === form && r.error && r.field === field && (form === "send" || r.target === target) ? r.error : null;
  const inline = (form: Intent, target = "") =>
    r?.form === form && r.error && (form === "send" || r.target === target) ? r.error : null;
  const described = (id: string, e: string | null) =>
    e ? { "aria-invalid": true as const, "aria-describedby": `${id}-error` } : {};
  // An error is shown next to its field (or its form); the page's flash carries the rest.
  const shownInline =
    Boolean(r?.error) && (r?.form === "send" ? Boolean(d.send) : d.shipments.some((s) => s.number === r?.target));
  const sendErrors = {
    site: err("send", "site"),
    depot: err("send", "depot"),
    fromLots: err("send", "fromLots"),
    kits: err("send", "kits"),
  };
  const sendOther =
    r?.form === "send" && r.error && !Object.values(sendErrors).some(Boolean) ? (r.error as string) : null;
  return (
    <StudyPage
      user={d.user}
      study={d.study}
      title="Shipments"
      crumbs={[{ to: `/studies/${d.study}/supply`, label: "Drug supply" }]}
      flash={shownInline ? null : r}
    >
      <p>
        Kits travel from the depot to a site in a shipment. The site records its receipt once, with the lowest and
        highest temperature in transit or the temperature logger's file. A temperature outside the kits' storage range
        quarantines the kits until the sponsor releases them or has them destroyed, with a reason.
      </p>
      {d.send ? (
        <section className="card" aria-labelledby="send-title" data-send-shipment>
          <h2 id="send-title">Send a shipment</h2>
          <Form method="post" noValidate key={`send-${d.shipments.length}`}>
            <input type="hidden" name="intent" value="send" />
            <label htmlFor="ship-site">To site</label>
            <select id="ship-site" name="site" {...described("ship-site", sendErrors.site)}>
              {d.send.sites.map((s) => (
                <option key={s.code} value={s.code}>
                  {s.code}: {s.name}
                </option>
              ))}
            </select>
            {sendErrors.site ? <FieldError target="ship-site" message={sendErrors.site} /> : null}
            <label htmlFor="ship-depot">From depot (its code)</label>
            <input
              id="ship-depot"
              name="depot"
              type="text"
              defaultValue="DEPOT"
              {...described("ship-depot", sendErrors.depot)}
            />
            {sendErrors.depot ? <FieldError target="ship-depot" message={sendErrors.depot} /> : null}
            <fieldset id="ship-lots" {...described("ship-lots", sendErrors.fromLots)}>
              <legend>How many kits of each lot</legend>
              {d.send.lots.length === 0 ? <p className="muted">No lot is registered yet.</p> : null}
              {d.send.lots.map((l) => (
                <p key={l.lotNumber}>
                  <label htmlFor={`count-${l.lotNumber}`}>
                    Lot {l.lotNumber}: {l.atDepot} at the depot, expires {l.expiresOn}
                    {l.why ? ` (${l.why})` : ""}
                  </label>
                  <input
                    id={`count-${l.lotNumber}`}
                    name={`count:${l.lotNumber}`}
                    type="number"
                    inputMode="numeric"
                    min={0}
                    max={l.atDepot}
                    disabled={!l.shippable}
                  />
                </p>
              ))}
            </fieldset>
            {sendErrors.fromLots ? <FieldError target="ship-lots" message={sendErrors.fromLots} /> : null}
            <label htmlFor="ship-kits">Or these kit numbers (scan or type, separated by spaces or new lines)</label>
            <textarea id="ship-kits" name="kits" rows={3} {...described("ship-kits", sendErrors.kits)} />
            {sendErrors.kits ? <FieldError target="ship-kits" message={sendErrors.kits} /> : null}
            {sendOther ? (
              <p className="field-error" role="alert">
                {sendOther}
              </p>
            ) : null}
            <button type="submit" disabled={busy}>
              Send and seal
            </button>
          </Form>
        </section>
      ) : null}
      <h2>Shipments</h2>
      {d.shipments.length === 0 ? <p className="muted">No shipment yet.</p> : null}
      {d.shipments.map((s) => {
        const id = s.number.toLowerCase();
        const minErr = err("receive", "temperatureMinC", s.number);
        const maxErr = err("receive", "temperatureMaxC", s.number);
        const loggerErr = err("receive", "logger", s.number);
        const reasonErr = err("decide", "reason", s.number);
        const outcomeErr = err("decide", "outcome", s.number);
        const receiveOther = !minErr && !maxErr && !loggerErr ? inline("receive", s.number) : null;
        const decideOther = !reasonErr && !outcomeErr ? inline("decide", s.number) : null;
        return (
          <article key={s.number} className="card" data-shipment={s.number} data-status={s.status}>
            <h3>
              {s.number} to site {s.site}:{" "}
              <span className={s.status === "quarantined" || s.status === "rejected" ? "badge bad" : "badge"}>
                {s.statusWords}
              </span>
            </h3>
            <dl className="facts">
              <dt>Sent</dt>
              <dd>
                from {s.depot} by {s.sentBy}, <UtcAndLocal iso={s.sentAt} /> <RowSealBadge s={s.seal} />
              </dd>
              {s.receipt ? (
                <>
                  <dt>Received</dt>
                  <dd>
                    by {s.receipt.by}, <UtcAndLocal iso={s.receipt.at} /> <RowSealBadge s={s.receipt.seal} />
                  </dd>
                  <dt>Temperature</dt>
                  <dd>
                    {s.receipt.temperatureMin !== null
                      ? `${s.receipt.temperatureMin} to ${s.receipt.temperatureMax}`
                      : "not recorded"}
                    {s.receipt.excursion ? " (excursion)" : ""}
                  </dd>
                  {s.receipt.logger ? (
                    <>
                      <dt>Logger file</dt>
                      <dd>
                        {s.receipt.logger.fileName}, SHA-256 <code>{s.receipt.logger.sha256}</code>
                      </dd>
                    </>
                  ) : null}
                </>
              ) : null}
              {s.decision ? (
                <>
                  <dt>Sponsor's decision</dt>
                  <dd data-decision={s.decision.outcome}>
                    {s.decision.outcome === "release" ? "released for use" : "rejected: to be destroyed"} by{" "}
                    {s.decision.by}, <UtcAndLocal iso={s.decision.at} />; reason: {s.decision.reason}{" "}
                    <RowSealBadge s={s.decision.seal} />
                  </dd>
                </>
              ) : null}
              <dt>Kits ({s.kits.length})</dt>
              <dd>
                <ul>
                  {s.kits.map((k) => (
                    <li key={k.number} data-kit={k.number}>
                      {k.number}: {k.state}
                    </li>
                  ))}
                </ul>
              </dd>
            </dl>
            {s.canReceive ? (
              <Form method="post" encType="multipart/form-data" noValidate data-receive={s.number}>
                <h4>Record the receipt</h4>
                <input type="hidden" name="shipment" value={s.number} />
                <label htmlFor={`${id}-min`}>Lowest temperature in transit (°C)</label>
                <input
                  id={`${id}-min`}
                  name="temperatureMinC"
                  type="text"
                  inputMode="decimal"
                  {...described(`${id}-min`, minErr)}
                />
                {minErr ? <FieldError target={`${id}-min`} message={minErr} /> : null}
                <label htmlFor={`${id}-max`}>Highest temperature in transit (°C)</label>
                <input
                  id={`${id}-max`}
                  name="temperatureMaxC"
                  type="text"
                  inputMode="decimal"
                  {...described(`${id}-max`, maxErr)}
                />
                {maxErr ? <FieldError target={`${id}-max`} message={maxErr} /> : null}
                <label htmlFor={`${id}-logger`}>
                  Or the temperature logger's file (CSV with a time and a °C column, at most {d.maxMb} MB)
                </label>
                <input
                  id={`${id}-logger`}
                  name="logger"
                  type="file"
                  accept=".csv,text/csv,text/plain"
                  {...described(`${id}-logger`, loggerErr)}
                />
                {loggerErr ? <FieldError target={`${id}-logger`} message={loggerErr} /> : null}
                <label className="inline">
                  <input type="checkbox" name="excursion" value="yes" /> The logger's alarm went off, or the package
                  arrived warm, frozen or damaged: quarantine the kits
                </label>
                {receiveOther ? (
                  <p className="field-error" role="alert">
                    {receiveOther}
                  </p>
                ) : null}
                <button type="submit" disabled={busy}>
                  Record receipt and seal
                </button>
              </Form>
            ) : null}
            {s.canDecide ? (
              <Form method="post" noValidate data-decide={s.number}>
                <h4>Decide on the quarantined kits</h4>
                <input type="hidden" name="intent" value="decide" />
                <input type="hidden" name="shipment" value={s.number} />
                <fieldset id={`${id}-outcome`} {...described(`${id}-outcome`, outcomeErr)}>
                  <legend>Decision</legend>
                  <label className="inline">
                    <input type="radio" name="outcome" value="release" /> Release the kits for use
                  </label>
                  <label className="inline">
                    <input type="radio" name="outcome" value="destroy" /> Reject them: the site destroys them
                  </label>
                </fieldset>
                {outcomeErr ? <FieldError target={`${id}-outcome`} message={outcomeErr} /> : null}
                <label htmlFor={`${id}-reason`}>Reason (for example: stability data cover the excursion)</label>
                <textarea id={`${id}-reason`} name="reason" rows={2} {...described(`${id}-reason`, reasonErr)} />
                {reasonErr ? <FieldError target={`${id}-reason`} message={reasonErr} /> : null}
                {decideOther ? (
                  <p className="field-error" role="alert">
                    {decideOther}
                  </p>
                ) : null}
                <button type="submit" disabled={busy}>
                  Decide and seal
                </button>
              </Form>
            ) : null}
          </article>
        );
      })}
    </StudyPage>
  );
}
