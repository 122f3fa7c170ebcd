/**
 * The forms' one expression language (ADR 0024, docs/forms.md "Expressions"): REDCap's branching and calculation
 * syntax, a documented subset, compiled by this small parser into JSON Logic and evaluated by json-logic-js with the
 * `rc_*` operations below. The same code runs on the server, in the browser and in the offline verifier: no node:
 * module, no eval, plain JavaScript numbers, no locale-dependent parsing.
 */
import jsonLogic from "json-logic-js";

export interface CompiledExpression {
  source: string;
  /** JSON Logic; only the operations this module emits are evaluated. */
  logic: unknown;
  /** The field names referenced, unique, in order of first use. */
  fields: string[];
}

/** A reference to a field in an expression: `[field]`, or one option of a multichoice field, `[field(code)]`. */
export interface FieldReference {
  field: string;
  option?: string;
  /** 0-based character index of the `[`. */
  at: number;
}

/** An expression that cannot be compiled (or a compiled form that holds something not allowed). */
export class ExpressionError extends Error {
  readonly code = "EXPRESSION_INVALID";
  constructor(
    message: string,
    /** 0-based character index in the source where the problem is. */
    readonly at: number,
  ) {
    super(message);
    this.name = "ExpressionError";
  }
}

export const MAX_EXPRESSION_LENGTH = 2000;
export const MAX_EXPRESSION_DEPTH = 64;
/** Operations inside each other in the compiled form (a - b - c ... nests one level per operator). */
const MAX_LOGIC_DEPTH = 256;
const FIELD_NAME = /^[a-z][a-z0-9_]{0,63}$/;
const OPTION_CODE = /^[A-Za-z0-9_.-]{1,64}$/;
/** Names an object inherits (only `constructor` is all lower-case): refused even though the data is read safely. */
const INHERITED = new Set(Object.getOwnPropertyNames(Object.prototype));
const NOT_REPRODUCIBLE =
  "a calculation must be reproducible from the sealed values, so it cannot depend on the day it is computed";
const DATEDIFF_UNITS = ["y", "M", "d", "h", "m", "s"];

// ---------------------------------------------------------------------------------------------------------------
// Tokens

type Token =
  | { t: "num"; v: number; at: number }
  | { t: "str"; v: string; at: number }
  | { t: "ref"; field: string; option?: string; at: number; end: number }
  | { t: "id"; v: string; at: number }
  | { t: "op"; v: string; at: number }
  | { t: "end"; at: number };

const OPERATORS = ["<=", ">=", "<>", "!=", "&&", "||", "==", "=", "<", ">", "+", "-", "*", "/", "^", "(", ")", ","];

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (c === " " || c === "\t" || c === "\n" || c === "\r") {
      i++;
      continue;
    }
    if (c === "[") {
      const close = src.indexOf("]", i);
      const open = src.indexOf("[", i + 1);
      const inner = close < 0 ? src.slice(i + 1) : src.slice(i + 1, close);
      const name = /^[^\s()[\]]*/.exec(inner)?.[0] ?? "";
      if (close < 0 || (open >= 0 && open < close))
        throw new ExpressionError(`a ] is missing after [${name}`, i + 1 + name.length);
      if (src[close + 1] === "[")
        throw new ExpressionError("cross-event references such as [event][field] are not supported", close + 1);
      const m = /^\s*([^\s()]*)\s*(?:\(\s*([^()]*?)\s*\))?\s*$/.exec(inner);
      if (!m) throw new ExpressionError(`[${inner}] is not a field reference: write [field] or [field(code)]`, i);
      const field = m[1];
      if (field === "") throw new ExpressionError("[] names no field", i);
      if (!FIELD_NAME.test(field) || INHERITED.has(field))
        throw new ExpressionError(
          `[${field}] is not a field name: field names are lower-case letters, digits and _, starting with a letter`,
          i + 1,
        );
      if (m[2] !== undefined && !OPTION_CODE.test(m[2]))
        throw new ExpressionError(`(${m[2]}) is not an option code in [${field}(...)]`, i + 1 + field.length);
      out.push({ t: "ref", field, option: m[2], at: i, end: close + 1 });
      i = close + 1;
      continue;
    }
    if (c === "]") throw new ExpressionError("a ] without its [", i);
    if (c === "'" || c === '"') {
      const close = src.indexOf(c, i + 1);
      if (close < 0) throw new ExpressionError(`the text starting here has no closing ${c}`, i);
      const v = src.slice(i + 1, close);
      const lower = v.trim().toLowerCase();
      if (lower === "today" || lower === "now")
        throw new ExpressionError(`"${v}" is not allowed: ${NOT_REPRODUCIBLE}`, i);
      out.push({ t: "str", v, at: i });
      i = close + 1;
      continue;
    }
    const num = /^(?:\d+(?:\.\d*)?|\.\d+)/.exec(src.slice(i, i + 400));
    if (num) {
      if (/^[A-Za-z_]/.test(src.slice(i + num[0].length, i + num[0].length + 1)))
        throw new ExpressionError(`a number cannot be followed by a letter here`, i + num[0].length);
      out.push({ t: "num", v: Number(num[0]), at: i });
      i += num[0].length;
      continue;
    }
    const id = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i, i + 200));
    if (id) {
      out.push({ t: "id", v: id[0], at: i });
      i += id[0].length;
      continue;
    }
    const op = OPERATORS.find((o) => src.startsWith(o, i));
    if (op === "==") throw new ExpressionError("write = (one equals sign) to compare", i);
    if (!op) throw new ExpressionError(`the character ${JSON.stringify(c)} is not understood`, i);
    out.push({ t: "op", v: op, at: i });
    i += op.length;
  }
  out.push({ t: "end", at: src.length });
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Parser: precedence from lowest: or, and, not, comparison, + -, * /, unary -, ^ (right-associative), primary.

/** A compiled node: its JSON Logic and whether it always yields true/false. */
interface Node {
  logic: unknown;
  bool: boolean;
  at: number;
}

const FUNCTIONS: Record<string, { min: number; max: number; op: string }> = {
  if: { min: 3, max: 3, op: "if" },
  round: { min: 1, max: 2, op: "rc_round" },
  roundup: { min: 1, max: 2, op: "rc_roundup" },
  rounddown: { min: 1, max: 2, op: "rc_rounddown" },
  abs: { min: 1, max: 1, op: "rc_abs" },
  min: { min: 1, max: 100, op: "rc_min" },
  max: { min: 1, max: 100, op: "rc_max" },
  sum: { min: 1, max: 100, op: "rc_sum" },
  mean: { min: 1, max: 100, op: "rc_mean" },
  sqrt: { min: 1, max: 1, op: "rc_sqrt" },
  datediff: { min: 3, max: 5, op: "rc_datediff" },
};
const COMPARISONS: Record<string, string> = {
  "=": "rc_eq",
  "<>": "rc_ne",
  "!=": "rc_ne",
  "<": "rc_lt",
  "<=": "rc_le",
  ">": "rc_gt",
  ">=": "rc_ge",
};

class Parser {
  private i = 0;
  private depth = 0;
  readonly refs: FieldReference[] = [];
  constructor(private readonly tokens: Token[]) {}

  private get tok(): Token {
    return this.tokens[this.i];
  }
  /** The current token, un-narrowed (the parse methods called in between move on). */
  private current(): Token {
    return this.tokens[this.i];
  }
  private isOp(v: string): boolean {
    const t = this.tok;
    return t.t === "op" && t.v === v;
  }
  private isWord(v: string): boolean {
    const t = this.tok;
    return t.t === "id" && t.v.toLowerCase() === v;
  }
  private enter(at: number) {
    if (++this.depth > MAX_EXPRESSION_DEPTH)
      throw new ExpressionError(`the expression is nested too deeply (more than ${MAX_EXPRESSION_DEPTH} levels)`, at);
  }
  private leave() {
    this.depth--;
  }
  private describe(t: Token): string {
    switch (t.t) {
      case "end":
        return "the end of the expression";
      case "num":
        return `the number ${t.v}`;
      case "str":
        return `the text "${t.v}"`;
      case "ref":
        return `[${t.field}${t.option !== undefined ? `(${t.option})` : ""}]`;
      default:
        return t.v;
    }
  }

  parse(): Node {
    if (this.tok.t === "end") throw new ExpressionError("the expression is empty", 0);
    const n = this.or();
    const t = this.current();
    if (t.t !== "end") {
      if (t.t === "op" && t.v === ")") throw new ExpressionError("a ) without its (", t.at);
      throw new ExpressionError(`${this.describe(t)} is not expected here: an operator is missing before it`, t.at);
    }
    return n;
  }

  private or(): Node {
    let left = this.and();
    while (this.isWord("or") || this.isOp("||")) {
      this.i++;
      const right = this.and();
      left = { logic: chain("or", left, truth(right), truth), bool: true, at: left.at };
    }
    return left;
  }

  private and(): Node {
    let left = this.not();
    while (this.isWord("and") || this.isOp("&&")) {
      this.i++;
      const right = this.not();
      left = { logic: chain("and", left, truth(right), truth), bool: true, at: left.at };
    }
    return left;
  }

  private not(): Node {
    if (this.isWord("not")) {
      const at = this.tok.at;
      this.i++;
      this.enter(at);
      const operand = this.not();
      this.leave();
      return { logic: { "!": [truth(operand)] }, bool: true, at };
    }
    return this.comparison();
  }

  private comparison(): Node {
    let left = this.additive();
    for (;;) {
      const t = this.tok;
      if (t.t !== "op" || !(t.v in COMPARISONS)) return left;
      this.i++;
      const right = this.additive();
      left = { logic: { [COMPARISONS[t.v]]: [left.logic, right.logic] }, bool: true, at: left.at };
    }
  }

  private additive(): Node {
    let left = this.multiplicative();
    while (this.isOp("+") || this.isOp("-")) {
      const op = (this.tok as { v: string }).v === "+" ? "rc_add" : "rc_sub";
      this.i++;
      const right = this.multiplicative();
      left = {
        logic: op === "rc_add" ? chain(op, left, right.logic) : { [op]: [left.logic, right.logic] },
        bool: false,
        at: left.at,
      };
    }
    return left;
  }

  private multiplicative(): Node {
    let left = this.unary();
    while (this.isOp("*") || this.isOp("/")) {
      const op = (this.tok as { v: string }).v === "*" ? "rc_mul" : "rc_div";
      this.i++;
      const right = this.unary();
      left = {
        logic: op === "rc_mul" ? chain(op, left, right.logic) : { [op]: [left.logic, right.logic] },
        bool: false,
        at: left.at,
      };
    }
    return left;
  }

  private unary(): Node {
    if (this.isOp("-")) {
      const at = this.tok.at;
      this.i++;
      this.enter(at);
      const operand = this.unary();
      this.leave();
      return { logic: { rc_neg: [operand.logic] }, bool: false, at };
    }
    return this.power();
  }

  private power(): Node {
    const base = this.primary();
    if (!this.isOp("^")) return base;
    this.i++;
    this.enter(base.at);
    const exponent = this.unary(); // right-associative: 2^3^2 = 2^(3^2); 2^-1 allowed
    this.leave();
    return { logic: { rc_pow: [base.logic, exponent.logic] }, bool: false, at: base.at };
  }

  private primary(): Node {
    const t = this.tok;
    switch (t.t) {
      case "num":
        this.i++;
        return { logic: t.v, bool: false, at: t.at };
      case "str":
        this.i++;
        return { logic: t.v, bool: false, at: t.at };
      case "ref": {
        this.i++;
        this.refs.push({ field: t.field, ...(t.option !== undefined ? { option: t.option } : {}), at: t.at });
        const v = { var: t.field };
        if (t.option === undefined) return { logic: v, bool: false, at: t.at };
        return { logic: { rc_checked: [v, t.option] }, bool: false, at: t.at };
      }
      case "op":
        if (t.v === "(") {
          this.i++;
          this.enter(t.at);
          const inner = this.or();
          this.leave();
          if (!this.isOp(")")) throw new ExpressionError("a ) is missing", this.tok.at);
          this.i++;
          return { ...inner, at: t.at };
        }
        throw new ExpressionError(`${this.describe(t)} is not expected here: a value is missing before it`, t.at);
      case "end":
        throw new ExpressionError("the expression ends too early: a value is missing", t.at);
      case "id":
        return this.word(t);
    }
  }

  private word(t: { v: string; at: number }): Node {
    const lower = t.v.toLowerCase();
    this.i++;
    if (lower === "true" || lower === "false") return { logic: lower === "true", bool: true, at: t.at };
    if (!this.isOp("(")) {
      if (lower === "and" || lower === "or" || lower === "not")
        throw new ExpressionError(`${t.v} is not expected here: a value is missing before it`, t.at);
      throw new ExpressionError(
        `${t.v} is not understood: a field is written in brackets, [${lower}], and text in quotes, '${t.v}'`,
        t.at,
      );
    }
    const fn = Object.hasOwn(FUNCTIONS, lower) ? FUNCTIONS[lower] : undefined;
    if (!fn) {
      const why = lower === "today" || lower === "now" ? `: ${NOT_REPRODUCIBLE}` : "";
      throw new ExpressionError(`unknown function ${t.v}${why}`, t.at);
    }
    this.i++;
    this.enter(t.at);
    const args: Node[] = [];
    if (!this.isOp(")")) {
      for (;;) {
        args.push(this.or());
        if (this.isOp(",")) {
          this.i++;
          continue;
        }
        if (this.isOp(")")) break;
        throw new ExpressionError(`a ) is missing after the arguments of ${lower}`, this.tok.at);
      }
    }
    this.i++;
    this.leave();
    if (args.length < fn.min || args.length > fn.max) {
      const n = fn.min === fn.max ? `${fn.min}` : fn.max >= 100 ? `at least ${fn.min}` : `${fn.min} to ${fn.max}`;
      throw new ExpressionError(`${lower} takes ${n} argument${n === "1" ? "" : "s"}, not ${args.length}`, t.at);
    }
    if (lower === "if") return { logic: { if: [truth(args[0]), args[1].logic, args[2].logic] }, bool: false, at: t.at };
    if (lower === "datediff") return { logic: { rc_datediff: datediffArgs(args) }, bool: false, at: t.at };
    return { logic: { [fn.op]: args.map((a) => a.logic) }, bool: false, at: t.at };
  }
}

/** datediff(d1, d2, "unit" [, "ymd"] [, signed]) as [d1, d2, unit, signed]; the unit and options are literals. */
function datediffArgs(args: Node[]): unknown[] {
  const unit = args[2].logic;
  if (typeof unit !== "string" || !DATEDIFF_UNITS.includes(unit))
    throw new ExpressionError('datediff needs a unit in quotes: "y", "M", "d", "h", "m" or "s"', args[2].at);
  let signed = false;
  let rest = args.slice(3);
  if (rest.length > 0 && typeof rest[0].logic === "string") {
    if (rest[0].logic !== "ymd")
      throw new ExpressionError('only the date format "ymd" is supported: dates are stored as YYYY-MM-DD', rest[0].at);
    rest = rest.slice(1);
  }
  if (rest.length > 1) throw new ExpressionError("datediff takes at most 5 arguments", rest[1].at);
  if (rest.length === 1) {
    const s = rest[0].logic;
    if (s !== true && s !== false && s !== 1 && s !== 0)
      throw new ExpressionError("the last argument of datediff is true (signed) or false (absolute)", rest[0].at);
    signed = s === true || s === 1;
  }
  return [args[0].logic, args[1].logic, unit, signed];
}

/**
 * `a op b op c` as one flat operation {op: [a, b, c]} (associative and, or, +, *), so that long lists of terms do not
 * nest. `flat` marks the nodes this parser built as a chain (merging a parenthesised left operand, `(a + b) + c`,
 * gives the same result: operands are still applied left to right).
 */
const flat = new WeakSet<object>();
function chain(op: string, left: Node, right: unknown, wrap: (n: Node) => unknown = (n) => n.logic): unknown {
  const l = left.logic as Record<string, unknown[]>;
  if (l !== null && typeof l === "object" && flat.has(l) && Object.hasOwn(l, op)) {
    l[op].push(right);
    return l;
  }
  const made = { [op]: [wrap(left), right] };
  flat.add(made);
  return made;
}

/** How deeply operations nest in JSON Logic (arrays do not count). */
function logicDepth(l: unknown): number {
  if (l === null || typeof l !== "object") return 0;
  const inner = Array.isArray(l) ? l : Object.values(l);
  let d = 0;
  for (const x of inner) d = Math.max(d, logicDepth(x));
  return Array.isArray(l) ? d : d + 1;
}

/** A condition's JSON Logic as true/false (our truthiness, not JavaScript's: "0" is false). */
function truth(n: Node): unknown {
  return n.bool ? n.logic : { rc_truthy: [n.logic] };
}

const references = new WeakMap<CompiledExpression, FieldReference[]>();

/** Compile an expression; throws ExpressionError naming what is wrong and where. */
export function compileExpression(source: string): CompiledExpression {
  if (typeof source !== "string") throw new ExpressionError("the expression is not text", 0);
  if (source.length > MAX_EXPRESSION_LENGTH)
    throw new ExpressionError(
      `the expression is longer than ${MAX_EXPRESSION_LENGTH} characters`,
      MAX_EXPRESSION_LENGTH,
    );
  const parser = new Parser(tokenize(source));
  const node = parser.parse();
  if (logicDepth(node.logic) > MAX_LOGIC_DEPTH)
    throw new ExpressionError(
      `the expression is nested too deeply (more than ${MAX_LOGIC_DEPTH} operations inside each other)`,
      0,
    );
  const fields = [...new Set(parser.refs.map((r) => r.field))];
  const compiled: CompiledExpression = { source, logic: node.logic, fields };
  references.set(compiled, parser.refs);
  return compiled;
}

/** Every field reference of a compiled expression, with its option code and position. */
export function referencesOf(c: CompiledExpression): FieldReference[] {
  return references.get(c) ?? references.get(compileExpression(c.source)) ?? [];
}

// ---------------------------------------------------------------------------------------------------------------
// Values and operations (REDCap semantics)

const NUMERIC = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/** A value as expressions see it: absent/null is "", a boolean 1/0, a multichoice array stays for [f(code)]. */
function normalize(v: unknown): unknown {
  if (v === undefined || v === null) return "";
  if (typeof v === "boolean") return v ? 1 : 0;
  if (typeof v === "number") return Number.isFinite(v) ? v : "";
  if (typeof v === "string") return v;
  if (Array.isArray(v)) return v.filter((x) => typeof x === "string");
  return "";
}

/** The number a value holds: null when empty (or not a number: text, a date, a list). */
function num(v: unknown): number | null {
  if (typeof v === "number") return Number.isFinite(v) ? v : null;
  if (typeof v === "boolean") return v ? 1 : 0;
  if (typeof v === "string" && NUMERIC.test(v.trim())) return Number(v.trim());
  return null;
}

function isEmpty(v: unknown): boolean {
  return v === undefined || v === null || v === "" || (Array.isArray(v) && v.length === 0);
}

/** A finite number, else null ("no value"). */
function finite(x: number): number | null {
  return Number.isFinite(x) ? (Object.is(x, -0) ? 0 : x) : null;
}

function arithmetic(f: (a: number, b: number) => number) {
  return (a: unknown, b: unknown) => {
    const x = num(a);
    const y = num(b);
    return x === null || y === null ? null : finite(f(x, y));
  };
}

/** An associative operation over 2 or more operands, applied left to right; null if one is not a number. */
function variadic(f: (a: number, b: number) => number) {
  return (...args: unknown[]) => {
    const xs = args.map(num);
    if (xs.length < 2 || xs.some((x) => x === null)) return null;
    return finite((xs as number[]).reduce(f));
  };
}

/** Compare: numerically when both sides are numeric-like, else as text (code-unit order; no locale). */
function compare(a: unknown, b: unknown): number {
  const x = comparable(a);
  const y = comparable(b);
  const nx = typeof x === "number" ? x : x !== "" && NUMERIC.test(x.trim()) ? Number(x.trim()) : null;
  const ny = typeof y === "number" ? y : y !== "" && NUMERIC.test(y.trim()) ? Number(y.trim()) : null;
  if (nx !== null && ny !== null) return nx < ny ? -1 : nx > ny ? 1 : 0;
  const sx = String(x);
  const sy = String(y);
  return sx < sy ? -1 : sx > sy ? 1 : 0;
}

function comparable(v: unknown): number | string {
  if (typeof v === "boolean") return v ? 1 : 0;
  if (typeof v === "number") return Number.isFinite(v) ? v : "";
  if (typeof v === "string") return v;
  return "";
}

/** Shift the decimal point of x by d places exactly (via the decimal exponent, not by multiplying). */
function shift(x: number, d: number): number {
  const [m, e] = String(x).split("e");
  return Number(`${m}e${Number(e ?? 0) + d}`);
}

function rounding(mode: (x: number) => number) {
  return (x: unknown, d?: unknown) => {
    const v = num(x);
    const places = d === undefined ? 0 : num(d);
    if (v === null || places === null || !Number.isInteger(places) || Math.abs(places) > 15) return null;
    const abs = Number(Math.abs(v).toPrecision(15)); // drop binary noise: 1.005 stays 1.005, 0.1+0.2 is 0.3
    return finite(Math.sign(v) * shift(mode(shift(abs, places)), -places));
  };
}

/** The numbers of a list of values, blanks ignored (as REDCap's sum/mean/min/max); null if one is not a number. */
function numbers(values: unknown[]): number[] | null {
  const out: number[] = [];
  for (const v of values) {
    if (isEmpty(v)) continue;
    const n = num(v);
    if (n === null) return null;
    out.push(n);
  }
  return out;
}

const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?(Z|[+-]\d{2}:\d{2})?)?$/;

/** Milliseconds since the epoch of a date (midnight UTC) or an RFC 3339 date-time; null if it is not one. */
function instant(v: unknown): number | null {
  if (typeof v !== "string") return null;
  const m = DATE_TIME.exec(v.trim());
  if (!m) return null;
  const [y, mo, d, h, mi, s] = [1, 2, 3, 4, 5, 6].map((k) => Number(m[k] ?? 0));
  const ms = Number((m[7] ?? "0").padEnd(3, "0"));
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return null;
  const t = Date.UTC(y, mo - 1, d, h, mi, s, ms);
  if (new Date(t).getUTCDate() !== d) return null; // 2021-02-30
  const zone = m[8];
  if (zone === undefined || zone === "Z") return t;
  const sign = zone[0] === "-" ? -1 : 1;
  return t - sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6))) * 60_000;
}

/** REDCap's constants: a year is 365.2425 days, a month 30.44 days. */
const UNIT_MS: Record<string, number> = {
  y: 365.2425 * 86_400_000,
  M: 30.44 * 86_400_000,
  d: 86_400_000,
  h: 3_600_000,
  m: 60_000,
  s: 1000,
};

const OPERATIONS: Record<string, (...args: unknown[]) => unknown> = {
  rc_truthy: (v) => isTruthy(v),
  rc_checked: (list, option) => (Array.isArray(list) && list.includes(option) ? 1 : 0),
  rc_eq: (a, b) => compare(a, b) === 0,
  rc_ne: (a, b) => compare(a, b) !== 0,
  rc_lt: (a, b) => compare(a, b) < 0,
  rc_le: (a, b) => compare(a, b) <= 0,
  rc_gt: (a, b) => compare(a, b) > 0,
  rc_ge: (a, b) => compare(a, b) >= 0,
  rc_add: variadic((a, b) => a + b),
  rc_sub: arithmetic((a, b) => a - b),
  rc_mul: variadic((a, b) => a * b),
  rc_div: arithmetic((a, b) => a / b),
  rc_pow: arithmetic((a, b) => a ** b),
  rc_neg: (a) => {
    const x = num(a);
    return x === null ? null : finite(-x);
  },
  rc_round: rounding(Math.round), // on |x|: half away from zero
  rc_roundup: rounding(Math.ceil),
  rc_rounddown: rounding(Math.floor),
  rc_abs: (a) => {
    const x = num(a);
    return x === null ? null : Math.abs(x);
  },
  rc_sqrt: (a) => {
    const x = num(a);
    return x === null ? null : finite(Math.sqrt(x));
  },
  rc_min: (...a) => {
    const n = numbers(a);
    return n === null || n.length === 0 ? null : Math.min(...n);
  },
  rc_max: (...a) => {
    const n = numbers(a);
    return n === null || n.length === 0 ? null : Math.max(...n);
  },
  rc_sum: (...a) => {
    const n = numbers(a);
    return n === null || n.length === 0 ? null : finite(n.reduce((s, x) => s + x, 0));
  },
  rc_mean: (...a) => {
    const n = numbers(a);
    return n === null || n.length === 0 ? null : finite(n.reduce((s, x) => s + x, 0) / n.length);
  },
  rc_datediff: (a, b, unit, signed) => {
    const t1 = instant(a);
    const t2 = instant(b);
    if (t1 === null || t2 === null || typeof unit !== "string" || !Object.hasOwn(UNIT_MS, unit)) return null;
    const diff = (t2 - t1) / UNIT_MS[unit];
    return finite(signed === true ? diff : Math.abs(diff));
  },
};
for (const [name, op] of Object.entries(OPERATIONS)) jsonLogic.add_operation(name, op);

/** The JSON Logic operations a compiled expression may hold: json-logic-js's others (e.g. "method") are refused. */
const ALLOWED = new Set(["var", "if", "and", "or", "!", ...Object.keys(OPERATIONS)]);
const checked = new WeakMap<object, string[]>();

/** Check that logic holds only our operations; returns the fields it reads. */
function allowedLogic(logic: unknown): string[] {
  if (logic !== null && typeof logic === "object") {
    const known = checked.get(logic);
    if (known) return known;
  }
  const fields = new Set<string>();
  const walk = (l: unknown, depth: number): void => {
    if (depth > MAX_LOGIC_DEPTH) throw new ExpressionError("the compiled expression is nested too deeply", 0);
    if (l === null || typeof l === "number" || typeof l === "string" || typeof l === "boolean") return;
    if (Array.isArray(l)) {
      for (const x of l) walk(x, depth);
      return;
    }
    if (typeof l !== "object") throw new ExpressionError("the compiled expression holds a value not allowed", 0);
    const keys = Object.keys(l);
    const op = keys[0];
    if (keys.length !== 1 || Object.getPrototypeOf(l) !== Object.prototype || !ALLOWED.has(op))
      throw new ExpressionError(`the compiled expression holds an operation not allowed (${String(op)})`, 0);
    const args = (l as Record<string, unknown>)[op];
    if (op === "var") {
      if (typeof args !== "string" || !FIELD_NAME.test(args) || INHERITED.has(args))
        throw new ExpressionError("the compiled expression reads something that is not a field", 0);
      fields.add(args);
      return;
    }
    if (!Array.isArray(args)) throw new ExpressionError("the compiled expression is malformed", 0);
    walk(args, depth + 1);
  };
  walk(logic, 0);
  const out = [...fields];
  if (logic !== null && typeof logic === "object") checked.set(logic, out);
  return out;
}

/**
 * Evaluate against a record's values. Only own properties of `data` are read; an absent field is "". The result is
 * a boolean (conditions), a number, a text, or null (no value: an empty input to arithmetic, a division by zero).
 */
export function evaluateExpression(c: CompiledExpression, data: Record<string, unknown>): unknown {
  const fields = allowedLogic(c.logic);
  const scope: Record<string, unknown> = Object.create(null);
  for (const f of fields) scope[f] = data !== null && Object.hasOwn(data, f) ? normalize(data[f]) : "";
  const r = jsonLogic.apply(c.logic as never, scope) as unknown;
  if (typeof r === "number") return finite(r);
  return r === undefined ? null : r;
}

/** A calculation's value: a finite number, else null. */
export function evaluateCalculation(c: CompiledExpression, data: Record<string, unknown>): number | null {
  const r = evaluateExpression(c, data);
  if (typeof r === "boolean") return r ? 1 : 0;
  return num(r);
}

/** Whether a condition holds: true, a non-zero number, or a text other than "" and "0"-like numbers. */
export function isTruthy(v: unknown): boolean {
  if (typeof v === "boolean") return v;
  if (typeof v === "number") return Number.isFinite(v) && v !== 0;
  if (typeof v === "string") {
    const t = v.trim();
    if (t === "") return false;
    return NUMERIC.test(t) ? Number(t) !== 0 : true;
  }
  return false;
}
