import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type CompiledExpression,
  ExpressionError,
  compileExpression,
  evaluateCalculation,
  evaluateExpression,
  isTruthy,
  referencesOf,
} from "./expression.ts";

const run = (source: string, data: Record<string, unknown> = {}) => evaluateExpression(compileExpression(source), data);
const calc = (source: string, data: Record<string, unknown> = {}) =>
  evaluateCalculation(compileExpression(source), data);

function refusal(source: string): ExpressionError {
  try {
    compileExpression(source);
  } catch (e) {
    expect(e).toBeInstanceOf(ExpressionError);
    return e as ExpressionError;
  }
  throw new Error(`compiled: ${source}`);
}

describe("REDCap calculations", () => {
  it("BMI from weight (kg) and height (cm), one decimal", () => {
    const c = compileExpression("round([weight]*10000/([height]^2),1)");
    expect(c.fields).toEqual(["weight", "height"]);
    expect(c.source).toBe("round([weight]*10000/([height]^2),1)");
    expect(evaluateExpression(c, { weight: 70, height: 175 })).toBe(22.9);
    expect(evaluateExpression(c, { weight: "82.5", height: "180" })).toBe(25.5);
    expect(evaluateExpression(c, { weight: 70 })).toBeNull(); // an empty input gives no value
    expect(evaluateExpression(c, { weight: 70, height: 0 })).toBeNull(); // division by zero: no value
  });

  it("age in whole years at the visit", () => {
    const age = compileExpression('rounddown(datediff([dob],[visit_date],"y"),0)');
    expect(evaluateExpression(age, { dob: "2000-06-15", visit_date: "2020-06-14" })).toBe(19);
    expect(evaluateExpression(age, { dob: "2000-06-15", visit_date: "2020-06-15" })).toBe(20);
    expect(evaluateExpression(age, { dob: "2000-06-15", visit_date: "" })).toBeNull();
    expect(evaluateExpression(age, { dob: "2000-02-30", visit_date: "2020-06-15" })).toBeNull();
    expect(
      evaluateExpression(compileExpression('datediff([a],[b],"y","ymd")'), { a: "2000-01-01", b: "2000-01-01" }),
    ).toBe(0);
  });

  it("datediff units and signs as REDCap (y = 365.2425 days, M = 30.44 days)", () => {
    const d = { a: "2024-03-01", b: "2024-02-01" };
    expect(run('datediff([a],[b],"d")', d)).toBe(29);
    expect(run('datediff([a],[b],"d",true)', d)).toBe(-29);
    expect(run('datediff([a],[b],"d","ymd",true)', d)).toBe(-29);
    expect(run('datediff([b],[a],"d","ymd",false)', d)).toBe(29);
    expect(run('datediff([a],[b],"M")', d)).toBeCloseTo(29 / 30.44, 12);
    expect(run('datediff("2000-01-01","2001-01-01","y")')).toBeCloseTo(366 / 365.2425, 12);
    const t = { s: "2024-01-01T08:00:00+01:00", e: "2024-01-01T10:30:00Z" };
    expect(run('datediff([s],[e],"h")', t)).toBe(3.5);
    expect(run('datediff([s],[e],"m")', t)).toBe(210);
    expect(run('datediff([s],[e],"s")', t)).toBe(12600);
    expect(run('datediff([s],[e],"d")', { s: "2024-01-01", e: "2024-01-02T12:00:00Z" })).toBe(1.5);
  });

  it("a score as a sum of items; blanks ignored by sum, mean, min, max", () => {
    const items = { q1: 2, q2: "3", q3: "", q4: 1 };
    expect(run("sum([q1],[q2],[q3],[q4])", items)).toBe(6);
    expect(run("mean([q1],[q2],[q3],[q4])", items)).toBe(2);
    expect(run("min([q1],[q2],[q3],[q4])", items)).toBe(1);
    expect(run("max([q1],[q2],[q3],[q4])", items)).toBe(3);
    expect(run("sum([q3])", items)).toBeNull();
    expect(run("sum([q1],'abc')", items)).toBeNull();
    expect(run("[q1]+[q2]+[q3]", items)).toBeNull(); // arithmetic with an empty operand has no value
  });

  it("rounds half away from zero, roundup and rounddown with decimals", () => {
    expect(run("round(2.5)")).toBe(3);
    expect(run("round(-2.5)")).toBe(-3);
    expect(run("round(1.005,2)")).toBe(1.01);
    expect(run("round(-1.005,2)")).toBe(-1.01);
    expect(run("round(1234.5678,-2)")).toBe(1200);
    expect(run("roundup(1.21,1)")).toBe(1.3);
    expect(run("roundup(-1.21,1)")).toBe(-1.3);
    expect(run("rounddown(1.29,1)")).toBe(1.2);
    expect(run("rounddown(-1.29,1)")).toBe(-1.2);
    expect(run("roundup(0.1+0.2,1)")).toBe(0.3);
    expect(run("round(2.4)")).toBe(2);
    expect(run("round([x],1)", {})).toBeNull();
    expect(run("round(2.5,0.5)")).toBeNull();
  });

  it("rounds every decimal half away from zero, whatever its binary representation (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: -999_999, max: 999_999 }), fc.integer({ min: 0, max: 6 }), (k, d) => {
        const digits = `${Math.abs(k)}5`.padStart(d + 2, "0");
        const half = `${k < 0 ? "-" : ""}${digits.slice(0, -(d + 1))}.${digits.slice(-(d + 1))}`; // 1.005: k 100, d 2
        const away = `${k < 0 ? "-" : ""}${Math.abs(k) + 1}e-${d}`;
        const toward = `${k < 0 ? "-" : ""}${Math.abs(k)}e-${d}`;
        expect(run(`round(${half},${d})`)).toBe(Number(away) || 0);
        expect(run(`roundup(${half},${d})`)).toBe(Number(away) || 0);
        expect(run(`rounddown(${half},${d})`)).toBe(Number(toward) || 0);
      }),
      {
        numRuns: 500,
        examples: [
          [0, 6],
          [100, 2],
          [-100, 2],
          [999_999, 6],
        ],
      },
    );
  });

  it("abs, sqrt, powers, unary minus and precedence", () => {
    expect(run("abs(-3)")).toBe(3);
    expect(run("sqrt(16)")).toBe(4);
    expect(run("sqrt(-1)")).toBeNull();
    expect(run("1 + 2 * 3")).toBe(7);
    expect(run("(1 + 2) * 3")).toBe(9);
    expect(run("2 ^ 3 ^ 2")).toBe(512);
    expect(run("-2 ^ 2")).toBe(-4);
    expect(run("2 ^ -1")).toBe(0.5);
    expect(run("10 - 4 - 3")).toBe(3);
    expect(run("12 / 3 / 2")).toBe(2);
    expect(run("--3")).toBe(3);
    expect(run(".5 * 4")).toBe(2);
    expect(run("1 + 2 > 2 and 3 = 3")).toBe(true);
  });

  it("if(condition, then, else)", () => {
    expect(run("if([sex] = 'F', 1, 0)", { sex: "F" })).toBe(1);
    expect(run("if([sex] = 'F', 1, 0)", { sex: "M" })).toBe(0);
    expect(run("if([n], 'yes', 'no')", { n: "0" })).toBe("no");
    expect(run("if([n], 'yes', 'no')", { n: 2 })).toBe("yes");
  });

  it("a calculation's value is a finite number or null", () => {
    expect(calc("[a] / [b]", { a: 1, b: 0 })).toBeNull();
    expect(calc("[a] = 1", { a: 1 })).toBe(1);
    expect(calc("if([a] = 1, 'x', 2)", { a: 1 })).toBeNull();
    expect(calc("10 ^ 400")).toBeNull();
    expect(Object.is(calc("-0"), 0)).toBe(true);
  });
});

describe("REDCap branching", () => {
  it("sex and age", () => {
    const c = compileExpression("[sex] = 'F' and [age] >= 12");
    expect(evaluateExpression(c, { sex: "F", age: 12 })).toBe(true);
    expect(evaluateExpression(c, { sex: "F", age: 11 })).toBe(false);
    expect(evaluateExpression(c, { sex: "M", age: 40 })).toBe(false);
    expect(evaluateExpression(c, { sex: "F", age: "9" })).toBe(false); // numeric, not "9" >= "12" as text
  });

  it("choices compare as codes, numeric-like codes numerically", () => {
    expect(run("[ae_any] = '1'", { ae_any: "1" })).toBe(true);
    expect(run("[ae_any] = 1", { ae_any: "1" })).toBe(true);
    expect(run("[ae_any] = '1.0'", { ae_any: "1" })).toBe(true);
    expect(run("[ae_any] = '1'", {})).toBe(false);
    expect(run("[ae_any] <> ''", { ae_any: "0" })).toBe(true);
    expect(run("[ae_any] = ''", {})).toBe(true);
    expect(run("[ae_any] != '1'", { ae_any: "2" })).toBe(true);
    expect(run("[grade] < 'B'", { grade: "A" })).toBe(true);
  });

  it("booleans compare as 1 and 0", () => {
    expect(run("[pregnant] = 1", { pregnant: true })).toBe(true);
    expect(run("[pregnant] = '1'", { pregnant: true })).toBe(true);
    expect(run("[pregnant] = '0'", { pregnant: false })).toBe(true);
    expect(run("[pregnant] = ''", {})).toBe(true);
    expect(run("[pregnant]", { pregnant: true })).toBe(1);
  });

  it("checkbox options: [field(code)] is 1 when the list holds the code, else 0", () => {
    expect(run("[symptoms(NAUSEA)] = '1'", { symptoms: ["NAUSEA", "FEVER"] })).toBe(true);
    expect(run("[symptoms(NAUSEA)] = '1'", { symptoms: ["FEVER"] })).toBe(false);
    expect(run("[symptoms(NAUSEA)] = 0", {})).toBe(true);
    expect(run("[symptoms(NAUSEA)] + [symptoms(FEVER)]", { symptoms: ["NAUSEA", "FEVER"] })).toBe(2);
    expect(run("[symptoms(2)] = 1", { symptoms: ["2"] })).toBe(true);
  });

  it("dates compare in calendar order as text", () => {
    expect(run("[start] <= [end]", { start: "2024-01-31", end: "2024-02-01" })).toBe(true);
    expect(run("[start] > '2024-01-01'", { start: "2023-12-31" })).toBe(false);
  });

  it("and, or, not: case-insensitive, && and ||, with the usual precedence", () => {
    expect(run("[a] = 1 OR [b] = 1 AND [c] = 1", { a: 1, b: 0, c: 0 })).toBe(true);
    expect(run("([a] = 1 or [b] = 1) and [c] = 1", { a: 1, b: 0, c: 0 })).toBe(false);
    expect(run("not [a] = 1", { a: 1 })).toBe(false);
    expect(run("NOT([a] = 1) && [b] = 2 || [c] = 3", { a: 2, b: 2 })).toBe(true);
    expect(run("not not [a] = 1", { a: 1 })).toBe(true);
    expect(run("[a] and [b]", { a: "1", b: "0" })).toBe(false);
    expect(run("true or false")).toBe(true);
  });

  it("isTruthy", () => {
    for (const v of [true, 1, -2, "1", "x", "0.5"]) expect(isTruthy(v), String(v)).toBe(true);
    for (const v of [false, 0, "", "0", "0.0", null, undefined, Number.NaN, [], {}]) expect(isTruthy(v)).toBe(false);
  });
});

describe("refusals name what is wrong and where", () => {
  const cases: [string, RegExp, number][] = [
    ["today()", /^unknown function today: a calculation must be reproducible/, 0],
    ['datediff([dob],"today","y")', /"today" is not allowed: a calculation must be reproducible/, 15],
    ["datediff([dob],'NOW','h')", /"NOW" is not allowed/, 15],
    ["[weight * 2", /^a \] is missing after \[weight$/, 7],
    ["[weight] * [height", /^a \] is missing after \[height$/, 18],
    ["[event_1_arm_1][weight] > 2", /^cross-event references such as \[event\]\[field\] are not supported$/, 15],
    ["stdev([a],[b])", /^unknown function stdev$/, 0],
    ["round([a]", /a \) is missing after the arguments of round/, 9],
    ["([a] + 1", /^a \) is missing$/, 8],
    ["[a] + 1)", /^a \) without its \($/, 7],
    ["[a] [b]", /\[b\] is not expected here: an operator is missing/, 4],
    ["[a] +", /ends too early/, 5],
    ["[a] == 1", /write = \(one equals sign\)/, 4],
    ["[a] = yes", /yes is not understood: a field is written in brackets, \[yes\], and text in quotes/, 6],
    ["[a] = 'x", /the text starting here has no closing '/, 6],
    ["[A] = 1", /\[A\] is not a field name/, 1],
    ["[a] ~ 1", /the character "~" is not understood/, 4],
    ["round(1,2,3)", /round takes 1 to 2 arguments, not 3/, 0],
    ["if(1,2)", /if takes 3 arguments, not 2/, 0],
    ["datediff([a],[b],'w')", /datediff needs a unit in quotes/, 17],
    ["datediff([a],[b],'d','mdy')", /only the date format "ymd" is supported/, 21],
    ["datediff([a],[b],'d','ymd','yes')", /true \(signed\) or false/, 27],
    ["", /the expression is empty/, 0],
    ["   ", /the expression is empty/, 0],
    ["[a] = 1 and", /ends too early/, 11],
    ["[f(a b)] = 1", /\(a b\) is not an option code in \[f\(...\)\]/, 2],
    ["[f(x!)] = 1", /is not an option code/, 2],
    ["]", /a \] without its \[/, 0],
    ["[] = 1", /\[\] names no field/, 0],
    ["2x", /a number cannot be followed by a letter/, 1],
  ];
  for (const [source, message, at] of cases)
    it(source || "(empty)", () => {
      const e = refusal(source);
      expect(e.code).toBe("EXPRESSION_INVALID");
      expect(e.message).toMatch(message);
      expect(e.at).toBe(at);
    });
});

describe("safety", () => {
  it("refuses inherited and odd names at compile time", () => {
    expect(refusal("[__proto__] = 1").message).toMatch(/\[__proto__\] is not a field name/);
    expect(refusal("[constructor] = 1").message).toMatch(/\[constructor\] is not a field name/);
    expect(refusal("[toString] = 1").message).toMatch(/\[toString\] is not a field name/);
    expect(refusal("[a.b] = 1").message).toMatch(/\[a.b\] is not a field name/);
    expect(refusal("[hasOwnProperty(x)] = 1").message).toMatch(/is not a field name/);
  });

  it("reads only the data's own properties", () => {
    const inherited = Object.create({ weight: 1000 }) as Record<string, unknown>;
    expect(run("[weight] = ''", inherited)).toBe(true);
    expect(run("[weight] * 2", inherited)).toBeNull();
    const polluted = JSON.parse('{"__proto__": {"weight": 5}, "height": 2}') as Record<string, unknown>;
    expect(run("[weight] * [height]", polluted)).toBeNull();
    expect(({} as Record<string, unknown>).weight).toBeUndefined();
  });

  it("refuses compiled logic holding anything but our operations", () => {
    const forged = (logic: unknown): CompiledExpression => ({ source: "1", logic, fields: [] });
    const attempts: unknown[] = [
      { method: ["abc", "toUpperCase"] },
      { var: "constructor" },
      { var: "a.b" },
      { var: "__proto__" },
      { "==": [1, 1] },
      { rc_add: [1, { cat: ["a", "b"] }] },
      { rc_add: 1, rc_sub: 2 },
      { constructor: [1] },
    ];
    for (const logic of attempts)
      expect(() => evaluateExpression(forged(logic), {}), JSON.stringify(logic)).toThrow(ExpressionError);
    expect(evaluateExpression(forged({ rc_add: [1, 2] }), {})).toBe(3);
  });

  it("refuses nesting beyond 64 levels and inputs over 2000 characters", () => {
    expect(run(`${"(".repeat(60)}1${")".repeat(60)}`)).toBe(1);
    const deep = refusal(`${"(".repeat(65)}1${")".repeat(65)}`);
    expect(deep.message).toMatch(/nested too deeply \(more than 64 levels\)/);
    expect(refusal(`${"-".repeat(100)}1`).message).toMatch(/nested too deeply/);
    expect(refusal(`${"not ".repeat(100)}1`).message).toMatch(/nested too deeply/);
    expect(refusal(`${"abs(".repeat(100)}1${")".repeat(100)}`).message).toMatch(/nested too deeply/);
    expect(refusal(`${"2^".repeat(100)}1`).message).toMatch(/nested too deeply/);
    const long = refusal(`${"1+".repeat(1000)}1`);
    expect(long.message).toBe("the expression is longer than 2000 characters");
    expect(long.at).toBe(2000);
    // long but flat chains are fine
    expect(run(`${"1+".repeat(999)}1`)).toBe(1000);
    expect(run(Array.from({ length: 200 }, () => "[a]=''").join(" or "))).toBe(true);
    expect(run(`${"10*".repeat(400)}1`)).toBeNull(); // 10^400 is not a finite number: no value
    expect(run(`100${"-1".repeat(250)}`)).toBe(-150);
    expect(refusal(`100${"-1".repeat(300)}`).message).toMatch(/nested too deeply \(more than 256 operations/);
  });

  it("does not use eval or Function", async () => {
    const { readFileSync } = await import("node:fs");
    const src = readFileSync(new URL("./expression.ts", import.meta.url), "utf8");
    expect(src).not.toMatch(/\beval\s*\(|new Function|Function\(/);
    expect(src).not.toMatch(/from "node:/);
  });
});

describe("compiled form", () => {
  it("is plain JSON and evaluates the same after a round trip", () => {
    const c = compileExpression("if([a] > 1 and [b(X)] = 1, round([a] / 3, 2), -[a])");
    const copy = JSON.parse(JSON.stringify(c)) as CompiledExpression;
    expect(copy).toEqual(c);
    expect(evaluateExpression(copy, { a: 2, b: ["X"] })).toBe(0.67);
    expect(evaluateExpression(copy, { a: 2, b: [] })).toBe(-2);
  });

  it("lists the fields once, in order, and every reference with its option and position", () => {
    const c = compileExpression("[b] + [a] + [b] + [c(X)]");
    expect(c.fields).toEqual(["b", "a", "c"]);
    expect(referencesOf(c)).toEqual([
      { field: "b", at: 0 },
      { field: "a", at: 6 },
      { field: "b", at: 12 },
      { field: "c", option: "X", at: 18 },
    ]);
    expect(referencesOf({ ...c })).toEqual(referencesOf(c));
  });
});

describe("the same results in a browser bundle", () => {
  it("bundled for the browser (esbuild, IIFE, as verify.html) and run without Node's globals, it agrees", async () => {
    const { build } = await import("../../bin/esbuild.mjs");
    const vm = await import("node:vm");
    const r = await build({
      entryPoints: [new URL("./expression.ts", import.meta.url).pathname],
      bundle: true,
      format: "iife",
      globalName: "expr",
      platform: "browser",
      target: "es2020",
      write: false,
    });
    const sandbox: Record<string, unknown> = {};
    vm.runInNewContext(r.outputFiles[0].text, sandbox); // a fresh realm: no process, no require, no node: modules
    const browser = sandbox.expr as typeof import("./expression.ts");
    const cases: [string, Record<string, unknown>][] = [
      ["round([weight]*10000/([height]^2),1)", { weight: 70, height: 175 }],
      ['rounddown(datediff([dob],[visit_date],"y"),0)', { dob: "2000-06-15", visit_date: "2020-06-14" }],
      ['datediff([s],[e],"M",true)', { s: "2024-03-31T23:00:00-02:00", e: "2023-01-01" }],
      ["round(-2.5) + roundup(1.21,1) + rounddown(-1.29,1) + round(1.005,2)", {}],
      ["[a] ^ 0.37 + sqrt([b]) / 3", { a: 17.3, b: 2 }],
      ["[sex] = 'F' and [age] >= 12 or [symptoms(NAUSEA)] = '1'", { sex: "M", age: "9", symptoms: ["NAUSEA"] }],
      ["mean([q1],[q2],[q3])", { q1: 1, q2: "", q3: "2.5" }],
      ["[x] + 1", {}],
    ];
    for (const [source, data] of cases) {
      const mine = evaluateExpression(compileExpression(source), data);
      const theirs = browser.evaluateExpression(browser.compileExpression(source), data);
      expect(theirs, source).toStrictEqual(mine);
    }
  });
});
