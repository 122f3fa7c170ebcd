/**
 * Destruction of kits (issue 21, ADR 0064): record a destruction at a site (returned, expired, recalled or rejected
 * kits) or at the depot (kits never shipped), with the method; a different signed-in person witnesses it from the
 * list of pending destructions (the recorder sees no Witness button and is refused if they try).
 */
import { json, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from "@remix-run/node";
import { Form, useActionData, useLoaderData, useNavigation } from "@remix-run/react";
import {
  destructibleKits,
  destructionsView,
  recordDestruction,
  witnessDestruction,
} from "../../drug-supply/destruction.server.ts";
import { supplySites } from "../../drug-supply/inventory.server.ts";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { can } from "../../platform/permissions.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { requestMeta } from "../../platform/session.server.ts";
import { FieldError } from "../../ui/error-summary.tsx";
import { UtcAndLocal } from "../../ui/local-time.tsx";
import { StudyPage } from "../../ui/study-page.tsx";

export const meta: MetaFunction = () => [{ title: "Destructions · TrialSeal" }];

const DEPOT = "depot";

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "supply.view");
  const ctx = context.ctx;
  const places = (await supplySites(ctx, user, study.code, "supply.destroy")).map((s) => ({
    value: s.code,
    label: `site ${s.code} (${s.name})`,
  }));
  if (can(user, "supply.manage", { studyId: study.id })) places.unshift({ value: DEPOT, label: "the depot" });
  const wanted = new URL(request.url).searchParams.get("at");
  const at = places.find((p) => p.value === wanted)?.value ?? places[0]?.value ?? null;
  const kits = at ? await destructibleKits(ctx, user, study.code, at === DEPOT ? null : at) : [];
  const destructions = await destructionsView(ctx, user, study.code);
  return json({
    user: { fullName: user.fullName, email: user.email },
    study: study.code,
    /** The witness re-authenticates: the authenticator code is asked of those who use one. */
    askCode: user.totpEnabled,
    places,
    at,
    kits,
    destructions: destructions.map((x) => ({
      ...x,
      recordedAt: x.recordedAt.toISOString(),
      witnessedAt: x.witnessedAt?.toISOString() ?? null,
    })),
  });
}

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "supply.view");
  const form = await request.formData();
  const get = (k: string) => {
    const v = form.get(k);
    return typeof v === "string" ? v : "";
  };
  const intent = get("intent") === "witness" ? "witness" : "record";
  try {
    if (intent === "witness") {
      await witnessDestruction(
        context.ctx,
        user,
        study.code,
        get("destruction"),
        { password: get("password"), code: get("code") },
        requestMeta(request),
      );
      return json({
        form: intent,
        target: get("destruction"),
        message: "You witnessed the destruction; it is sealed.",
        error: null,
        field: null,
        problems: null,
      });
    }
    const at = get("at");
    const r = await recordDestruction(context.ctx, user, study.code, {
      site: at === DEPOT ? null : at,
      kits: form.getAll("kits").map(String),
      method: get("method"),
    });
    return json({
      form: intent,
      target: r.destructionId,
      message: "The destruction is recorded; another person must now witness it on this page.",
      error: null,
      field: null,
      problems: null,
    });
  } catch (err) {
    return serviceErrorResponse(err, { form: intent, target: get("destruction"), message: null }, "kits");
  }
}

export default function Destructions() {
  const d = useLoaderData<typeof loader>();
  const r = useActionData<typeof action>();
  const busy = useNavigation().state === "submitting";
  const err = (form: string, field: string) => (r?.form === form && r.field === field && r.error ? r.error : null);
  const kitsError = err("record", "kits");
  const witnessError = (id: string, field: string) =>
    r?.form === "witness" && r.target === id && (field === "password" || field === "code")
      ? err("witness", field)
      : null;
  const methodError = err("record", "method");
  const shownInline = Boolean(kitsError || methodError || (r?.form === "witness" && r.error));
  const pending = d.destructions.filter((x) => !x.witnessedBy);
  const done = d.destructions.filter((x) => x.witnessedBy);
  return (
    <StudyPage
      user={d.user}
      study={d.study}
      title="Destructions"
      crumbs={[{ to: `/studies/${d.study}/supply`, label: "Drug supply" }]}
      flash={shownInline ? null : r}
    >
      {d.places.length ? (
        <section className="card" data-record-destruction>
          <h2>Record a destruction</h2>
          <Form method="get">
            <label htmlFor="at">Where</label>
            <select id="at" name="at" defaultValue={d.at ?? undefined}>
              {d.places.map((p) => (
                <option key={p.value} value={p.value}>
                  {p.label}
                </option>
              ))}
            </select>{" "}
            <button type="submit">Show the kits</button>
          </Form>
          {d.kits.length === 0 ? (
            <p className="muted">
              No kit can be destroyed there now (only returned, expired, recalled or rejected kits at a site; kits never
              shipped at the depot).
            </p>
          ) : (
            <Form method="post" key={`record-${d.at}-${d.kits.length}`}>
              <input type="hidden" name="intent" value="record" />
              <input type="hidden" name="at" value={d.at ?? ""} />
              <fieldset
                id="destroy-kits"
                aria-invalid={kitsError ? true : undefined}
                aria-describedby={kitsError ? "destroy-kits-error" : undefined}
              >
                <legend>Kits destroyed</legend>
                {d.kits.map((k) => (
                  <label className="inline" key={k.number}>
                    <input type="checkbox" name="kits" value={k.number} /> {k.number} ({k.state})
                  </label>
                ))}
              </fieldset>
              {kitsError ? <FieldError target="destroy-kits" message={kitsError} /> : null}
              <label htmlFor="destroy-method">Method (for example: incineration by the licensed contractor)</label>
              <input
                id="destroy-method"
                name="method"
                type="text"
                maxLength={500}
                aria-invalid={methodError ? true : undefined}
                aria-describedby={methodError ? "destroy-method-error" : undefined}
              />
              {methodError ? <FieldError target="destroy-method" message={methodError} /> : null}
              <button type="submit" disabled={busy}>
                Record the destruction
              </button>
            </Form>
          )}
        </section>
      ) : null}
      <section className="card" data-pending-destructions>
        <h2>Waiting for a witness</h2>
        {pending.length === 0 ? <p className="muted">No destruction is waiting for a witness.</p> : null}
        {pending.map((x) => (
          <article key={x.id} data-destruction={x.id}>
            <p>
              {x.site ? `At site ${x.site}` : "At the depot"}: {x.kits.join(", ")} by {x.method}; recorded by{" "}
              {x.recordedBy} on <UtcAndLocal iso={x.recordedAt} />.{" "}
              <span data-seal-matches={String(x.seal.matches)} className={x.seal.matches ? "muted" : "error"}>
                Record: {x.seal.words}.
              </span>
            </p>
            {x.canWitness ? (
              <Form method="post" data-witness-form>
                <input type="hidden" name="intent" value="witness" />
                <input type="hidden" name="destruction" value={x.id} />
                <label htmlFor={`witness-password-${x.id}`}>Your password (you witness it in your own name)</label>
                <input
                  id={`witness-password-${x.id}`}
                  name="password"
                  type="password"
                  autoComplete="current-password"
                  aria-invalid={witnessError(x.id, "password") ? true : undefined}
                  aria-describedby={witnessError(x.id, "password") ? `witness-password-${x.id}-error` : undefined}
                />
                {witnessError(x.id, "password") ? (
                  <FieldError target={`witness-password-${x.id}`} message={witnessError(x.id, "password")!} />
                ) : null}
                {d.askCode ? (
                  <>
                    <label htmlFor={`witness-code-${x.id}`}>Authenticator code</label>
                    <input
                      id={`witness-code-${x.id}`}
                      name="code"
                      type="text"
                      inputMode="numeric"
                      autoComplete="one-time-code"
                      aria-invalid={witnessError(x.id, "code") ? true : undefined}
                      aria-describedby={witnessError(x.id, "code") ? `witness-code-${x.id}-error` : undefined}
                    />
                    {witnessError(x.id, "code") ? (
                      <FieldError target={`witness-code-${x.id}`} message={witnessError(x.id, "code")!} />
                    ) : null}
                  </>
                ) : null}
                <button type="submit" disabled={busy}>
                  Witness
                </button>
              </Form>
            ) : (
              <p className="muted">Another person (not the one who recorded it) witnesses it.</p>
            )}
            {r?.form === "witness" && r.target === x.id && r.error && !witnessError(x.id, r.field ?? "") ? (
              <p className="field-error" role="alert">
                {r.error}
              </p>
            ) : null}
          </article>
        ))}
      </section>
      <section className="card" data-witnessed-destructions>
        <h2>Witnessed destructions</h2>
        {done.length === 0 ? (
          <p className="muted">None yet.</p>
        ) : (
          <div className="table-scroll">
            <table>
              <thead>
                <tr>
                  <th>Where</th>
                  <th>Kits</th>
                  <th>Method</th>
                  <th>Recorded by</th>
                  <th>Witnessed by</th>
                  <th>Seal</th>
                </tr>
              </thead>
              <tbody>
                {done.map((x) => (
                  <tr key={x.id} data-destruction={x.id}>
                    <td>{x.site ?? "depot"}</td>
                    <td>{x.kits.join(", ")}</td>
                    <td>{x.method}</td>
                    <td>
                      {x.recordedBy}, <UtcAndLocal iso={x.recordedAt} />
                    </td>
                    <td>
                      {x.witnessedBy}, {x.witnessedAt ? <UtcAndLocal iso={x.witnessedAt} /> : null}
                    </td>
                    <td
                      data-seal-matches={String(x.seal.matches && (x.witnessSeal?.matches ?? true))}
                      className={x.seal.matches && (x.witnessSeal?.matches ?? true) ? undefined : "error"}
                    >
                      Record: {x.seal.words}; witness: {x.witnessSeal?.words ?? "-"}
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
