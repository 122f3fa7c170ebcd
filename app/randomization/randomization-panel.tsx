/**
 * The participant page's randomization section (ADR 0052/0053): the randomize form with the factor levels, the
 * randomization number once randomized, the arm only when the viewer may see it, and the emergency unblinding form
 * for investigators of the site (a reason and a confirmation).
 */
import { Form } from "@remix-run/react";

export interface RandomizationPanelProps {
  factors: { name: string; label: string; levels: string[] }[] | null;
  allocation: { number: string; stratum: string; at: string } | null;
  arm: { code: string; name: string } | null;
  canRandomize: boolean;
  canEmergencyUnblind: boolean;
  emergencyUnblindings: { at: string; by: string }[];
  error: { message: string; field: string | null } | null;
}

export function RandomizationPanel(p: RandomizationPanelProps) {
  const own = (field: string) => p.error?.field === field;
  const err = (field: string) =>
    own(field) ? (
      <p className="error" role="alert" data-field={field}>
        {p.error?.message}
      </p>
    ) : null;
  const general =
    p.error && !["reason", "confirm"].includes(p.error.field ?? "") && !p.error.field?.startsWith("factors.");
  return (
    <section id="randomization" className="card" data-randomization={p.allocation ? "randomized" : "not-randomized"}>
      <h2>Randomization</h2>
      {general ? (
        <p className="error" role="alert" data-field={p.error?.field ?? ""}>
          {p.error?.message}
        </p>
      ) : null}
      {p.allocation ? (
        <>
          <p>
            Randomization number <strong data-randomization-number>{p.allocation.number}</strong>, given{" "}
            {p.allocation.at.slice(0, 16).replace("T", " ")} UTC.
          </p>
          {p.arm ? (
            <p className="notice" data-arm={p.arm.code}>
              Arm: <strong>{p.arm.name}</strong> ({p.arm.code})
            </p>
          ) : (
            <p className="muted">The treatment arm is blinded.</p>
          )}
          {p.emergencyUnblindings.length ? (
            <p data-emergency-unblinded>
              Unblinded in an emergency{" "}
              {p.emergencyUnblindings.map((u) => `by ${u.by} on ${u.at.slice(0, 16).replace("T", " ")} UTC`).join("; ")}
              .
            </p>
          ) : null}
          {p.canEmergencyUnblind && !p.arm ? (
            <details className="danger-zone">
              <summary>Emergency unblinding</summary>
              <Form method="post" noValidate data-emergency-unblind-form>
                <input type="hidden" name="intent" value="emergency_unblind" />
                <p>
                  Only when the participant's care depends on knowing the treatment. The sponsor is told who unblinded
                  this participant and when; the reason is sealed.
                </p>
                <label htmlFor="unblind-reason">Reason for unblinding</label>
                <textarea
                  id="unblind-reason"
                  name="reason"
                  rows={3}
                  required
                  aria-invalid={p.error?.field === "reason" || undefined}
                />
                {err("reason")}
                <label className="inline">
                  <input type="checkbox" name="confirm" value="yes" required />
                  &nbsp;I confirm this participant must be unblinded now
                </label>
                {err("confirm")}
                <button type="submit" className="button-danger">
                  Unblind this participant
                </button>
              </Form>
            </details>
          ) : null}
        </>
      ) : p.factors === null ? (
        <p className="muted">No randomization list has been committed for this study yet.</p>
      ) : p.canRandomize ? (
        <Form method="post" noValidate data-randomize-form>
          <input type="hidden" name="intent" value="randomize" />
          {p.factors.map((f) => (
            <fieldset key={f.name} aria-invalid={p.error?.field === `factors.${f.name}` || undefined}>
              <legend>{f.label}</legend>
              {f.levels.map((l) => (
                <label className="inline" key={l}>
                  <input type="radio" name={`factor:${f.name}`} value={l} required />
                  &nbsp;{l}
                </label>
              ))}
              {err(`factors.${f.name}`)}
            </fieldset>
          ))}
          <button type="submit">Randomize</button>
        </Form>
      ) : (
        <p className="muted">Not randomized.</p>
      )}
    </section>
  );
}
