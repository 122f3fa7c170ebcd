/**
 * The checks of a form definition that need the expression language (ADR 0024): every condition and calculation
 * compiles, refers only to fields of the same form (an option only of a multichoice field having it), a calculation
 * uses no identifier or free-text field (its inputs must be sealed in clear so the verifier can recompute it), no
 * calculations depend on each other in a circle, and nothing is shown depending on itself.
 * Called from the definition's superRefine; nothing here runs at import time (definition.ts imports this module).
 */
import type { z } from "zod";
import { type CompiledExpression, ExpressionError, compileExpression, referencesOf } from "./expression.ts";
import { type FieldDefinition, type FormDefinition, fieldClass } from "./definition.ts";

type Path = (string | number)[];

export function checkExpressions(d: FormDefinition, ctx: z.RefinementCtx): void {
  const byName = new Map(d.fields.map((f) => [f.name, f]));
  const issue = (path: Path, message: string) => ctx.addIssue({ code: "custom", path, message });

  /** Compile and check the references; null when an issue was added. */
  const compile = (source: string, path: Path, what: string): CompiledExpression | null => {
    let c: CompiledExpression;
    try {
      c = compileExpression(source);
    } catch (e) {
      if (!(e instanceof ExpressionError)) throw e;
      issue(path, `${what}: ${e.message} (at character ${e.at + 1})`);
      return null;
    }
    let ok = true;
    for (const r of referencesOf(c)) {
      const f = byName.get(r.field);
      const problem = !f
        ? `there is no field ${r.field} in this form`
        : r.option !== undefined && f.type !== "multichoice"
          ? `[${r.field}(${r.option})] names an option, but ${f.label} is not a multichoice field`
          : r.option !== undefined && f.type === "multichoice" && !f.options.some((o) => o.value === r.option)
            ? `${f.label} has no option ${r.option}`
            : r.option === undefined && f.type === "multichoice"
              ? `${f.label} holds several options: name one, as [${r.field}(${f.options[0].value})]`
              : null;
      if (problem) {
        issue(path, `${what}: ${problem}`);
        ok = false;
      }
    }
    return ok ? c : null;
  };

  const calcDeps = new Map<string, string[]>();
  /** Which fields each field's visibility depends on (its own condition and its section's), self excluded. */
  const shownDeps = new Map<string, string[]>();
  const sectionRefs = new Map<string, string[]>();
  d.fields.forEach((f, i) => {
    if (f.showIf !== undefined) {
      const c = compile(f.showIf, ["fields", i, "showIf"], `the condition of ${f.label}`);
      if (c?.fields.includes(f.name))
        issue(["fields", i, "showIf"], `${f.label} cannot be shown depending on its own value`);
      if (c)
        shownDeps.set(
          f.name,
          c.fields.filter((n) => n !== f.name),
        );
    }
    if (f.type === "calc") {
      const c = compile(f.expression, ["fields", i, "expression"], `the calculation of ${f.label}`);
      if (!c) return;
      for (const name of c.fields) {
        const used = byName.get(name) as FieldDefinition;
        const cls = fieldClass(used);
        if (cls !== "clear")
          issue(
            ["fields", i, "expression"],
            `a calculation cannot use ${used.label}: it is ${cls === "identifier" ? "an identifier" : "free text"}`,
          );
      }
      calcDeps.set(
        f.name,
        c.fields.filter((n) => byName.get(n)?.type === "calc"),
      );
    }
  });

  (d.sections ?? []).forEach((s, i) => {
    if (s.showIf === undefined) return;
    const c = compile(s.showIf, ["sections", i, "showIf"], `the condition of section ${s.title}`);
    if (!c) return;
    for (const name of c.fields) {
      const f = byName.get(name);
      if (f?.section === s.name)
        issue(["sections", i, "showIf"], `section ${s.title} cannot be shown depending on its own field ${f.label}`);
    }
    sectionRefs.set(
      s.name,
      c.fields.filter((n) => byName.get(n)?.section !== s.name),
    );
  });
  for (const f of d.fields) {
    const inSection = f.section !== undefined ? (sectionRefs.get(f.section) ?? []) : [];
    if (inSection.length > 0) shownDeps.set(f.name, [...(shownDeps.get(f.name) ?? []), ...inSection]);
  }
  const circle = findCycle(shownDeps);
  if (circle) {
    const i = d.fields.findIndex((f) => f.name === circle[0]);
    const labels = circle.map((n) => byName.get(n)?.label ?? n);
    issue(["fields", i, "showIf"], `fields are shown depending on each other in a circle: ${labels.join(" -> ")}`);
  }

  const cycle = findCycle(calcDeps);
  if (cycle) {
    const i = d.fields.findIndex((f) => f.name === cycle[0]);
    issue(["fields", i, "expression"], `calculations depend on each other in a circle: ${cycle.join(" -> ")}`);
  }
}

/** The first circle in a dependency graph, as a path a -> b -> a; null when there is none. */
function findCycle(deps: Map<string, string[]>): string[] | null {
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (n: string): string[] | null => {
    const s = state.get(n);
    if (s === "done") return null;
    if (s === "open") return [...stack.slice(stack.indexOf(n)), n];
    state.set(n, "open");
    stack.push(n);
    for (const m of deps.get(n) ?? []) {
      const found = visit(m);
      if (found) return found;
    }
    stack.pop();
    state.set(n, "done");
    return null;
  };
  for (const n of deps.keys()) {
    const found = visit(n);
    if (found) return found;
  }
  return null;
}
