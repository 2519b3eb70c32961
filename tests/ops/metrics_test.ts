/**
 * The Prometheus exposition: parsed back with a small parser of the text format (0.0.4), it is
 * well-formed (HELP and TYPE before samples, valid names, counters ending in `_total`, escaped label
 * values) and its values are the status snapshot's for a known traffic pattern.
 */
import { clientSeams } from "../session/engine_seams.ts";
import assert from "node:assert/strict";
import { ClientCore } from "../../lib/session/client_core.ts";
import { silentLogger } from "../../lib/base/log.ts";
import { escapeLabelValue, formatMetrics } from "../../lib/ops/metrics.ts";
import { type ClientStatus, clientStatus, serverStatus } from "../../lib/ops/status.ts";
import { DROP_REASONS } from "../../lib/base/counters.ts";
import { DATAGRAM_BYTES, DATAGRAM_COUNT, runKnownTraffic, SEED } from "./status_fixtures.ts";

// ---------------------------------------------------------------------------------------------------
// A parser of the text exposition format, strict where the format is

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

interface Sample {
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

interface Family {
  readonly name: string;
  help?: string;
  type?: string;
  readonly samples: Sample[];
}

/** Parses an exposition; throws, naming the line, on anything the format does not allow. */
function parseExposition(text: string): Map<string, Family> {
  assert.ok(text.endsWith("\n"), "the exposition ends with a line feed");
  const families = new Map<string, Family>();
  const seriesSeen = new Set<string>();
  const family = (name: string) => {
    let found = families.get(name);
    if (!found) families.set(name, found = { name, samples: [] });
    return found;
  };
  text.slice(0, -1).split("\n").forEach((line, index) => {
    const where = `line ${index + 1}: ${line}`;
    if (line.startsWith("#")) {
      const match = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
      if (!match) return; // a plain comment
      const [, keyword, name, rest] = match;
      assert.match(name, METRIC_NAME, where);
      const target = family(name);
      assert.equal(target.samples.length, 0, `${where}: ${keyword} after samples`);
      if (keyword === "HELP") {
        assert.equal(target.help, undefined, `${where}: a second HELP`);
        target.help = rest.replaceAll("\\n", "\n").replaceAll("\\\\", "\\");
      } else {
        assert.equal(target.type, undefined, `${where}: a second TYPE`);
        assert.ok(
          ["counter", "gauge", "histogram", "summary", "untyped"].includes(rest),
          `${where}: unknown type`,
        );
        target.type = rest;
      }
      return;
    }
    assert.notEqual(line.trim(), "", `${where}: blank line`);
    const sample = parseSample(line, where);
    const target = families.get(sample.name);
    assert.ok(target?.help !== undefined, `${where}: no HELP before the sample`);
    assert.ok(target?.type !== undefined, `${where}: no TYPE before the sample`);
    const series = `${sample.name}${JSON.stringify(Object.entries(sample.labels).sort())}`;
    assert.ok(!seriesSeen.has(series), `${where}: the same series twice`);
    seriesSeen.add(series);
    target.samples.push({ labels: sample.labels, value: sample.value });
  });
  for (const { name, type } of families.values()) {
    if (type === "counter") assert.ok(name.endsWith("_total"), `counter ${name} ends in _total`);
    else assert.ok(!name.endsWith("_total"), `${type} ${name} does not end in _total`);
  }
  return families;
}

/** `name{label="value",…} value` with the format's escapes in label values. */
function parseSample(line: string, where: string) {
  const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
  assert.ok(nameMatch, `${where}: no metric name`);
  const name = nameMatch[0];
  let position = name.length;
  const labels: Record<string, string> = {};
  if (line[position] === "{") {
    position++;
    while (line[position] !== "}") {
      const labelMatch = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(line.slice(position));
      assert.ok(labelMatch, `${where}: bad label at ${position}`);
      assert.match(labelMatch[1], LABEL_NAME);
      assert.ok(!(labelMatch[1] in labels), `${where}: label ${labelMatch[1]} twice`);
      position += labelMatch[0].length;
      let value = "";
      for (;;) {
        const char = line[position++];
        assert.ok(char !== undefined, `${where}: unterminated label value`);
        if (char === '"') break;
        if (char === "\\") {
          const escaped = line[position++];
          assert.ok(escaped === "\\" || escaped === '"' || escaped === "n", `${where}: bad escape`);
          value += escaped === "n" ? "\n" : escaped;
        } else {
          value += char;
        }
      }
      labels[labelMatch[1]] = value;
      if (line[position] === ",") position++;
      else assert.equal(line[position], "}", `${where}: expected , or }`);
    }
    position++;
  }
  const rest = line.slice(position);
  const valueMatch = /^ (\S+)(?: (-?\d+))?$/.exec(rest);
  assert.ok(valueMatch, `${where}: expected " VALUE [TIMESTAMP]"`);
  const text = valueMatch[1];
  const value = text === "+Inf" ? Infinity : text === "-Inf" ? -Infinity : Number(text);
  assert.ok(text === "NaN" || !Number.isNaN(value), `${where}: value ${text}`);
  return { name, labels, value };
}

/** The value of the one sample of `name` with exactly these labels. */
function valueOf(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const family = families.get(name);
  assert.ok(family, `no family ${name}`);
  const wanted = JSON.stringify(Object.entries(labels).sort());
  return family.samples.find((sample) =>
    JSON.stringify(Object.entries(sample.labels).sort()) === wanted
  )?.value;
}

/** A value in seconds equals a status value in milliseconds (to the nanosecond). */
function assertSeconds(seconds: number | undefined, ms: number): void {
  assert.ok(
    seconds !== undefined && Math.abs(seconds - ms / 1000) < 1e-9,
    `${seconds} s vs ${ms} ms`,
  );
}

// ---------------------------------------------------------------------------------------------------

Deno.test(`client metrics are well-formed and equal the status (seed ${SEED})`, () => {
  const fixture = runKnownTraffic();
  const status = clientStatus(fixture.client, fixture.nowMs);
  const families = parseExposition(formatMetrics(status));

  assert.deepEqual(families.get("mptunnel_info")?.samples, [{
    labels: { program: "mpclient", version: status.version, mode: "redundant", encrypted: "true" },
    value: 1,
  }]);
  assert.equal(valueOf(families, "mptunnel_uptime_seconds"), status.uptimeSeconds);
  assert.equal(valueOf(families, "mptunnel_session_established"), 1);
  assert.equal(valueOf(families, "mptunnel_handshakes_total"), 1);
  const app = (name: string, direction: string) => valueOf(families, name, { direction });
  assert.equal(app("mptunnel_app_datagrams_total", "from_app"), DATAGRAM_COUNT);
  assert.equal(app("mptunnel_app_datagrams_total", "to_app"), DATAGRAM_COUNT);
  assert.equal(app("mptunnel_app_bytes_total", "from_app"), DATAGRAM_COUNT * DATAGRAM_BYTES);
  assert.equal(app("mptunnel_app_bytes_total", "to_app"), DATAGRAM_COUNT * DATAGRAM_BYTES);
  assert.equal(valueOf(families, "mptunnel_duplicates_total"), status.traffic.duplicates);
  assert.deepEqual(
    families.get("mptunnel_drops_total")?.samples.map((sample) => sample.labels.reason),
    DROP_REASONS,
  );
  for (const reason of DROP_REASONS) {
    assert.equal(valueOf(families, "mptunnel_drops_total", { reason }), 0);
  }
  assert.equal(valueOf(families, "mptunnel_flows"), 1);

  for (const path of status.paths) {
    const labels = { path: path.name };
    const per = (name: string, extra: Record<string, string> = {}) =>
      valueOf(families, name, { ...labels, ...extra });
    assert.equal(per("mptunnel_path_up"), 1);
    assert.equal(per("mptunnel_path_state", { state: "up" }), 1);
    assert.equal(per("mptunnel_path_state", { state: "down" }), 0);
    assert.equal(per("mptunnel_path_backup"), 0);
    assertSeconds(per("mptunnel_path_rtt_seconds"), path.rttMs!);
    assertSeconds(per("mptunnel_path_rtt_variance_seconds"), path.rttVarianceMs!);
    assertSeconds(per("mptunnel_path_jitter_seconds"), path.jitterMs!);
    assert.equal(per("mptunnel_path_loss_ratio", { direction: "to_server" }), path.lossToServer);
    assert.equal(
      per("mptunnel_path_loss_ratio", { direction: "from_server" }),
      path.lossFromServer,
    );
    assert.equal(per("mptunnel_path_loss_ratio", { direction: "round_trip" }), path.roundTripLoss);
    assert.equal(per("mptunnel_path_datagrams_total", { direction: "sent" }), path.sent.datagrams);
    assert.ok(path.sent.datagrams > DATAGRAM_COUNT);
    assert.equal(
      per("mptunnel_path_datagrams_total", { direction: "received" }),
      path.received.datagrams,
    );
    assert.equal(per("mptunnel_path_bytes_total", { direction: "sent" }), path.sent.bytes);
    assert.equal(per("mptunnel_path_bytes_total", { direction: "received" }), path.received.bytes);
    assert.equal(per("mptunnel_path_send_errors_total", { kind: "refused" }), 0);
    assert.equal(per("mptunnel_path_probes_sent_total"), path.probesSent);
    assert.equal(per("mptunnel_path_probe_replies_total"), path.probeReplies);
    assertSeconds(per("mptunnel_path_last_heard_age_seconds"), path.lastHeardAgoMs!);
  }
  const lossyToServer = valueOf(families, "mptunnel_path_loss_ratio", {
    path: "path1",
    direction: "to_server",
  })!;
  assert.ok(lossyToServer > 0.14 && lossyToServer < 0.26, `${lossyToServer}`);
});

Deno.test(`server metrics are well-formed and equal the status (seed ${SEED})`, () => {
  const fixture = runKnownTraffic();
  const status = serverStatus(fixture.server, fixture.nowMs, { encrypted: false });
  const families = parseExposition(formatMetrics(status));

  assert.deepEqual(families.get("mptunnel_info")?.samples, [{
    labels: { program: "mpserver", version: status.version, encrypted: "false" },
    value: 1,
  }]);
  assert.equal(valueOf(families, "mptunnel_sessions"), 1);
  assert.equal(valueOf(families, "mptunnel_sessions_opened_total"), 1);
  assert.equal(valueOf(families, "mptunnel_sessions_closed_total"), 0);
  assert.equal(valueOf(families, "mptunnel_target_sockets"), 1);
  const by = (name: string, direction: string) => valueOf(families, name, { direction });
  assert.equal(by("mptunnel_target_datagrams_total", "to_target"), DATAGRAM_COUNT);
  assert.equal(by("mptunnel_target_datagrams_total", "from_target"), DATAGRAM_COUNT);
  assert.equal(
    by("mptunnel_server_datagrams_total", "received"),
    status.traffic.received.datagrams,
  );
  assert.equal(by("mptunnel_server_datagrams_total", "sent"), status.traffic.sent.datagrams);
  assert.equal(by("mptunnel_server_bytes_total", "received"), status.traffic.received.bytes);
  assert.equal(by("mptunnel_server_bytes_total", "sent"), status.traffic.sent.bytes);
  assert.equal(valueOf(families, "mptunnel_duplicates_total"), status.traffic.duplicates);
  assert.equal(families.get("mptunnel_drops_total")?.samples.length, DROP_REASONS.length);
  assert.equal(valueOf(families, "mptunnel_target_send_errors_total"), 0);
  // Per-session series would not scale to thousands of sessions.
  for (const family of families.values()) {
    for (const sample of family.samples) assert.ok(!("session" in sample.labels), family.name);
  }
});

Deno.test("values not measured yet are absent samples, their HELP and TYPE still present", () => {
  const core = new ClientCore({ ...clientSeams, pathLabels: ["a"], logger: silentLogger });
  const status = clientStatus({
    core,
    startedAtMs: 0,
    listenAddress: { hostname: "127.0.0.1", port: 4000 },
    flowCount: 0,
    pathAddresses: () => [{
      local: { hostname: "0.0.0.0", port: 1 },
      remote: { hostname: "127.0.0.1", port: 2 },
    }],
  }, 0);
  const families = parseExposition(formatMetrics(status));
  for (
    const name of [
      "mptunnel_path_rtt_seconds",
      "mptunnel_path_jitter_seconds",
      "mptunnel_path_loss_ratio",
      "mptunnel_path_last_heard_age_seconds",
    ]
  ) {
    assert.equal(families.get(name)?.type, "gauge", name);
    assert.deepEqual(families.get(name)?.samples, [], name);
  }
  assert.equal(valueOf(families, "mptunnel_path_state", { path: "a", state: "probing" }), 1);
  assert.equal(valueOf(families, "mptunnel_session_established"), 0);
});

Deno.test("label values are escaped as the format requires and parse back unchanged", () => {
  assert.equal(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
  const core = new ClientCore({ ...clientSeams, pathLabels: ["plain"], logger: silentLogger });
  const base = clientStatus({
    core,
    startedAtMs: 0,
    listenAddress: { hostname: "127.0.0.1", port: 4000 },
    flowCount: 0,
    pathAddresses: () => [{
      local: { hostname: "0.0.0.0", port: 1 },
      remote: { hostname: "127.0.0.1", port: 2 },
    }],
  }, 0);
  const awkward = 'say "hi"\\there\nnext ∆';
  const status: ClientStatus = { ...base, paths: [{ ...base.paths[0], name: awkward }] };
  const families = parseExposition(formatMetrics(status));
  assert.deepEqual(families.get("mptunnel_path_up")?.samples, [{
    labels: { path: awkward },
    value: 0,
  }]);
});
