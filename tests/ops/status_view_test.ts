/**
 * The status table of `mpclient status` / `mpserver status`: what it shows for a known traffic
 * pattern, that its columns line up, and what it leaves out (zero drops, unmeasured values).
 */
import { clientSeams } from "../session/engine_seams.ts";
import assert from "node:assert/strict";
import { ClientCore } from "../../lib/session/client_core.ts";
import { silentLogger } from "../../lib/base/log.ts";
import { clientStatus, type ServerStatus, serverStatus } from "../../lib/ops/status.ts";
import { formatBytes, formatStatus, formatUptime } from "../../lib/ops/status_view.ts";
import { DATAGRAM_COUNT, runKnownTraffic, SEED } from "./status_fixtures.ts";

/** The table's lines, from its header row (starting with `firstHeader`) on. */
function tableLines(text: string, firstHeader: string): string[] {
  const lines = text.split("\n");
  const start = lines.findIndex((line) => line.startsWith(firstHeader));
  assert.ok(start >= 0, `no table headed ${firstHeader} in:\n${text}`);
  return lines.slice(start).filter((line) => line !== "");
}

/** The text of each row under a header, cut at that header's column. */
function column(lines: readonly string[], header: string): string[] {
  const at = lines[0].indexOf(header);
  assert.ok(at >= 0, `no column ${header}`);
  return lines.slice(1).map((line) => line.slice(at).split(/\s{2,}/)[0]);
}

Deno.test(`the client table shows each path's state, RTT, loss and traffic (seed ${SEED})`, () => {
  const fixture = runKnownTraffic();
  const status = clientStatus(fixture.client, fixture.nowMs);
  const text = formatStatus(status);

  assert.ok(text.endsWith("\n"));
  assert.ok(!text.includes("\x1b"), "no escape codes");
  assert.match(text, /^mpclient \S+ {3}up \d+s {3}mode redundant {3}encrypted$/m);
  assert.match(text, new RegExp(`session ${status.session.id} established \\(1 handshake\\)`));
  assert.match(text, new RegExp(`from app ${DATAGRAM_COUNT} \\(200 kB\\)`));
  assert.match(text, new RegExp(`to app ${DATAGRAM_COUNT} \\(200 kB\\)`));
  assert.match(text, /^drops {5}none$/m);

  const lines = tableLines(text, "PATH");
  assert.deepEqual(column(lines, "PATH").slice(0, 2), ["path0", "path1"]);
  assert.deepEqual(column(lines, "STATE").slice(0, 2), ["up", "up"]);
  assert.deepEqual(column(lines, "REMOTE").slice(0, 2), ["127.0.0.1:2000", "127.0.0.1:2000"]);
  // Numbers are right-aligned: each row's RTT ends where the header does.
  const rttEnd = lines[0].indexOf("RTT") + "RTT".length;
  for (const line of lines.slice(1, 3)) assert.match(line.slice(0, rttEnd), / ms$/);
  const lossOut = lines.slice(1, 3).map((line) =>
    line.slice(0, lines[0].indexOf("LOSS OUT") + "LOSS OUT".length).trim().split(/\s+/).at(-1)
  );
  assert.equal(lossOut[0], "0.0%");
  assert.match(lossOut[1]!, /^(1[5-9]|2[0-5])\.\d%$/);
  assert.ok(
    lines.slice(1, 3).every((line) => line.includes(`${status.paths[0].sent.datagrams} (`)),
  );
});

Deno.test("the client table marks backups and shows dashes for what is not measured", () => {
  const core = new ClientCore({
    ...clientSeams,
    pathLabels: ["main", "spare"],
    backupPaths: [false, true],
    logger: silentLogger,
  });
  core.counters.drops.oversize = 3;
  core.recordSendError(0, "unreachable", 0);
  const text = formatStatus(clientStatus({
    core,
    startedAtMs: 0,
    listenAddress: { hostname: "127.0.0.1", port: 4000 },
    flowCount: 0,
    pathAddresses: () =>
      core.paths.map(() => ({
        local: { hostname: "0.0.0.0", port: 1 },
        remote: { hostname: "192.0.2.1", port: 4001 },
      })),
  }, 3_723_000));
  assert.match(text, /up 1h02m/);
  assert.match(text, /NOT encrypted/);
  assert.match(text, /session [0-9a-f]{8} connecting \(0 handshakes\)/);
  assert.match(text, /^drops {5}oversize=3$/m, "only the non-zero drops");
  const lines = tableLines(text, "PATH");
  assert.deepEqual(column(lines, "PATH").slice(0, 2), ["main", "spare (backup)"]);
  assert.deepEqual(column(lines, "STATE").slice(0, 2), ["probing", "probing"]);
  assert.deepEqual(column(lines, "ERRORS").slice(0, 2), ["unreachable=1", "0"]);
  assert.deepEqual(column(lines, "HEARD").slice(0, 2), ["never", "never"]);
  assert.match(lines[1], /main .* - +- +- +- /);
});

Deno.test(`the server table lists each session with its paths (seed ${SEED})`, () => {
  const fixture = runKnownTraffic();
  const status = serverStatus(fixture.server, fixture.nowMs, { encrypted: true });
  const text = formatStatus(status);
  assert.match(text, /^mpserver \S+ {3}up \d+s {3}encrypted$/m);
  assert.match(text, /target 127\.0\.0\.1:1194 {3}sessions 1 \(opened 1, closed 0\)/);
  assert.match(text, new RegExp(`to target ${DATAGRAM_COUNT} {3}from target ${DATAGRAM_COUNT}`));
  assert.match(text, /^errors {4}none$/m);
  const lines = tableLines(text, "SESSION");
  assert.equal(lines.length, 3, "a session row and one continuation row for its second path");
  assert.deepEqual(column(lines, "SESSION"), [status.sessions[0].id, ""]);
  assert.deepEqual(column(lines, "STATE"), ["confirmed", ""]);
  assert.deepEqual(column(lines, "PATH"), ["path0:40000", "path1:40001"]);
  assert.deepEqual(
    column(lines, "PATH").map((_, row) => lines[row + 1].trim().split(/\s+/).at(-1)),
    status.sessions[0].paths.map((path) => String(path.received)),
  );
});

Deno.test("the server table says when the session list was cut, or that there is none", () => {
  const fixture = runKnownTraffic();
  const status = serverStatus(fixture.server, fixture.nowMs, { encrypted: true });
  const cut: ServerStatus = { ...status, sessionCount: 1500, sessionsTruncated: true };
  assert.match(
    formatStatus(cut),
    /… and 1499 more sessions \(showing the 1 most recently active\)\n$/,
  );
  const empty: ServerStatus = { ...status, sessionCount: 0, sessions: [] };
  assert.match(formatStatus(empty), /\nno sessions\n$/);
});

Deno.test("sizes and durations read as a person would write them", () => {
  assert.equal(formatBytes(999), "999 B");
  assert.equal(formatBytes(1500), "1.50 kB");
  assert.equal(formatBytes(20_300_000), "20.3 MB");
  assert.equal(formatBytes(4_100_000_000), "4.10 GB");
  assert.equal(formatUptime(45.9), "45s");
  assert.equal(formatUptime(185), "3m05s");
  assert.equal(formatUptime(7260), "2h01m");
  assert.equal(formatUptime(3 * 86_400 + 4 * 3600), "3d04h");
});
