import assert from "node:assert/strict";
import { parseArgs } from "node:util";
import { UsageError } from "../../lib/base/usage_error.ts";
import {
  type AllowRule,
  allowRuleMatches,
  applyClientFlags,
  applyServerFlags,
  CLIENT_FLAG_OPTIONS,
  CLIENT_KEYWORD_HELP,
  CLIENT_VALUE_KEYWORDS,
  type ClientConfig,
  ConfigError,
  EMPTY_CLIENT_CONFIG,
  EMPTY_SERVER_CONFIG,
  type FlagValues,
  loadClientConfigFile,
  loadServerConfigFile,
  parseClientConfig,
  parsePathWords,
  parseServerConfig,
  SERVER_FLAG_OPTIONS,
  SERVER_VALUE_KEYWORDS,
  type ServerConfig,
} from "../../lib/ops/config.ts";

const CLIENT_FILE = "mpclient.conf";
const SERVER_FILE = "mpserver.conf";

function client(text: string): ClientConfig {
  return parseClientConfig(text, CLIENT_FILE);
}

function server(text: string): ServerConfig {
  return parseServerConfig(text, SERVER_FILE);
}

/** The message of the ConfigError `action` throws. */
function errorOf(action: () => unknown): string {
  try {
    action();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
    return error.message;
  }
  assert.fail("expected a ConfigError, but nothing was thrown");
}

function clientError(text: string): string {
  return errorOf(() => client(text));
}

function serverError(text: string): string {
  return errorOf(() => server(text));
}

/** A path as the file writes it with no options, for comparisons. */
function plainPath(host: string, port: number, line: number) {
  return { host, port, weight: 1, backup: false, line };
}

// --- The client file: path lines --------------------------------------------------------------

Deno.test("client: reads the classic file of host and port lines", () => {
  const config = client("127.0.0.1 4001\n127.0.0.1 4002\n");
  assert.deepEqual(config.paths, [
    plainPath("127.0.0.1", 4001, 1),
    plainPath("127.0.0.1", 4002, 2),
  ]);
});

Deno.test("client: ignores comments, blank lines and surrounding blanks", () => {
  const text = "# my paths\n\n   \n\t127.0.0.1   4001   # via the bridge\n#127.0.0.1 4002\n";
  assert.deepEqual(client(text).paths, [plainPath("127.0.0.1", 4001, 4)]);
});

Deno.test("client: a comment may touch the last word", () => {
  assert.deepEqual(client("127.0.0.1 4001#bridge").paths, [plainPath("127.0.0.1", 4001, 1)]);
});

Deno.test("client: accepts CRLF line endings", () => {
  assert.deepEqual(client("127.0.0.1 4001\r\nmode fec\r\n").paths, [
    plainPath("127.0.0.1", 4001, 1),
  ]);
});

Deno.test("client: tolerates a byte order mark at the start", () => {
  assert.deepEqual(client("\uFEFF127.0.0.1 4001\n").paths, [plainPath("127.0.0.1", 4001, 1)]);
});

Deno.test("client: an empty file gives an empty configuration", () => {
  assert.deepEqual(client(""), EMPTY_CLIENT_CONFIG);
  assert.deepEqual(client("# nothing here\n\n"), EMPTY_CLIENT_CONFIG);
});

Deno.test("client: reads host names on path lines", () => {
  const config = client("bridge.example.net 4001\nlocalhost 4002\n");
  assert.deepEqual(config.paths, [
    plainPath("bridge.example.net", 4001, 1),
    plainPath("localhost", 4002, 2),
  ]);
});

Deno.test("client: reads IPv6 hosts with and without brackets", () => {
  const config = client("::1 4001\n[::1] 4002\n[2001:db8::7] 2000\n");
  assert.deepEqual(config.paths, [
    plainPath("::1", 4001, 1),
    plainPath("::1", 4002, 2),
    plainPath("2001:db8::7", 2000, 3),
  ]);
});

Deno.test("client: a host written with a trailing dot may be named like a keyword", () => {
  assert.deepEqual(client("mode. 4001").paths, [plainPath("mode.", 4001, 1)]);
});

Deno.test("client: reads every path option", () => {
  const [path] =
    client("10.0.0.2 4001 name lte weight 3 backup from 192.168.1.5 rate 20mbit").paths;
  assert.deepEqual(path, {
    host: "10.0.0.2",
    port: 4001,
    name: "lte",
    weight: 3,
    backup: true,
    fromAddress: "192.168.1.5",
    rateBitsPerSecond: 20_000_000,
    line: 1,
  });
});

Deno.test("client: reads dev on a path", () => {
  assert.equal(client("10.0.0.2 4001 dev wlan0").paths[0].device, "wlan0");
});

Deno.test("client: reads an IPv6 from address with or without brackets", () => {
  const config = client("::1 4001 from 2001:db8::5\n::1 4002 from [fe80::1%eth0]\n");
  assert.equal(config.paths[0].fromAddress, "2001:db8::5");
  assert.equal(config.paths[1].fromAddress, "fe80::1%eth0");
});

Deno.test("client: accepts weights 1 and 1000", () => {
  const config = client("::1 4001 weight 1\n::1 4002 weight 1000\n");
  assert.deepEqual(config.paths.map((path) => path.weight), [1, 1000]);
});

// --- The client file: path line errors --------------------------------------------------------

Deno.test("client error: a path without a port", () => {
  assert.equal(
    clientError("127.0.0.1"),
    `mpclient.conf:1: expected a port number after the host "127.0.0.1"`,
  );
});

Deno.test("client error: a path whose port is not a number", () => {
  assert.equal(
    clientError("# paths\n\n127.0.0.1 abc"),
    `mpclient.conf:3: expected a port number after the host, got "abc"`,
  );
});

Deno.test("client error: a path whose port is out of range", () => {
  assert.equal(
    clientError("127.0.0.1 70000"),
    "mpclient.conf:1: port 70000 is out of range (1-65535)",
  );
  assert.equal(clientError("127.0.0.1 0"), "mpclient.conf:1: port 0 is out of range (1-65535)");
});

Deno.test("client error: a path whose host is malformed", () => {
  assert.equal(
    clientError("10.0.0.300 4001"),
    `mpclient.conf:1: expected a host name or IP address, got "10.0.0.300"`,
  );
});

Deno.test("client error: an unknown path option", () => {
  assert.equal(
    clientError("::1 4001 colour red"),
    `mpclient.conf:1: unknown path option "colour"; expected name, weight, backup, from, dev or rate`,
  );
});

Deno.test("client error: a path option given twice", () => {
  assert.equal(
    clientError("::1 4001 backup backup"),
    "mpclient.conf:1: backup is given twice on this path",
  );
  assert.equal(
    clientError("::1 4001 weight 2 weight 3"),
    "mpclient.conf:1: weight is given twice on this path",
  );
});

Deno.test("client error: a path option without its value", () => {
  assert.equal(
    clientError("::1 4001 name"),
    `mpclient.conf:1: name needs a value; expected "name NAME"`,
  );
  assert.equal(
    clientError("::1 4001 backup rate"),
    `mpclient.conf:1: rate needs a value; expected "rate RATE"`,
  );
});

Deno.test("client error: a path name that is not a name", () => {
  assert.equal(
    clientError("::1 4001 name 4g"),
    `mpclient.conf:1: expected a path name (a letter, then letters, digits, "_", "." or "-"), got "4g"`,
  );
});

Deno.test("client error: two paths with the same name", () => {
  assert.equal(
    clientError("::1 4001 name a\n::1 4002 name a\n"),
    `mpclient.conf:2: path name "a" is already used on line 1`,
  );
});

Deno.test("client error: a weight out of range or not an integer", () => {
  for (const weight of ["0", "1001", "1.5", "-1", "x"]) {
    assert.equal(
      clientError(`::1 4001 weight ${weight}`),
      `mpclient.conf:1: expected a weight from 1 to 1000, got "${weight}"`,
      weight,
    );
  }
});

Deno.test("client error: from with a host name instead of an address", () => {
  assert.equal(
    clientError("::1 4001 from myhost"),
    `mpclient.conf:1: expected a local IP address after from, got "myhost"`,
  );
});

Deno.test("client error: from and dev on one path", () => {
  assert.equal(
    clientError("::1 4001 from 10.0.0.5 dev eth0"),
    "mpclient.conf:1: a path takes from or dev, not both",
  );
});

Deno.test("client error: a path rate without a unit", () => {
  assert.equal(
    clientError("::1 4001 rate 20"),
    `mpclient.conf:1: "20" needs a unit: write "20mbit" or "20kbit"`,
  );
});

// --- The client file: keywords ----------------------------------------------------------------

Deno.test("client: reads uplinks auto", () => {
  assert.deepEqual(client("uplinks auto server.example.net 2000").uplinksAuto, {
    hostname: "server.example.net",
    port: 2000,
  });
  assert.deepEqual(client("uplinks auto [2001:db8::1] 2000").uplinksAuto, {
    hostname: "2001:db8::1",
    port: 2000,
  });
});

Deno.test("client: reads repeated exclude lines in order", () => {
  assert.deepEqual(client("exclude docker0\nexclude wlan0\n").excludeInterfaces, [
    "docker0",
    "wlan0",
  ]);
});

Deno.test("client: listen with a bare port is on 127.0.0.1", () => {
  assert.deepEqual(client("listen 8000").listen, { hostname: "127.0.0.1", port: 8000 });
});

Deno.test("client: listen with a host", () => {
  assert.deepEqual(client("listen 0.0.0.0:8000").listen, { hostname: "0.0.0.0", port: 8000 });
  assert.deepEqual(client("listen [::1]:8000").listen, { hostname: "::1", port: 8000 });
});

Deno.test("client: listen on port 0 means any free port", () => {
  assert.deepEqual(client("listen 0").listen, { hostname: "127.0.0.1", port: 0 });
});

Deno.test("client: reads forwards to named targets and to addresses", () => {
  const config = client("forward 5353 dns\nforward 0.0.0.0:8443 [2001:db8::9]:443\n");
  assert.deepEqual(config.forwards, [
    {
      listen: { hostname: "127.0.0.1", port: 5353 },
      target: { kind: "named", name: "dns" },
      line: 1,
    },
    {
      listen: { hostname: "0.0.0.0", port: 8443 },
      target: { kind: "address", address: { hostname: "2001:db8::9", port: 443 } },
      line: 2,
    },
  ]);
});

Deno.test("client: reads socks5 and control", () => {
  const config = client("socks5 127.0.0.1:1080\ncontrol 9090\n");
  assert.deepEqual(config.socks5, { hostname: "127.0.0.1", port: 1080 });
  assert.deepEqual(config.control, { hostname: "127.0.0.1", port: 9090 });
});

Deno.test("client: reads each scheduling mode", () => {
  for (const mode of ["redundant", "adaptive", "balance", "fec"] as const) {
    assert.equal(client(`mode ${mode}`).mode, mode);
  }
});

Deno.test("client: reads target-loss as a plain percentage", () => {
  assert.equal(client("target-loss 0.1").targetLossPercent, 0.1);
  assert.equal(client("target-loss 99.9").targetLossPercent, 99.9);
});

Deno.test("client: reads fec K:M and auto", () => {
  assert.deepEqual(client("fec 8:2").fec, { dataShards: 8, parityShards: 2 });
  assert.deepEqual(client("fec 64:64").fec, { dataShards: 64, parityShards: 64 });
  assert.equal(client("fec auto").fec, "auto");
});

Deno.test("client: reads secret-file, log-level and log-format", () => {
  const config = client("secret-file /etc/mptunnel/secret\nlog-level debug\nlog-format json\n");
  assert.equal(config.secretFile, "/etc/mptunnel/secret");
  assert.equal(config.logLevel, "debug");
  assert.equal(config.logFormat, "json");
});

Deno.test("client: reads a full file mixing paths and keywords", () => {
  const text = [
    "# mptunnel client",
    "listen 8000",
    "mode adaptive",
    "target-loss 1",
    "127.0.0.1 4001 name bridge1",
    "10.1.1.1 4001 name lte weight 2 backup",
    "forward 5353 dns",
    "log-level warning",
  ].join("\n");
  const config = client(text);
  assert.equal(config.paths.length, 2);
  assert.equal(config.paths[1].line, 6);
  assert.equal(config.mode, "adaptive");
  assert.equal(config.targetLossPercent, 1);
  assert.equal(config.forwards.length, 1);
  assert.equal(config.logLevel, "warning");
});

// --- The client file: keyword errors ----------------------------------------------------------

Deno.test("client error: an unknown keyword, with a suggestion", () => {
  assert.equal(
    clientError("\nmdoe fec"),
    `mpclient.conf:2: unknown keyword "mdoe" (did you mean "mode"?); expected uplinks, exclude, ` +
      `listen, forward, socks5, mode, target-loss, fec, rekey-interval, reorder-timeout, path-down-after, secret-file, control, log-level, ` +
      `log-format or a path "HOST PORT [option…]"`,
  );
});

Deno.test("client error: an unknown keyword with nothing like it", () => {
  assert.match(
    clientError("frobnicate yes"),
    /^mpclient\.conf:1: unknown keyword "frobnicate"; expected /,
  );
});

Deno.test("client error: a keyword in the wrong case", () => {
  assert.match(
    clientError("Mode fec"),
    /^mpclient\.conf:1: unknown keyword "Mode" \(did you mean "mode"\?\)/,
  );
});

Deno.test("client error: a keyword typo followed by a port is not taken for a host", () => {
  assert.equal(
    clientError("lsiten 8000"),
    `mpclient.conf:1: unknown keyword "lsiten" (did you mean "listen"?); ` +
      `if it is a host name, write it with a trailing dot: "lsiten."`,
  );
});

Deno.test("client error: a value keyword given twice", () => {
  assert.equal(
    clientError("mode fec\n\nmode redundant\n"),
    "mpclient.conf:3: mode is already set on line 1; give it once",
  );
});

Deno.test("client error: a keyword without its value", () => {
  assert.equal(
    clientError("mode"),
    `mpclient.conf:1: mode needs a value; expected "mode redundant|adaptive|balance|fec"`,
  );
});

Deno.test("client error: a keyword with too few words", () => {
  assert.equal(
    clientError("uplinks auto example.net"),
    `mpclient.conf:1: uplinks is incomplete; expected "uplinks auto HOST PORT"`,
  );
  assert.equal(
    clientError("forward 5353"),
    `mpclient.conf:1: forward is incomplete; expected "forward [HOST:]PORT TARGET"`,
  );
});

Deno.test("client error: a keyword with too many words", () => {
  assert.equal(
    clientError("mode fec redundant"),
    `mpclient.conf:1: unexpected "redundant" after "mode fec"; ` +
      `expected "mode redundant|adaptive|balance|fec"`,
  );
});

Deno.test("client error: uplinks without auto", () => {
  assert.equal(
    clientError("uplinks all example.net 2000"),
    `mpclient.conf:1: expected "auto" after uplinks, got "all"`,
  );
});

Deno.test("client error: uplinks with a bad port", () => {
  assert.equal(
    clientError("uplinks auto example.net x"),
    `mpclient.conf:1: expected a port number after the host, got "x"`,
  );
});

Deno.test("client error: listen with a malformed address", () => {
  assert.equal(
    clientError("listen localhost"),
    `mpclient.conf:1: expected HOST:PORT, got "localhost"`,
  );
  assert.equal(
    clientError("listen ::1:8000"),
    `mpclient.conf:1: IPv6 addresses need brackets before a port: "[::1]:8000"`,
  );
});

Deno.test("client error: a forward target that is neither a name nor an address", () => {
  assert.equal(
    clientError("forward 5353 9dns"),
    `mpclient.conf:1: expected a target name or HOST:PORT, got "9dns"`,
  );
  assert.equal(
    clientError("forward 5353 host:x"),
    `mpclient.conf:1: expected a port number, got "x"`,
  );
});

Deno.test("client error: two forwards on the same local address", () => {
  assert.equal(
    clientError("forward 5353 dns\nforward 127.0.0.1:5353 web\n"),
    "mpclient.conf:2: forward 127.0.0.1:5353 listens where the forward on line 1 does",
  );
});

Deno.test("client error: an unknown mode", () => {
  assert.equal(
    clientError("mode fast"),
    `mpclient.conf:1: expected redundant, adaptive, balance or fec, got "fast"`,
  );
});

Deno.test("client error: target-loss out of range", () => {
  for (const percent of ["0", "100", "150"]) {
    const message = clientError(`target-loss ${percent}`);
    assert.match(message, /^mpclient\.conf:1: /, percent);
  }
  assert.equal(
    clientError("target-loss 0"),
    `mpclient.conf:1: target-loss must be above 0 and below 100 (percent), got "0"`,
  );
  assert.equal(
    clientError("target-loss 150"),
    `mpclient.conf:1: a percentage must be from 0 to 100, got "150"`,
  );
});

Deno.test("client error: target-loss written with a percent sign or not a number", () => {
  assert.equal(clientError("target-loss 1%"), `mpclient.conf:1: write percentages without "%": 1`);
  assert.equal(
    clientError("target-loss low"),
    `mpclient.conf:1: expected a percentage such as 0.1 or 5, got "low"`,
  );
});

Deno.test("client error: fec that is not K:M", () => {
  assert.equal(
    clientError("fec 8/2"),
    `mpclient.conf:1: expected K:M (data and parity shards, such as 8:2) or auto, got "8/2"`,
  );
});

Deno.test("client error: fec shard counts out of range", () => {
  assert.equal(
    clientError("fec 0:2"),
    `mpclient.conf:1: the data shard count must be 1 to 64, got 0 in "0:2"`,
  );
  assert.equal(
    clientError("fec 8:65"),
    `mpclient.conf:1: the parity shard count must be 1 to 64, got 65 in "8:65"`,
  );
});

Deno.test("client error: an unknown log level or format", () => {
  assert.equal(
    clientError("log-level verbose"),
    `mpclient.conf:1: expected debug, info, warning or error, got "verbose"`,
  );
  assert.equal(clientError("log-format xml"), `mpclient.conf:1: expected text or json, got "xml"`);
});

Deno.test("client error: control with a malformed address", () => {
  assert.equal(
    clientError("control :9090"),
    `mpclient.conf:1: expected a host name or IP address, got ""`,
  );
});

Deno.test("client error: the first error stops parsing and names its own line", () => {
  assert.equal(
    clientError("127.0.0.1 4001\nmode x\nmode y\n"),
    `mpclient.conf:2: expected redundant, adaptive, balance or fec, got "x"`,
  );
});

Deno.test("client error: is a UsageError, so the program exits 2", () => {
  assert.throws(() => client("mode x"), UsageError);
});

// --- parsePathWords ---------------------------------------------------------------------------

Deno.test("parsePathWords: reads positional path words", () => {
  assert.deepEqual(parsePathWords(["example.net", "4001", "backup"], 0), {
    ok: true,
    value: { host: "example.net", port: 4001, weight: 1, backup: true, line: 0 },
  });
});

Deno.test("parsePathWords: refuses no words", () => {
  assert.deepEqual(parsePathWords([], 0), {
    ok: false,
    error: `expected a path "HOST PORT [option…]"`,
  });
});

// --- The server file --------------------------------------------------------------------------

Deno.test("server: reads repeated listen lines", () => {
  assert.deepEqual(server("listen 0.0.0.0:2000\nlisten [::]:2000\n").listen, [
    { hostname: "0.0.0.0", port: 2000 },
    { hostname: "::", port: 2000 },
  ]);
});

Deno.test("server: listen with a bare port is on every IPv4 interface", () => {
  assert.deepEqual(server("listen 2000").listen, [{ hostname: "0.0.0.0", port: 2000 }]);
});

Deno.test("server: reads targets and the default target", () => {
  const config = server("target dns 127.0.0.1 53\ntarget web [::1] 8080\ndefault-target dns\n");
  assert.deepEqual(
    config.targets,
    new Map([["dns", { hostname: "127.0.0.1", port: 53 }], ["web", {
      hostname: "::1",
      port: 8080,
    }]]),
  );
  assert.equal(config.defaultTarget, "dns");
});

Deno.test("server: default-target may come before its target", () => {
  assert.equal(server("default-target dns\ntarget dns 127.0.0.1 53\n").defaultTarget, "dns");
});

Deno.test("server: reads allow rules", () => {
  const config = server(
    "allow 10.0.0.0/8 53\nallow 2001:DB8::/32 8000-8999\nallow 192.0.2.7 1-65535\n",
  );
  assert.deepEqual(config.allow, [
    { network: "10.0.0.0", prefixLength: 8, family: 4, portLow: 53, portHigh: 53, line: 1 },
    { network: "2001:db8::", prefixLength: 32, family: 6, portLow: 8000, portHigh: 8999, line: 2 },
    { network: "192.0.2.7", prefixLength: 32, family: 4, portLow: 1, portHigh: 65535, line: 3 },
  ]);
});

Deno.test("server: a bare IPv6 allow address is a /128", () => {
  assert.deepEqual(server("allow 2001:db8::1 53").allow[0].prefixLength, 128);
});

Deno.test("server: an allow rule in IPv4-mapped form becomes the IPv4 rule", () => {
  const [rule] = server("allow ::ffff:10.0.0.0/104 53").allow;
  assert.deepEqual(
    { network: rule.network, prefixLength: rule.prefixLength, family: rule.family },
    { network: "10.0.0.0", prefixLength: 8, family: 4 },
  );
});

Deno.test("server: canonicalises IPv6 allow networks", () => {
  const [rule] = server("allow 2001:0db8:0000:0000:0001:0000:0000:0000/80 53").allow;
  assert.equal(rule.network, "2001:db8:0:0:1::");
});

Deno.test("server: reads the keywords shared with the client", () => {
  const config = server(
    "secret-file s.key\ncontrol 127.0.0.1:9091\nlog-level info\nlog-format text\n",
  );
  assert.equal(config.secretFile, "s.key");
  assert.deepEqual(config.control, { hostname: "127.0.0.1", port: 9091 });
  assert.equal(config.logLevel, "info");
  assert.equal(config.logFormat, "text");
});

Deno.test("server: an empty file gives an empty configuration", () => {
  assert.deepEqual(server("\n# nothing\n"), EMPTY_SERVER_CONFIG);
});

// --- The server file: errors ------------------------------------------------------------------

Deno.test("server error: a path line is an unknown keyword", () => {
  assert.equal(
    serverError("127.0.0.1 4001"),
    `mpserver.conf:1: unknown keyword "127.0.0.1"; expected listen, target, default-target, allow, ` +
      `secret-file, control, log-level, log-format`,
  );
});

Deno.test("server error: an unknown keyword with a suggestion", () => {
  assert.match(
    serverError("targte dns 1.1.1.1 53"),
    /^mpserver\.conf:1: unknown keyword "targte" \(did you mean "target"\?\)/,
  );
});

Deno.test("server error: the same listen address twice", () => {
  assert.equal(
    serverError("listen 2000\nlisten 0.0.0.0:2000\n"),
    "mpserver.conf:2: listen 0.0.0.0:2000 is already given on line 1",
  );
});

Deno.test("server error: a target name given twice", () => {
  assert.equal(
    serverError("target dns 1.1.1.1 53\n# again\ntarget dns 8.8.8.8 53\n"),
    `mpserver.conf:3: target "dns" is already defined on line 1`,
  );
});

Deno.test("server error: a target name that is not a name", () => {
  assert.equal(
    serverError("target 1dns 1.1.1.1 53"),
    `mpserver.conf:1: expected a target name (a letter, then letters, digits, "_", "." or "-"), got "1dns"`,
  );
});

Deno.test("server error: a target with a bad port", () => {
  assert.equal(
    serverError("target dns 1.1.1.1 domain"),
    `mpserver.conf:1: expected a port number after the host, got "domain"`,
  );
});

Deno.test("server error: a target missing its port", () => {
  assert.equal(
    serverError("target dns 1.1.1.1"),
    `mpserver.conf:1: target is incomplete; expected "target NAME HOST PORT"`,
  );
});

Deno.test("server error: default-target naming no target reports its own line", () => {
  assert.equal(
    serverError("target web 127.0.0.1 80\ndefault-target dns\ntarget ntp 127.0.0.1 123\n"),
    `mpserver.conf:2: default-target "dns" names no target (defined targets: web, ntp); ` +
      `define it with "target dns HOST PORT"`,
  );
});

Deno.test("server error: default-target when no targets are defined", () => {
  assert.equal(
    serverError("default-target dns"),
    `mpserver.conf:1: default-target "dns" names no target (no targets are defined); ` +
      `define it with "target dns HOST PORT"`,
  );
});

Deno.test("server error: default-target given twice", () => {
  assert.equal(
    serverError("default-target a\ndefault-target b\n"),
    "mpserver.conf:2: default-target is already set on line 1; give it once",
  );
});

Deno.test("server error: an allow network with host bits set", () => {
  assert.equal(
    serverError("allow 10.0.0.1/8 53"),
    "mpserver.conf:1: 10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?",
  );
  assert.equal(
    serverError("allow 2001:db8::1/32 53"),
    "mpserver.conf:1: 2001:db8::1/32 has host bits set; did you mean 2001:db8::/32?",
  );
});

Deno.test("server error: an allow prefix length out of range", () => {
  assert.equal(
    serverError("allow 10.0.0.0/33 53"),
    `mpserver.conf:1: expected a prefix length from 0 to 32 after "/", got "33" in "10.0.0.0/33"`,
  );
  assert.equal(
    serverError("allow ::/129 53"),
    `mpserver.conf:1: expected a prefix length from 0 to 128 after "/", got "129" in "::/129"`,
  );
  assert.equal(
    serverError("allow 10.0.0.0/ 53"),
    `mpserver.conf:1: expected a prefix length from 0 to 32 after "/", got "" in "10.0.0.0/"`,
  );
});

Deno.test("server error: an allow address that is a host name or malformed", () => {
  for (const network of ["example.com", "10.0.0/8", "10.0.0.0/8/8", "fe80::1%eth0"]) {
    assert.equal(
      serverError(`allow ${network} 53`),
      `mpserver.conf:1: expected an IP address or network such as 10.0.0.0/8 or 2001:db8::/32, ` +
        `got "${network}"`,
      network,
    );
  }
});

Deno.test("server error: an allow port range that is malformed or backwards", () => {
  assert.equal(
    serverError("allow 10.0.0.0/8 dns"),
    `mpserver.conf:1: expected a port or port range such as 53 or 8000-8999, got "dns"`,
  );
  assert.equal(
    serverError("allow 10.0.0.0/8 9000-8000"),
    "mpserver.conf:1: port range 9000-8000 runs backwards; expected LOW-HIGH with LOW ≤ HIGH",
  );
  assert.equal(
    serverError("allow 10.0.0.0/8 1-70000"),
    "mpserver.conf:1: port 70000 is out of range (1-65535)",
  );
});

Deno.test("server error: allow without its port", () => {
  assert.equal(
    serverError("allow 10.0.0.0/8"),
    `mpserver.conf:1: allow is incomplete; expected "allow CIDR PORT[-PORT]"`,
  );
});

// --- Allow rule matching ----------------------------------------------------------------------

function rule(text: string): AllowRule {
  return server(`allow ${text}`).allow[0];
}

Deno.test("allow: an IPv4 network matches addresses inside it only", () => {
  const tenEight = rule("10.0.0.0/8 53");
  assert.equal(allowRuleMatches(tenEight, "10.255.1.2", 53), true);
  assert.equal(allowRuleMatches(tenEight, "11.0.0.1", 53), false);
});

Deno.test("allow: a prefix that is not a whole number of bytes", () => {
  const network = rule("192.168.4.0/22 53");
  assert.equal(allowRuleMatches(network, "192.168.7.255", 53), true);
  assert.equal(allowRuleMatches(network, "192.168.8.0", 53), false);
});

Deno.test("allow: the port must be within the range", () => {
  const range = rule("10.0.0.0/8 8000-8999");
  assert.equal(allowRuleMatches(range, "10.0.0.1", 8000), true);
  assert.equal(allowRuleMatches(range, "10.0.0.1", 8999), true);
  assert.equal(allowRuleMatches(range, "10.0.0.1", 7999), false);
  assert.equal(allowRuleMatches(range, "10.0.0.1", 9000), false);
});

Deno.test("allow: a bare address matches itself only", () => {
  const host = rule("192.0.2.7 53");
  assert.equal(allowRuleMatches(host, "192.0.2.7", 53), true);
  assert.equal(allowRuleMatches(host, "192.0.2.8", 53), false);
});

Deno.test("allow: 0.0.0.0/0 matches every IPv4 address but no IPv6 one", () => {
  const everything = rule("0.0.0.0/0 53");
  assert.equal(allowRuleMatches(everything, "203.0.113.9", 53), true);
  assert.equal(allowRuleMatches(everything, "2001:db8::1", 53), false);
});

Deno.test("allow: an IPv6 network matches addresses inside it, in any spelling", () => {
  const documentation = rule("2001:db8::/32 443");
  assert.equal(allowRuleMatches(documentation, "2001:db8:ffff::1", 443), true);
  assert.equal(allowRuleMatches(documentation, "2001:DB8:0:0::1", 443), true);
  assert.equal(allowRuleMatches(documentation, "[2001:db8::1]", 443), true);
  assert.equal(allowRuleMatches(documentation, "2001:db9::1", 443), false);
});

Deno.test("allow: an IPv6 address with a zone matches by its address", () => {
  assert.equal(allowRuleMatches(rule("fe80::/10 53"), "fe80::1%eth0", 53), true);
});

Deno.test("allow: an IPv4-mapped IPv6 address matches IPv4 rules", () => {
  const tenEight = rule("10.0.0.0/8 53");
  assert.equal(allowRuleMatches(tenEight, "::ffff:10.1.2.3", 53), true);
  assert.equal(allowRuleMatches(tenEight, "::ffff:a01:203", 53), true);
  assert.equal(allowRuleMatches(tenEight, "::ffff:11.1.2.3", 53), false);
});

Deno.test("allow: an IPv4-mapped address does not match IPv6 rules", () => {
  assert.equal(allowRuleMatches(rule("::/0 53"), "::ffff:10.1.2.3", 53), false);
  assert.equal(allowRuleMatches(rule("::/0 53"), "2001:db8::1", 53), true);
});

Deno.test("allow: a rule in mapped form matches plain IPv4 addresses", () => {
  assert.equal(allowRuleMatches(rule("::ffff:10.0.0.0/104 53"), "10.9.9.9", 53), true);
});

Deno.test("allow: an address that is not an IP literal matches nothing", () => {
  assert.equal(allowRuleMatches(rule("0.0.0.0/0 53"), "example.com", 53), false);
  assert.equal(allowRuleMatches(rule("::/0 53"), "", 53), false);
});

// --- Flags ------------------------------------------------------------------------------------

Deno.test("flags: every keyword is a flag, repeatable ones declared multiple", () => {
  assert.deepEqual(Object.keys(CLIENT_FLAG_OPTIONS), [...CLIENT_VALUE_KEYWORDS]);
  assert.deepEqual(Object.keys(SERVER_FLAG_OPTIONS), [...SERVER_VALUE_KEYWORDS]);
  assert.deepEqual(CLIENT_FLAG_OPTIONS["forward"], { type: "string", multiple: true });
  assert.deepEqual(CLIENT_FLAG_OPTIONS["mode"], { type: "string", multiple: false });
  assert.deepEqual(SERVER_FLAG_OPTIONS["target"], { type: "string", multiple: true });
});

Deno.test("flags: help lists every client keyword with its words", () => {
  const mode = CLIENT_KEYWORD_HELP.find((help) => help.keyword === "mode");
  assert.equal(mode?.valueWords, "redundant|adaptive|balance|fec");
  assert.equal(CLIENT_KEYWORD_HELP.length, CLIENT_VALUE_KEYWORDS.length);
});

Deno.test("flags: a flag sets what the file left out", () => {
  const merged = applyClientFlags(client("127.0.0.1 4001"), { mode: "fec", fec: "8:2" });
  assert.equal(merged.mode, "fec");
  assert.deepEqual(merged.fec, { dataShards: 8, parityShards: 2 });
  assert.equal(merged.paths.length, 1);
});

Deno.test("flags: the command line wins over the file", () => {
  const merged = applyClientFlags(client("mode redundant\nlisten 8000\n"), { mode: "balance" });
  assert.equal(merged.mode, "balance");
  assert.deepEqual(merged.listen, { hostname: "127.0.0.1", port: 8000 });
});

Deno.test("flags: a repeatable flag replaces the file's lines for that keyword", () => {
  const file = client("forward 5353 dns\nforward 8443 web\nexclude docker0\n");
  const merged = applyClientFlags(file, { forward: ["6000 ntp"] });
  assert.deepEqual(merged.forwards, [
    {
      listen: { hostname: "127.0.0.1", port: 6000 },
      target: { kind: "named", name: "ntp" },
      line: 0,
    },
  ]);
  assert.deepEqual(merged.excludeInterfaces, ["docker0"]);
});

Deno.test("flags: a multi-word keyword takes its words in one flag value", () => {
  const merged = applyClientFlags(EMPTY_CLIENT_CONFIG, {
    uplinks: "auto  server.example.net 2000",
  });
  assert.deepEqual(merged.uplinksAuto, { hostname: "server.example.net", port: 2000 });
});

Deno.test("flags: keys that are not keywords are ignored", () => {
  const merged = applyClientFlags(EMPTY_CLIENT_CONFIG, {
    help: false,
    config: "x.conf",
    version: true,
  });
  assert.deepEqual(merged, EMPTY_CLIENT_CONFIG);
});

Deno.test("flags: applying no flags leaves the configuration as it was", () => {
  const file = client("127.0.0.1 4001\nmode fec\n");
  assert.deepEqual(applyClientFlags(file, {}), file);
});

Deno.test("flags: work straight from parseArgs", () => {
  const { values } = parseArgs({
    args: ["--mode", "adaptive", "--exclude", "wlan0", "--exclude", "docker0", "--help"],
    options: { ...CLIENT_FLAG_OPTIONS, help: { type: "boolean" } },
  });
  const merged = applyClientFlags(EMPTY_CLIENT_CONFIG, values);
  assert.equal(merged.mode, "adaptive");
  assert.deepEqual(merged.excludeInterfaces, ["wlan0", "docker0"]);
});

Deno.test("flag error: names the flag and what was expected", () => {
  assert.equal(
    errorOf(() => applyClientFlags(EMPTY_CLIENT_CONFIG, { mode: "x" })),
    `--mode: expected redundant, adaptive, balance or fec, got "x"`,
  );
});

Deno.test("flag error: a flag value missing", () => {
  assert.equal(
    errorOf(() => applyClientFlags(EMPTY_CLIENT_CONFIG, { mode: "" })),
    `--mode: missing value; expected "--mode redundant|adaptive|balance|fec"`,
  );
});

Deno.test("flag error: a flag value with too few words", () => {
  assert.equal(
    errorOf(() => applyClientFlags(EMPTY_CLIENT_CONFIG, { uplinks: "auto" })),
    `--uplinks: incomplete value "auto"; expected "--uplinks auto HOST PORT"`,
  );
});

Deno.test("flag error: a flag value with too many words", () => {
  assert.equal(
    errorOf(() => applyClientFlags(EMPTY_CLIENT_CONFIG, { listen: "8000 9000" })),
    `--listen: unexpected "9000" after "8000"; expected "--listen [HOST:]PORT"`,
  );
});

Deno.test("flag error: a value flag given twice", () => {
  const flags: FlagValues = { "log-level": ["debug", "info"] };
  assert.equal(
    errorOf(() => applyClientFlags(EMPTY_CLIENT_CONFIG, flags)),
    "--log-level: given more than once; give it once",
  );
});

Deno.test("flag error: repeated flags clash with each other", () => {
  assert.equal(
    errorOf(() => applyClientFlags(EMPTY_CLIENT_CONFIG, { forward: ["5353 dns", "5353 web"] })),
    "--forward: forward 5353 listens where the forward earlier on the command line does",
  );
});

Deno.test("flag error: a keyword flag declared as a boolean is a programming error", () => {
  assert.throws(() => applyClientFlags(EMPTY_CLIENT_CONFIG, { mode: true }), TypeError);
});

Deno.test("server flags: listen flags replace the file's listen lines", () => {
  const merged = applyServerFlags(server("listen 2000\n"), { listen: ["[::]:3000", "3001"] });
  assert.deepEqual(merged.listen, [{ hostname: "::", port: 3000 }, {
    hostname: "0.0.0.0",
    port: 3001,
  }]);
});

Deno.test("server flags: a default target from the flags must name a target", () => {
  const file = server("target dns 127.0.0.1 53\n");
  assert.equal(applyServerFlags(file, { "default-target": "dns" }).defaultTarget, "dns");
  assert.equal(
    errorOf(() => applyServerFlags(file, { "default-target": "web" })),
    `--default-target: default-target "web" names no target (defined targets: dns); ` +
      `define it with "target web HOST PORT"`,
  );
});

Deno.test("server flags: target flags that drop the file's default target are refused", () => {
  const file = server("target dns 127.0.0.1 53\ndefault-target dns\n");
  assert.equal(
    errorOf(() => applyServerFlags(file, { target: ["web 127.0.0.1 80"] })),
    `--target: default-target "dns" names no target (defined targets: web); ` +
      `define it with "target dns HOST PORT"`,
  );
});

Deno.test("server flags: a target name given twice on the command line", () => {
  assert.equal(
    errorOf(() => applyServerFlags(EMPTY_SERVER_CONFIG, { target: ["a ::1 1", "a ::1 2"] })),
    `--target: target "a" is already defined earlier on the command line`,
  );
});

Deno.test("server flags: allow rules from the flags carry line 0", () => {
  const merged = applyServerFlags(EMPTY_SERVER_CONFIG, { allow: "10.0.0.0/8 53" });
  assert.equal(merged.allow[0].line, 0);
  assert.equal(allowRuleMatches(merged.allow[0], "10.1.1.1", 53), true);
});

Deno.test("server flags: errors name the flag", () => {
  assert.equal(
    errorOf(() => applyServerFlags(EMPTY_SERVER_CONFIG, { allow: "10.0.0.1/8 53" })),
    "--allow: 10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?",
  );
});

// --- Loading files ----------------------------------------------------------------------------

// These need to write temporary files; `deno task test` grants that, a bare `deno test` skips them.
const canUseFiles = (await Deno.permissions.query({ name: "write" })).state === "granted" &&
  (await Deno.permissions.query({ name: "read" })).state === "granted";

/** A file test, listed as ignored when the run may not touch files. */
function fileTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, ignore: !canUseFiles, fn });
}

fileTest("load: reads and parses a client file, naming it in errors", async () => {
  const directory = await Deno.makeTempDir();
  try {
    const good = `${directory}/mpclient.conf`;
    await Deno.writeTextFile(good, "127.0.0.1 4001\n");
    assert.equal((await loadClientConfigFile(good)).paths.length, 1);
    const bad = `${directory}/bad.conf`;
    await Deno.writeTextFile(bad, "\nmode x\n");
    await assert.rejects(loadClientConfigFile(bad), {
      name: "ConfigError",
      message: `${bad}:2: expected redundant, adaptive, balance or fec, got "x"`,
    });
  } finally {
    await Deno.remove(directory, { recursive: true });
  }
});

fileTest("load: a missing file is a ConfigError naming it", async () => {
  await assert.rejects(loadServerConfigFile("/nonexistent/mpserver.conf"), {
    name: "ConfigError",
    message: "/nonexistent/mpserver.conf: cannot read the configuration file (no such file)",
  });
});

fileTest("load: a directory is a ConfigError naming it", async () => {
  const directory = await Deno.makeTempDir();
  try {
    await assert.rejects(loadServerConfigFile(directory), (error: Error) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, new RegExp(`^${directory}: cannot read the configuration file`));
      return true;
    });
  } finally {
    await Deno.remove(directory, { recursive: true });
  }
});

fileTest("load: invalid UTF-8 is reported with its line", async () => {
  const directory = await Deno.makeTempDir();
  try {
    const path = `${directory}/mpserver.conf`;
    const bytes = new Uint8Array([
      ...new TextEncoder().encode("listen 2000\n# caf"),
      0xe9,
      ...new TextEncoder().encode("\n"),
    ]);
    await Deno.writeFile(path, bytes);
    await assert.rejects(loadServerConfigFile(path), {
      name: "ConfigError",
      message: `${path}:2: not valid UTF-8; save the file as UTF-8`,
    });
  } finally {
    await Deno.remove(directory, { recursive: true });
  }
});

fileTest("load: a byte order mark in a file is tolerated", async () => {
  const directory = await Deno.makeTempDir();
  try {
    const path = `${directory}/mpserver.conf`;
    await Deno.writeFile(
      path,
      new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode("listen 2000\n")]),
    );
    assert.deepEqual((await loadServerConfigFile(path)).listen, [{
      hostname: "0.0.0.0",
      port: 2000,
    }]);
  } finally {
    await Deno.remove(directory, { recursive: true });
  }
});

Deno.test("rekey-interval takes a duration from 1s to 1h, in the file and as a flag", () => {
  assert.equal(parseClientConfig("rekey-interval 30s\n", "c.conf").rekeyIntervalMs, 30_000);
  assert.throws(
    () => parseClientConfig("rekey-interval 500ms\n", "c.conf"),
    /c\.conf:1: .*1s to 1h/,
  );
  assert.throws(() => parseClientConfig("rekey-interval 30\n", "c.conf"), /c\.conf:1: .*unit/);
  const merged = applyClientFlags(EMPTY_CLIENT_CONFIG, { "rekey-interval": "2s" });
  assert.equal(merged.rekeyIntervalMs, 2000);
});
