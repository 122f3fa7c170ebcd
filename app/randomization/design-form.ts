/**
 * The randomization design as the list page's form holds it (ADR 0052): plain text boxes a statistician fills in,
 * turned into the object `designSchema` (anchoring/randomization/slots.ts) checks. Nothing here validates beyond the
 * shape of the text: the service checks the design.
 */
import type { Design } from "../../anchoring/randomization/slots.ts";

export interface DesignFormFields {
  /** One arm a line: `CODE, Name, ratio` (ratio 1 when left out). */
  arms: string;
  /** Block sizes separated by commas: `4, 6`. */
  blockSizes: string;
  /** Up to two factors: its name, label and levels (`F, M`). */
  factor1Name: string;
  factor1Label: string;
  factor1Levels: string;
  factor2Name: string;
  factor2Label: string;
  factor2Levels: string;
  /** Site codes (the checked boxes). */
  sites: string[];
  slotsPerStratum: string;
  /** One kit type a line: `KIT-1 = A` (codes that do not reveal the arm). */
  kitTypes: string;
}

const list = (s: string) =>
  s
    .split(/[,;\s]+/)
    .map((x) => x.trim())
    .filter(Boolean);

/** The form's text as a design object (for designSchema to check); numbers that are not numbers stay as text. */
export function designFromForm(f: DesignFormFields): unknown {
  const num = (s: string) => (/^\s*\d+\s*$/.test(s) ? Number(s) : s.trim());
  const arms = f.arms
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => {
      const [code = "", name = "", ratio = "1"] = l.split(",").map((x) => x.trim());
      return { code, name: name || code, ratio: num(ratio || "1") };
    });
  const factors = [
    [f.factor1Name, f.factor1Label, f.factor1Levels],
    [f.factor2Name, f.factor2Label, f.factor2Levels],
  ]
    .filter(([n, , l]) => n.trim() || l.trim())
    .map(([n, label, l]) => ({ name: n.trim(), label: label.trim() || n.trim(), levels: list(l) }));
  const kitTypes: Record<string, string> = {};
  for (const l of f.kitTypes.split(/\r?\n/)) {
    const [kit, arm] = l.split("=").map((x) => x.trim());
    if (kit) kitTypes[kit] = arm ?? "";
  }
  return {
    v: 1,
    arms,
    blockSizes: list(f.blockSizes).map(num),
    factors,
    sites: f.sites,
    slotsPerStratum: num(f.slotsPerStratum),
    kitTypes,
  };
}

/** A design back as the form's text (to fill the form again from a draft). */
export function formFromDesign(d: Design): DesignFormFields {
  const [a, b] = d.factors;
  return {
    arms: d.arms.map((x) => `${x.code}, ${x.name}, ${x.ratio}`).join("\n"),
    blockSizes: d.blockSizes.join(", "),
    factor1Name: a?.name ?? "",
    factor1Label: a?.label ?? "",
    factor1Levels: a?.levels.join(", ") ?? "",
    factor2Name: b?.name ?? "",
    factor2Label: b?.label ?? "",
    factor2Levels: b?.levels.join(", ") ?? "",
    sites: d.sites,
    slotsPerStratum: String(d.slotsPerStratum),
    kitTypes: Object.entries(d.kitTypes)
      .map(([k, v]) => `${k} = ${v}`)
      .join("\n"),
  };
}
