/**
 * Lots of investigational product (issue 21, ADR 0056, 0063, 0065). Everyone with supply.view sees the lots: number,
 * product, dates, storage range, certificate of analysis, released or recalled, and kit counts; the kit type only
 * with supply.view_kit_types (ADR 0057). The depot manager registers lots (with the CoA upload, read as a stream with
 * a size limit) and their kits, and prints labels; the sponsor releases and recalls lots and sees who received a
 * recalled lot. No kit number is shown next to its lot here, except in a recall's list of affected participants.
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
import { Form, Link, useActionData, useLoaderData, useNavigation } from "@remix-run/react";
import {
  COA_MAX_BYTES,
  MAX_KITS_PER_REGISTRATION,
  lotsView,
  registerKits,
  registerLot,
  releaseLot,
} from "../../drug-supply/lots.server.ts";
import { affectedByLot, recallLot } from "../../drug-supply/recall.server.ts";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { ServiceError } from "../../platform/errors.server.ts";
import { can } from "../../platform/permissions.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { readUpload } from "../../study-documents/study-documents.server.ts";
import { SealBadge } from "../../log/seal-badge.tsx";
import { FieldError } from "../../ui/error-summary.tsx";
import { StudyPage } from "../../ui/study-page.tsx";

export const meta: MetaFunction = () => [{ title: "Lots · Drug supply · TrialSeal" }];

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "supply.view");
  const view = await lotsView(context.ctx, user, study.code);
  const scope = { studyId: study.id };
  const canRelease = can(user, "supply.release", scope);
  // Who received a recalled lot: the sponsor's recall page (and unblinded roles), the one exception of ADR 0057.
  const mayListAffected = canRelease || can(user, "supply.view_kit_types", scope);
  const affected: Record<string, { subject: string; site: string; kit: string; dispensedOn: string }[]> = {};
  if (mayListAffected)
    for (const l of view.lots.filter((x) => x.recalled))
      affected[l.lotNumber] = (await affectedByLot(context.ctx, user, study.code, l.lotNumber)).map((a) => ({
        subject: a.subject,
        site: a.site,
        kit: a.kit,
        dispensedOn: a.dispensedAt.slice(0, 10),
      }));
  return json(
    {
      user: { fullName: user.fullName, email: user.email },
      study: study.code,
      seesKitTypes: view.seesKitTypes,
      kitTypes: view.kitTypes,
      lots: view.lots.map(({ id, registeredAt, ...l }) => l),
      affected,
      canManage: can(user, "supply.manage", scope),
      canRelease,
      maxMb: COA_MAX_BYTES / (1024 * 1024),
      maxKits: MAX_KITS_PER_REGISTRATION,
    },
    { headers: { "cache-control": "no-store" } },
  );
}

type Outcome = {
  error: string | null;
  field: string | null;
  form: string;
  message: string | null;
  /** Kits just registered, by lot (the depot manager's page: it sees lots and kit types). */
  registered?: { lotNumber: string; kits: string[] }[];
  recalled?: { subject: string; site: string; kit: string }[];
};

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "supply.view");
  const multipart = (request.headers.get("content-type") ?? "").startsWith("multipart/form-data");
  let which = multipart ? "register" : "unknown";
  try {
    if (multipart) {
      let upload: { fileName: string; bytes: Uint8Array } | null = null;
      const form = await unstable_parseMultipartFormData(
        request,
        unstable_composeUploadHandlers(
          async ({ name, data, filename }) => {
            if (name !== "coa" || filename === undefined) return undefined;
            // Read as it streams in: refused once it passes the limit, never held whole beyond it.
            try {
              upload = { fileName: filename, bytes: await readUpload(data, COA_MAX_BYTES) };
            } catch (err) {
              if (err instanceof ServiceError)
                throw new ServiceError(
                  "invalid",
                  `Certificate of analysis: ${err.message.replace(/^file: /, "")}`,
                  "coa",
                );
              throw err;
            }
            return "received";
          },
          unstable_createMemoryUploadHandler({ maxPartSize: 16 * 1024 }),
        ),
      );
      const text = (k: string) => String(form.get(k) ?? "");
      const input = Object.fromEntries(
        [
          "product",
          "lotNumber",
          "kitType",
          "manufacturedOn",
          "expiresOn",
          "storageMinC",
          "storageMaxC",
          "dailyUnits",
        ].map((k) => [k, text(k)]),
      );
      await registerLot(context.ctx, user, study.code, input, upload ?? { fileName: "", bytes: new Uint8Array() });
      return json<Outcome>({
        error: null,
        field: null,
        form: which,
        message: `Lot ${input.lotNumber} registered; its certificate's SHA-256 is sealed. The sponsor releases it.`,
      });
    }
    const form = await request.formData();
    const text = (k: string) => String(form.get(k) ?? "");
    which = text("intent");
    if (which === "release") {
      await releaseLot(context.ctx, user, study.code, text("lotNumber"));
      return json<Outcome>({
        error: null,
        field: null,
        form: which,
        message: `Lot ${text("lotNumber")} released: its kits may now be shipped and dispensed.`,
      });
    }
    if (which === "kits") {
      // One count per lot (blank or 0: none of that lot); all the lots' kits are sealed in one random order.
      const lots = [...form.keys()]
        .filter((k) => k.startsWith("count:"))
        .map((k) => ({ lotNumber: k.slice("count:".length), count: text(k).trim() }))
        .filter((l) => l.count !== "" && l.count !== "0");
      const r = await registerKits(context.ctx, user, study.code, { lots, units: text("units") });
      const registered = lots.map((l) => ({
        lotNumber: l.lotNumber,
        kits: r.kits.filter((k) => k.lotNumber === l.lotNumber).map((k) => k.number),
      }));
      return json<Outcome>({
        error: null,
        field: null,
        form: which,
        message:
          `${plural(r.kits.length, "kit", "kits")} registered and sealed in one random order ` +
          `(${registered.map((x) => `${x.kits.length} of lot ${x.lotNumber}`).join(", ")}). Print their labels.`,
        registered,
      });
    }
    if (which === "recall") {
      const r = await recallLot(context.ctx, user, study.code, {
        lotNumber: text("lotNumber"),
        reason: text("reason"),
      });
      return json<Outcome>({
        error: null,
        field: null,
        form: which,
        message:
          `Lot ${text("lotNumber").trim()} recalled: ${plural(r.kitsBlocked, "kit", "kits")} blocked, ` +
          `${plural(r.subjects.length, "kit", "kits")} dispensed to participants, ` +
          `${plural(r.sitesNotified, "site", "sites")} notified.`,
        recalled: r.subjects.map((x) => ({ subject: x.subject, site: x.site, kit: x.kit })),
      });
    }
    return json<Outcome>({ error: "unknown action", field: null, form: which, message: null }, { status: 400 });
  } catch (err) {
    if (err instanceof Error && /exceeded upload size/i.test(err.message))
      return json({ error: "a form field is too long", field: null, form: which, message: null }, { status: 413 });
    return serviceErrorResponse(err, { message: null, form: which });
  }
}

const mb = (bytes: number) =>
  bytes >= 1024 * 1024 ? `${(bytes / (1024 * 1024)).toFixed(1)} MB` : `${Math.max(1, Math.round(bytes / 1024))} KB`;

/** "1 kit", "2 kits". */
const plural = (count: number, one: string, many: string) => `${count} ${count === 1 ? one : many}`;

export default function Lots() {
  const d = useLoaderData<typeof loader>();
  const r = useActionData<typeof action>();
  const busy = useNavigation().state === "submitting";
  const problem = (form: string, field: string) =>
    r && "form" in r && r.form === form && r.field === field && r.error ? r.error : null;
  const field = (form: string, name: string) => {
    const message = problem(form, name);
    const id = `${form}-${name}`;
    return {
      input: {
        id,
        name,
        "aria-invalid": message ? true : undefined,
        "aria-describedby": message ? `${id}-error` : undefined,
      },
      error: message ? <FieldError target={id} message={message} /> : null,
    };
  };
  const open = d.lots.filter((l) => !l.recalled);
  const releasable = open.filter((l) => !l.released);
  // A form starts empty again after any action that changed the lots (a registration, a release, a recall).
  const formKey = (form: string) =>
    `${form}-${d.lots.length}-${d.lots.filter((l) => l.released).length}-${d.lots.filter((l) => l.recalled).length}`;
  const recalledNow = r && "recalled" in r ? r.recalled : undefined;
  const registeredNow = r && "registered" in r ? r.registered : undefined;
  const showWhere = d.lots.some((l) => l.kits.atDepot !== null);
  return (
    <StudyPage
      user={d.user}
      study={d.study}
      title="Lots"
      crumbs={[{ to: `/studies/${d.study}/supply`, label: "Drug supply" }]}
      flash={r}
    >
      <p>
        Each lot of investigational product is registered by the depot with its certificate of analysis (a PDF whose
        SHA-256 fingerprint is sealed) and released once by the sponsor before its kits are shipped. A recall blocks
        every kit of the lot at once and tells the sites concerned.
        {d.seesKitTypes ? "" : " Kit types are not shown to you: the study is blinded."}
      </p>
      {showWhere || d.lots.length === 0 ? null : (
        <p className="muted" data-where-hidden>
          Where each lot's kits are (at the depot, at sites, dispensed) is not shown to you: beside a participant's
          dispensing it would tell which lot, and so which kit type, the participant received. The{" "}
          <Link to={`/studies/${d.study}/supply`}>drug supply page</Link> counts kits by state per site over all lots.
        </p>
      )}
      {d.lots.length === 0 ? (
        <p className="muted">No lot registered yet.</p>
      ) : (
        <div className="table-scroll">
          <table data-lots>
            <thead>
              <tr>
                <th>Lot</th>
                <th>Product</th>
                {d.seesKitTypes ? <th>Kit type</th> : null}
                <th>Manufactured</th>
                <th>Expires</th>
                <th>Storage</th>
                <th>Status</th>
                <th>{showWhere ? "Kits (at depot / at sites / dispensed / destroyed)" : "Kits registered"}</th>
                <th>Certificate</th>
                <th>Seal</th>
                {d.canManage ? <th>Labels</th> : null}
              </tr>
            </thead>
            <tbody>
              {d.lots.map((l) => (
                <tr key={l.lotNumber} data-lot={l.lotNumber}>
                  <td>{l.lotNumber}</td>
                  <td>{l.product}</td>
                  {d.seesKitTypes ? <td data-kit-type>{l.kitType}</td> : null}
                  <td>{l.manufacturedOn}</td>
                  <td>{l.expiresOn}</td>
                  <td>
                    {l.storageMinC} to {l.storageMaxC} °C
                  </td>
                  <td data-status>
                    {l.recalled ? (
                      <span className="badge bad">
                        recalled {l.recalled.on} by {l.recalled.by}
                      </span>
                    ) : l.released ? (
                      <span className="badge ok">
                        released {l.released.on} by {l.released.by}
                      </span>
                    ) : (
                      <span className="badge">not released</span>
                    )}
                  </td>
                  <td data-kits={l.kits.total}>
                    {l.kits.atDepot === null
                      ? l.kits.total
                      : `${l.kits.total} (${l.kits.atDepot} / ${l.kits.atSites} / ${l.kits.dispensed} / ` +
                        `${l.kits.destroyed})`}
                  </td>
                  <td>
                    <a href={`/studies/${d.study}/supply/lots/${encodeURIComponent(l.lotNumber)}/coa`} download>
                      {l.coaFileName}
                    </a>{" "}
                    ({mb(l.coaBytes)})
                  </td>
                  <td data-seals>
                    <RowSealLine what="Registration" row={l.registered} />
                    {l.released ? <RowSealLine what="Release" row={l.released} /> : null}
                    {l.recalled ? <RowSealLine what="Recall" row={l.recalled} /> : null}
                  </td>
                  {d.canManage ? (
                    <td>
                      {l.kits.total > 0 ? (
                        <a href={`/studies/${d.study}/supply/lots/${encodeURIComponent(l.lotNumber)}/labels.pdf`}>
                          Labels (PDF)
                        </a>
                      ) : (
                        <span className="muted">no kits</span>
                      )}
                    </td>
                  ) : null}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {d.lots
        .filter((l) => l.recalled)
        .map((l) => (
          <section key={l.lotNumber} className="card" data-recall={l.lotNumber}>
            <h2>Recall of lot {l.lotNumber}</h2>
            <p>
              Recalled on {l.recalled?.on} by {l.recalled?.by}:{" "}
              {`${plural(l.recalled?.kitsBlocked ?? 0, "kit", "kits")} blocked, `}
              {`${plural(l.recalled?.subjectsAffected ?? 0, "participant", "participants")} had received a kit of it.`}
            </p>
            <p>Reason: {l.recalled?.reason}</p>
            {d.affected[l.lotNumber] ? (
              d.affected[l.lotNumber].length === 0 ? (
                <p className="muted">No participant received a kit of this lot.</p>
              ) : (
                <div className="table-scroll">
                  <table data-affected>
                    <thead>
                      <tr>
                        <th>Participant</th>
                        <th>Site</th>
                        <th>Kit</th>
                        <th>Dispensed</th>
                      </tr>
                    </thead>
                    <tbody>
                      {d.affected[l.lotNumber].map((a) => (
                        <tr key={`${a.subject}-${a.kit}`}>
                          <td>{a.subject}</td>
                          <td>{a.site}</td>
                          <td>{a.kit}</td>
                          <td>{a.dispensedOn}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              )
            ) : null}
          </section>
        ))}
      {recalledNow && recalledNow.length > 0 ? (
        <section className="card" aria-labelledby="recalled-now">
          <h2 id="recalled-now">Participants who received the recalled lot</h2>
          <ul>
            {recalledNow.map((x) => (
              <li key={`${x.subject}-${x.kit}`}>
                {x.subject} at {x.site} (kit {x.kit})
              </li>
            ))}
          </ul>
        </section>
      ) : null}
      {d.canRelease && releasable.length > 0 ? (
        <section className="card" aria-labelledby="release-title">
          <h2 id="release-title">Release a lot</h2>
          <p className="muted">Once released, the lot's kits may be shipped and dispensed until it expires.</p>
          <Form key={formKey("release")} method="post" noValidate>
            <input type="hidden" name="intent" value="release" />
            <label htmlFor="release-lotNumber">Lot</label>
            <select {...field("release", "lotNumber").input}>
              {releasable.map((l) => (
                <option key={l.lotNumber} value={l.lotNumber}>
                  {l.lotNumber} (expires {l.expiresOn})
                </option>
              ))}
            </select>
            {field("release", "lotNumber").error}
            <button type="submit" disabled={busy}>
              Release lot
            </button>
          </Form>
        </section>
      ) : null}
      {d.canManage ? (
        <section className="card" aria-labelledby="register-title">
          <h2 id="register-title">Register a lot</h2>
          <p className="muted">
            With its certificate of analysis as a PDF of at most {d.maxMb} MB. Do not name the kit type in the product:
            the product is printed on every label.
          </p>
          <Form key={formKey("register")} method="post" encType="multipart/form-data" noValidate data-register-lot>
            <label htmlFor="register-product">Product (as labelled)</label>
            <input type="text" {...field("register", "product").input} />
            {field("register", "product").error}
            <label htmlFor="register-lotNumber">Lot number</label>
            <input type="text" {...field("register", "lotNumber").input} />
            {field("register", "lotNumber").error}
            <label htmlFor="register-kitType">Kit type</label>
            <select {...field("register", "kitType").input}>
              {d.kitTypes.map((k) => (
                <option key={k} value={k}>
                  {k}
                </option>
              ))}
            </select>
            {field("register", "kitType").error}
            <label htmlFor="register-manufacturedOn">Manufacturing date</label>
            <input type="date" {...field("register", "manufacturedOn").input} />
            {field("register", "manufacturedOn").error}
            <label htmlFor="register-expiresOn">Expiry date (kits may be dispensed through this day)</label>
            <input type="date" {...field("register", "expiresOn").input} />
            {field("register", "expiresOn").error}
            <label htmlFor="register-storageMinC">Lowest storage temperature (°C)</label>
            <input type="text" inputMode="decimal" {...field("register", "storageMinC").input} />
            {field("register", "storageMinC").error}
            <label htmlFor="register-storageMaxC">Highest storage temperature (°C)</label>
            <input type="text" inputMode="decimal" {...field("register", "storageMaxC").input} />
            {field("register", "storageMaxC").error}
            <label htmlFor="register-dailyUnits">Units taken a day (for compliance; 0: not computed)</label>
            <input type="number" min={0} {...field("register", "dailyUnits").input} />
            {field("register", "dailyUnits").error}
            <label htmlFor="register-coa">Certificate of analysis (PDF)</label>
            <input type="file" accept="application/pdf,.pdf" {...field("register", "coa").input} />
            {field("register", "coa").error}
            <button type="submit" disabled={busy}>
              Register and seal
            </button>
          </Form>
        </section>
      ) : null}
      {d.canManage && open.length > 0 ? (
        <section className="card" aria-labelledby="kits-title">
          <h2 id="kits-title">Register kits</h2>
          <p className="muted">
            Give a number of kits for each lot to register now (at most {d.maxKits} in all); leave the others empty.
            Each kit gets a random six-digit number and a label token for its QR code.
          </p>
          <p className="muted">
            Register the kits of matching lots of every kit type together: their entries are sealed in one random order,
            so that a blinded reader of the study's log cannot group kits by lot (kits registered lot after lot would
            sit together in the log, and a lot is of one kit type).
          </p>
          <Form key={formKey("kits")} method="post" noValidate data-register-kits>
            <input type="hidden" name="intent" value="kits" />
            {field("kits", "lots").error}
            <div className="table-scroll">
              <table>
                <thead>
                  <tr>
                    <th>Lot</th>
                    {d.seesKitTypes ? <th>Kit type</th> : null}
                    <th>Kits now</th>
                    <th>Number of kits</th>
                  </tr>
                </thead>
                <tbody>
                  {open.map((l) => {
                    const f = field("kits", `count:${l.lotNumber}`);
                    return (
                      <tr key={l.lotNumber} data-kits-lot={l.lotNumber}>
                        <td>
                          <label htmlFor={f.input.id}>{l.lotNumber}</label>
                        </td>
                        {d.seesKitTypes ? <td>{l.kitType}</td> : null}
                        <td>{l.kits.total}</td>
                        <td>
                          <input type="number" min={0} max={d.maxKits} {...f.input} />
                          {f.error}
                        </td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </div>
            <label htmlFor="kits-units">Units per kit (tablets, vials, ...)</label>
            <input type="number" min={1} {...field("kits", "units").input} />
            {field("kits", "units").error}
            <button type="submit" disabled={busy}>
              Register kits
            </button>
          </Form>
          {registeredNow ? (
            <ul data-kits-registered>
              {registeredNow.map((x) => (
                <li key={x.lotNumber}>
                  Lot {x.lotNumber}: kits {x.kits.join(", ")}.{" "}
                  <a href={`/studies/${d.study}/supply/lots/${encodeURIComponent(x.lotNumber)}/labels.pdf`}>
                    Print their labels (PDF)
                  </a>
                </li>
              ))}
            </ul>
          ) : null}
        </section>
      ) : null}
      {d.canRelease && open.length > 0 ? (
        <section className="card" aria-labelledby="recall-title">
          <h2 id="recall-title">Recall a lot</h2>
          <p className="muted">
            Every kit of the lot is blocked at once, at the depot and at every site; each site concerned is told which
            of its kits are blocked and which of its participants received one. The reason is shown to the sites,
            blinded staff included: do not name a kit type or an arm.
          </p>
          <Form key={formKey("recall")} method="post" noValidate data-recall-form>
            <input type="hidden" name="intent" value="recall" />
            <label htmlFor="recall-lotNumber">Lot</label>
            <select {...field("recall", "lotNumber").input}>
              {open.map((l) => (
                <option key={l.lotNumber} value={l.lotNumber}>
                  {l.lotNumber}
                </option>
              ))}
            </select>
            {field("recall", "lotNumber").error}
            <label htmlFor="recall-reason">Reason</label>
            <textarea rows={3} {...field("recall", "reason").input} />
            {field("recall", "reason").error}
            <button type="submit" disabled={busy}>
              Recall lot
            </button>
          </Form>
        </section>
      ) : null}
      <p>
        <Link to={`/studies/${d.study}/supply`}>Back to the drug supply</Link>
      </p>
    </StudyPage>
  );
}

/** One row's seal state in words: a row that differs from its entry is said so, never shown as sealed. */
function RowSealLine({
  what,
  row,
}: {
  what: string;
  row: { seal: Parameters<typeof SealBadge>[0]["seal"]; differs: string[]; words: string };
}) {
  return (
    <div data-row-seal={what.toLowerCase()}>
      {what}: <SealBadge seal={row.seal} />
      {row.differs.length ? (
        <span className="error" role="alert" data-seal-mismatch={row.differs.join(", ")}>
          {" "}
          {row.differs.includes("entry")
            ? "its sealed entry is missing"
            : `${row.words}: not as sealed in its entry (changed outside TrialSeal)`}
          . Run the integrity audit.
        </span>
      ) : null}
    </div>
  );
}
