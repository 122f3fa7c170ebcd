/**
 * The study's randomization list (issue 20, ADR 0052/0053). The unblinded statistician enters the design, generates
 * a list or uploads one, previews a draft, discards or commits it, and then sees per stratum its size, allocations,
 * remaining slots and committed root. Everyone else sees whether a list is committed and when, and allocations per
 * stratum: no arm, no kit type, no block size.
 */
import {
  json,
  redirect,
  type ActionFunctionArgs,
  type LoaderFunctionArgs,
  type MetaFunction,
  unstable_createMemoryUploadHandler,
  unstable_parseMultipartFormData,
} from "@remix-run/node";
import { Form, Link, useActionData, useLoaderData, useNavigation } from "@remix-run/react";
import { serviceErrorResponse } from "../../platform/error-response.server.ts";
import { ServiceError } from "../../platform/errors.server.ts";
import { requireStudy } from "../../platform/require-study.server.ts";
import { type DesignFormFields, designFromForm, formFromDesign } from "../../randomization/design-form.ts";
import {
  commitList,
  createGeneratedList,
  createUploadedList,
  discardList,
  draftLists,
  MAX_UPLOAD_BYTES,
  previewList,
} from "../../randomization/lists.server.ts";
import { unblindedAllocations } from "../../randomization/unblinded-allocations.server.ts";
import { randomizationOverview } from "../../randomization/randomization-view.server.ts";
import { studySites } from "../../studies/studies.server.ts";
import { UtcAndLocal } from "../../ui/local-time.tsx";
import { StudyPage } from "../../ui/study-page.tsx";

export const meta: MetaFunction = () => [{ title: "Randomization · TrialSeal" }];

export async function loader({ request, context, params }: LoaderFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "study.view");
  const overview = await randomizationOverview(context.ctx, user, study.code);
  const base = {
    user: { fullName: user.fullName, email: user.email },
    study: study.code,
    manage: overview.manage,
    unblinded: overview.unblinded,
    committed: overview.committed,
    // Arms, only for those who may see them (ADR 0053): null for every blinded role.
    allocations: await unblindedAllocations(context.ctx, user, study),
  };
  if (!overview.manage) return json({ ...base, drafts: [], preview: null, made: null, sites: [], form: null });
  const drafts = await draftLists(context.ctx, user, study.code);
  const search = new URL(request.url).searchParams;
  const wanted = search.get("preview");
  const preview =
    wanted && drafts.some((d) => d.id === wanted) ? await previewList(context.ctx, user, study.code, wanted) : null;
  // Just made (the action redirects here with its preview): say so above the preview.
  const made = preview && ["generated", "uploaded"].includes(search.get("made") ?? "") ? search.get("made") : null;
  const sites = (await studySites(context.ctx, study.id)).map((s) => ({ code: s.code, name: s.name }));
  const last = drafts[0]?.design;
  const form: DesignFormFields = last
    ? formFromDesign(last)
    : {
        arms: "A, Active, 1\nB, Placebo, 1",
        blockSizes: "4, 6",
        factor1Name: "",
        factor1Label: "",
        factor1Levels: "",
        factor2Name: "",
        factor2Label: "",
        factor2Levels: "",
        sites: sites.map((s) => s.code),
        slotsPerStratum: "100",
        kitTypes: "KIT-1 = A\nKIT-2 = B",
      };
  return json({
    ...base,
    drafts: drafts.map((d) => ({ id: d.id, source: d.source, createdAt: d.createdAt, by: d.by })),
    preview,
    made,
    sites,
    form,
  });
}

function designFields(get: (k: string) => string, sites: string[]): DesignFormFields {
  return {
    arms: get("arms"),
    blockSizes: get("blockSizes"),
    factor1Name: get("factor1Name"),
    factor1Label: get("factor1Label"),
    factor1Levels: get("factor1Levels"),
    factor2Name: get("factor2Name"),
    factor2Label: get("factor2Label"),
    factor2Levels: get("factor2Levels"),
    sites,
    slotsPerStratum: get("slotsPerStratum"),
    kitTypes: get("kitTypes"),
  };
}

export async function action({ request, context, params }: ActionFunctionArgs) {
  const { study, user } = await requireStudy(request, context, params, "randomization.manage");
  try {
    const multipart = (request.headers.get("content-type") ?? "").startsWith("multipart/form-data");
    const form = multipart
      ? await unstable_parseMultipartFormData(
          request,
          unstable_createMemoryUploadHandler({ maxPartSize: MAX_UPLOAD_BYTES }),
        ).catch(() => {
          throw new ServiceError(
            "invalid",
            `list file: the file is larger than ${MAX_UPLOAD_BYTES / 1048576} MB`,
            "csv",
          );
        })
      : await request.formData();
    const get = (k: string) => {
      const v = form.get(k);
      return typeof v === "string" ? v : "";
    };
    const intent = get("intent");
    if (intent === "discard") {
      await discardList(context.ctx, user, study.code, get("list"));
      return json({ message: "The draft list was discarded.", error: null, field: null, problems: null, listId: null });
    }
    if (intent === "commit") {
      if (get("confirm") !== "on")
        return json(
          {
            message: null,
            error: 'confirm: tick "I understand that committing is final" to commit the list',
            field: "confirm",
            problems: null,
            listId: get("list") || null,
          },
          { status: 422 },
        );
      const r = await commitList(context.ctx, user, study.code, get("list"));
      return json({
        message:
          `The randomization list is committed and sealed (entry ${r.entryId}); ` +
          "participants can now be randomized.",
        error: null,
        field: null,
        problems: null,
        listId: null,
      });
    }
    const design = designFromForm(designFields(get, form.getAll("sites").map(String)));
    if (get("source") === "upload") {
      const file = form.get("file");
      const csvText = file && typeof file !== "string" ? await file.text() : "";
      const r = await createUploadedList(context.ctx, user, study.code, { design, csvText });
      return redirect(`/studies/${study.code}/randomization?preview=${r.listId}&made=uploaded#preview`);
    }
    const r = await createGeneratedList(context.ctx, user, study.code, { design });
    // Straight to the new draft's preview (the page says it was just made).
    return redirect(`/studies/${study.code}/randomization?preview=${r.listId}&made=generated#preview`);
  } catch (err) {
    return serviceErrorResponse(err, { message: null, listId: null });
  }
}

export default function Randomization() {
  const d = useLoaderData<typeof loader>();
  const r = useActionData<typeof action>();
  const busy = useNavigation().state === "submitting";
  const c = d.committed;
  const made =
    d.made === "generated"
      ? "A list was generated from a new random seed. It is a draft: check its preview below, then commit it."
      : d.made === "uploaded"
        ? "The uploaded list is a draft: check its preview below, then commit it."
        : null;
  return (
    <StudyPage user={d.user} study={d.study} title="Randomization" flash={r ?? (made ? { message: made } : null)}>
      {r?.problems && r.problems.length > 1 ? (
        <ul className="error" data-problems>
          {r.problems.map((p) => (
            <li key={p.message}>{p.message}</li>
          ))}
        </ul>
      ) : null}
      {made && d.preview ? (
        <p>
          <a href="#preview">Preview the new draft</a>
        </p>
      ) : null}
      <section className="card" data-committed={c ? "yes" : "no"}>
        <h2>The committed list</h2>
        {c ? (
          <>
            <p>
              A {c.source === "generated" ? "generated" : "uploaded"} list was committed on{" "}
              <UtcAndLocal iso={String(c.committedAt)} /> and sealed as entry {c.entryId}. Its strata, their sizes and a
              hash of every slot are fixed; no slot can be changed, skipped or reused without the verifier naming it.
              {d.unblinded ? " The study has been unblinded." : " The study is blinded."}
            </p>
            <p data-drafts-before>
              {c.draftsBefore.made === 0
                ? "No other list was drafted before this one."
                : `Before it, ${c.draftsBefore.made} other draft ` +
                  `${c.draftsBefore.made === 1 ? "list was" : "lists were"} ` +
                  `made (each sealed when made), ${c.draftsBefore.discarded} of them discarded.`}
            </p>
            {c.factors.length ? (
              <p>Stratified by site and {c.factors.map((f) => f.label.toLowerCase()).join(" and ")}.</p>
            ) : (
              <p>Stratified by site.</p>
            )}
            <div className="table-scroll">
              <table data-strata>
                <thead>
                  <tr>
                    <th>Stratum</th>
                    {d.manage ? <th>Slots</th> : null}
                    <th>Randomized</th>
                    {d.manage ? <th>Remaining</th> : null}
                    {d.manage ? <th>Committed root</th> : null}
                  </tr>
                </thead>
                <tbody>
                  {c.strata.map((s) => (
                    <tr key={s.key} data-stratum={s.key}>
                      <td>
                        {s.position}. {s.key.replaceAll(";", ", ").replaceAll("=", " ")}
                      </td>
                      {d.manage ? <td>{s.size}</td> : null}
                      <td>{s.allocated}</td>
                      {d.manage ? <td>{s.remaining}</td> : null}
                      {d.manage ? (
                        <td>
                          <code>{s.root}</code>
                        </td>
                      ) : null}
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </>
        ) : (
          <p>No randomization list has been committed yet. Participants cannot be randomized until one is.</p>
        )}
      </section>
      {d.allocations ? (
        <section className="card" data-unblinded-allocations>
          <h2>Allocations with their arms</h2>
          <p className="muted">
            {d.unblinded
              ? "The study is unblinded: every role that reads the records sees these."
              : "Shown only to unblinded roles (the statistician; a pharmacist for their site). Do not share them " +
                "with blinded staff."}
          </p>
          {d.allocations.length === 0 ? (
            <p>No participant has been randomized yet.</p>
          ) : (
            <div className="table-scroll">
              <table>
                <thead>
                  <tr>
                    <th>Number</th>
                    <th>Subject</th>
                    <th>Stratum</th>
                    <th>Arm</th>
                    <th>Kit type</th>
                    <th>Randomized</th>
                  </tr>
                </thead>
                <tbody>
                  {d.allocations.map((a) => (
                    <tr key={a.number} data-allocation={a.number}>
                      <td>{a.number}</td>
                      <td>{a.subject}</td>
                      <td>{a.stratum.replaceAll(";", ", ").replaceAll("=", " ")}</td>
                      <td data-arm={a.arm}>
                        {a.armName} ({a.arm})
                      </td>
                      <td>{a.kitType}</td>
                      <td>
                        <UtcAndLocal iso={String(a.randomizedAt)} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </section>
      ) : null}
      {d.manage && !c && d.form ? (
        <>
          {d.drafts.length ? (
            <section className="card">
              <h2>Draft lists</h2>
              <p>A draft can be previewed, discarded or committed. Committing is final: one list per study.</p>
              <ul data-drafts>
                {d.drafts.map((x) => (
                  <li key={x.id} data-draft={x.id}>
                    {x.source === "generated" ? "Generated" : "Uploaded"} by {x.by},{" "}
                    <UtcAndLocal iso={String(x.createdAt)} /> · <Link to={`?preview=${x.id}`}>Preview</Link>
                    <Form method="post">
                      <input type="hidden" name="list" value={x.id} />
                      <label className="inline">
                        <input
                          type="checkbox"
                          name="confirm"
                          aria-invalid={(r?.field === "confirm" && r?.listId === x.id) || undefined}
                        />{" "}
                        I understand that committing is final: this list decides every participant's treatment and
                        cannot be replaced
                      </label>
                      <div>
                        <button type="submit" name="intent" value="commit" disabled={busy}>
                          Commit this list
                        </button>{" "}
                        <button type="submit" name="intent" value="discard" className="button-danger" disabled={busy}>
                          Discard this draft
                        </button>
                      </div>
                    </Form>
                  </li>
                ))}
              </ul>
            </section>
          ) : null}
          {d.preview ? (
            <section className="card" id="preview" data-preview={d.preview.listId}>
              <h2>Preview ({d.preview.source === "generated" ? "generated" : "uploaded"} draft)</h2>
              <div className="table-scroll">
                <table>
                  <thead>
                    <tr>
                      <th>Stratum</th>
                      <th>Slots</th>
                      {d.preview.design.arms.map((a) => (
                        <th key={a.code}>{a.name}</th>
                      ))}
                      <th>Blocks</th>
                    </tr>
                  </thead>
                  <tbody>
                    {d.preview.strata.map((s) => (
                      <tr key={s.key}>
                        <td>{s.key.replaceAll(";", ", ").replaceAll("=", " ")}</td>
                        <td>{s.size}</td>
                        {d.preview?.design.arms.map((a) => (
                          <td key={a.code}>{s.arms[a.code] ?? 0}</td>
                        ))}
                        <td>{s.blocks ? s.blocks.join(" ") : "as uploaded"}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            </section>
          ) : null}
          <section className="card">
            <h2>Make a list</h2>
            <p>
              Enter the design, then generate a list (permuted blocks from a new random seed) or upload one as CSV with
              the columns site, each factor by its name, sequence (from 1 in each stratum), arm and kit_type (no salt
              column: TrialSeal draws every slot's salt itself).
            </p>
            <Form method="post" encType="multipart/form-data" data-design-form>
              <label htmlFor="design-arms">Arms, one a line: code, name, ratio</label>
              <textarea
                id="design-arms"
                name="arms"
                rows={3}
                defaultValue={d.form.arms}
                aria-invalid={r?.field === "design.arms" || undefined}
              />
              <label htmlFor="design-blocks">Block sizes (each a multiple of the ratios' sum)</label>
              <input
                id="design-blocks"
                type="text"
                name="blockSizes"
                defaultValue={d.form.blockSizes}
                aria-invalid={r?.field === "design.blockSizes" || undefined}
              />
              {([1, 2] as const).map((n) => (
                <fieldset key={n} aria-invalid={r?.field === "design.factors" || undefined}>
                  <legend>Stratification factor {n} (optional)</legend>
                  <label htmlFor={`factor${n}-name`}>Name (lower case, e.g. sex)</label>
                  <input
                    id={`factor${n}-name`}
                    type="text"
                    name={`factor${n}Name`}
                    defaultValue={d.form?.[`factor${n}Name`]}
                  />
                  <label htmlFor={`factor${n}-label`}>Label</label>
                  <input
                    id={`factor${n}-label`}
                    type="text"
                    name={`factor${n}Label`}
                    defaultValue={d.form?.[`factor${n}Label`]}
                  />
                  <label htmlFor={`factor${n}-levels`}>Levels, separated by commas</label>
                  <input
                    id={`factor${n}-levels`}
                    type="text"
                    name={`factor${n}Levels`}
                    defaultValue={d.form?.[`factor${n}Levels`]}
                  />
                </fieldset>
              ))}
              <fieldset aria-invalid={r?.field === "design.sites" || undefined}>
                <legend>Sites</legend>
                {d.sites.map((s) => (
                  <label className="inline" key={s.code}>
                    <input
                      type="checkbox"
                      name="sites"
                      value={s.code}
                      defaultChecked={d.form?.sites.includes(s.code)}
                    />
                    &nbsp;{s.code} ({s.name})
                  </label>
                ))}
              </fieldset>
              <label htmlFor="design-slots">Slots per stratum</label>
              <input
                id="design-slots"
                name="slotsPerStratum"
                type="text"
                inputMode="numeric"
                defaultValue={d.form.slotsPerStratum}
                aria-invalid={r?.field === "design.slotsPerStratum" || undefined}
              />
              <label htmlFor="design-kits">
                Kit types, one a line: kit type = arm code (use codes that do not reveal the arm)
              </label>
              <textarea
                id="design-kits"
                name="kitTypes"
                rows={3}
                defaultValue={d.form.kitTypes}
                aria-invalid={r?.field === "design.kitTypes" || undefined}
              />
              <label htmlFor="design-file">List file (CSV, only to upload)</label>
              <input
                id="design-file"
                type="file"
                name="file"
                accept=".csv,text/csv"
                aria-invalid={r?.field === "csv" || undefined}
              />
              <button type="submit" name="source" value="generate" disabled={busy}>
                Generate a list
              </button>{" "}
              <button type="submit" name="source" value="upload" disabled={busy}>
                Upload the CSV list
              </button>
            </Form>
          </section>
        </>
      ) : null}
    </StudyPage>
  );
}
