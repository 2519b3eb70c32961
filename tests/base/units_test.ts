import assert from "node:assert/strict";
import {
  formatDuration,
  formatRate,
  parseDuration,
  parsePercent,
  parseRate,
} from "../../lib/base/units.ts";

Deno.test("parses durations with units into milliseconds", () => {
  const cases: [string, number][] = [
    ["500ms", 500],
    ["2s", 2000],
    ["1.5s", 1500],
    [".5s", 500],
    ["0ms", 0],
    ["3m", 180_000],
    ["1h", 3_600_000],
  ];
  for (const [text, ms] of cases) {
    assert.deepEqual(parseDuration(text), { ok: true, value: ms }, text);
  }
});

Deno.test("parses compound durations from the largest unit down", () => {
  assert.deepEqual(parseDuration("1m30s"), { ok: true, value: 90_000 });
  assert.deepEqual(parseDuration("2s250ms"), { ok: true, value: 2250 });
  assert.deepEqual(parseDuration("1h1m1s1ms"), { ok: true, value: 3_661_001 });
});

Deno.test("refuses a bare number as a duration, suggesting units", () => {
  assert.deepEqual(parseDuration("500"), {
    ok: false,
    error: `"500" needs a unit: write "500ms" or "500s"`,
  });
});

Deno.test("refuses malformed durations and unknown units", () => {
  for (
    const text of ["", "5 s", "5sec", "ms", "-1s", "1s+", "s5", "1e3ms", "5S", "30s1m", "1s1s"]
  ) {
    assert.deepEqual(
      parseDuration(text),
      { ok: false, error: `expected a duration such as 500ms, 2s, 1m30s or 1h, got "${text}"` },
      text,
    );
  }
});

Deno.test("formats durations in the largest whole unit", () => {
  assert.equal(formatDuration(500), "500ms");
  assert.equal(formatDuration(2000), "2s");
  assert.equal(formatDuration(1500), "1500ms");
  assert.equal(formatDuration(60_000), "1m");
  assert.equal(formatDuration(7_200_000), "2h");
  assert.equal(formatDuration(0), "0ms");
});

Deno.test("formatted durations parse back to the same value", () => {
  for (const ms of [0, 1, 999, 1000, 1500, 90_000, 3_600_000, 0.5]) {
    assert.deepEqual(parseDuration(formatDuration(ms)), { ok: true, value: ms }, String(ms));
  }
});

Deno.test("parses rates in tc's spellings into bits per second", () => {
  const cases: [string, number][] = [
    ["100bit", 100],
    ["500kbit", 500_000],
    ["20mbit", 20_000_000],
    ["20Mbit", 20_000_000],
    ["1.5gbit", 1.5e9],
    ["1tbit", 1e12],
    ["1kibit", 1024],
    ["2mibit", 2 * 1024 * 1024],
  ];
  for (const [text, bits] of cases) {
    assert.deepEqual(parseRate(text), { ok: true, value: bits }, text);
  }
});

Deno.test("refuses a bare number as a rate, suggesting units", () => {
  assert.deepEqual(parseRate("20"), {
    ok: false,
    error: `"20" needs a unit: write "20mbit" or "20kbit"`,
  });
});

Deno.test("refuses byte rate spellings as ambiguous, giving both readings", () => {
  assert.deepEqual(parseRate("10mbps"), {
    ok: false,
    error: `"10mbps" is ambiguous (tc reads mbps as bytes per second, most people as bits): ` +
      `write "10mbit" or "80mbit"`,
  });
  assert.equal(parseRate("1KBps").ok, false);
});

Deno.test("refuses unknown rate units and malformed rates", () => {
  for (const text of ["20MB", "fast", "", "-5mbit", "5 mbit", "mbit"]) {
    assert.deepEqual(
      parseRate(text),
      { ok: false, error: `expected a rate such as 500kbit, 20mbit or 1gbit, got "${text}"` },
      text,
    );
  }
});

Deno.test("refuses a rate of zero", () => {
  assert.deepEqual(parseRate("0mbit"), {
    ok: false,
    error: `a rate must be above zero, got "0mbit"`,
  });
});

Deno.test("formats rates in the largest decimal unit", () => {
  assert.equal(formatRate(20e6), "20mbit");
  assert.equal(formatRate(1.5e6), "1.5mbit");
  assert.equal(formatRate(800), "800bit");
  assert.equal(formatRate(1024), "1.024kbit");
});

Deno.test("formatted rates parse back to the same text", () => {
  for (const text of ["20mbit", "512kbit", "1.5gbit", "100bit", "3tbit"]) {
    const parsed = parseRate(text);
    assert.ok(parsed.ok && formatRate(parsed.value) === text, text);
  }
});

Deno.test("parses percentages as plain numbers from 0 to 100", () => {
  assert.deepEqual(parsePercent("0.1"), { ok: true, value: 0.1 });
  assert.deepEqual(parsePercent("0"), { ok: true, value: 0 });
  assert.deepEqual(parsePercent("100"), { ok: true, value: 100 });
});

Deno.test("refuses a percent sign, with the plain spelling", () => {
  assert.deepEqual(parsePercent("5%"), { ok: false, error: `write percentages without "%": 5` });
});

Deno.test("refuses percentages above 100 or not numbers", () => {
  assert.deepEqual(parsePercent("101"), {
    ok: false,
    error: `a percentage must be from 0 to 100, got "101"`,
  });
  for (const text of ["-1", "x", "", "1e2"]) {
    assert.deepEqual(
      parsePercent(text),
      { ok: false, error: `expected a percentage such as 0.1 or 5, got "${text}"` },
      text,
    );
  }
});
