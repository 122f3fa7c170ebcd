import { describe, expect, it } from "vitest";
import { parseLoggerCsv } from "./logger-file.ts";

const ok = (text: string | Uint8Array) => {
  const r = parseLoggerCsv(text);
  if (!r.ok) throw new Error(r.error.message);
  return r;
};
const err = (text: string) => {
  const r = parseLoggerCsv(text);
  if (r.ok) throw new Error("expected an error");
  return r.error;
};

describe("temperature logger CSV", () => {
  it("reads comma-separated readings with a point, giving the extremes in tenths", () => {
    const r = ok("time,temperature (°C)\n2026-12-01T08:00Z,4.5\n2026-12-01T08:10Z,3.2\n2026-12-01T08:20Z,7.9\n");
    expect(r.readings.map((x) => x.tenths)).toEqual([45, 32, 79]);
    expect([r.minTenths, r.maxTenths]).toEqual([32, 79]);
    expect(r.readings[0]).toEqual({ line: 2, time: "2026-12-01T08:00Z", tenths: 45 });
  });

  it("reads semicolons with decimal commas, a preamble, a BOM, CRLF, empty lines and Latin-1 degrees", () => {
    const text =
      "\uFEFFLogger;TL-300\r\nSerial;4711\r\n\r\nDatum;Zeit;Temperatur °C\r\n01.12.2026;08:00;4,5\r\n" +
      "01.12.2026;08:10;-0,5\r\n\r\n";
    const r = ok(text);
    expect(r.readings).toEqual([
      { line: 5, time: "01.12.2026", tenths: 45 },
      { line: 6, time: "01.12.2026", tenths: -5 },
    ]);
    const latin1 = Uint8Array.from([..."Time\tTemp \xB0C\n1\t2.0\n"].map((c) => c.charCodeAt(0)));
    expect(ok(latin1).maxTenths).toBe(20);
    expect(ok('time,temp\n1,"4,5"\n').maxTenths).toBe(45);
  });

  it("rounds the extremes outwards so a reading just past a limit counts as outside it", () => {
    const r = ok("time;temp\n1;8,04\n2;1,96\n3;5\n");
    expect([r.minTenths, r.maxTenths]).toEqual([19, 81]);
    expect(ok("time;temp\n1;8,0\n2;2,00\n").maxTenths).toBe(80);
  });

  it("names the line of a bad reading, and refuses Fahrenheit, no header, no readings, empty", () => {
    expect(err("time;temp\n1;4,5\n2;warm\n")).toMatchObject({
      code: "BAD_TEMPERATURE",
      line: 3,
      message: 'line 3: the temperature "warm" is not a number of degrees Celsius',
    });
    expect(err("time;temp\n1;\n")).toMatchObject({ code: "BAD_TEMPERATURE", line: 2 });
    expect(err("time;temp\n;4\n")).toMatchObject({ code: "MISSING_TIME", line: 2 });
    expect(err("time;temp\n1;400\n")).toMatchObject({ code: "BAD_TEMPERATURE", line: 2 });
    expect(err("Time,Temperature (°F)\n1,40\n")).toMatchObject({ code: "FAHRENHEIT", line: 1 });
    expect(err("a,b\n1,2\n")).toMatchObject({ code: "NO_HEADER", line: null });
    expect(err("time,temp\n")).toMatchObject({ code: "NO_READINGS" });
    expect(err("  \n")).toMatchObject({ code: "EMPTY" });
  });
});
