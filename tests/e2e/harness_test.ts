import assert from "node:assert/strict";
import { bindUdp } from "../../lib/io/udp.ts";
import {
  commandExists,
  denoScript,
  forwardPorts,
  freeUdpPort,
  freeUdpPorts,
  requireTools,
  spawnCommand,
  startOnFreePort,
  toolsMissing,
  waitForListening,
  withTimeout,
} from "./harness.ts";

Deno.test("a spawned echo process answers, and a kill ends it", async () => {
  const socket = bindUdp({ hostname: "127.0.0.1", port: 0 });
  // The echo binds port 0 itself and says which port it got: no port is freed and handed over.
  await using echo = denoScript("tests/e2e/fixtures/echo_process.ts", ["0"]);
  try {
    const match = await echo.waitForLine(/listening on (\d+)/);
    const port = Number(match[1]);
    assert.ok(port > 0, match[0]);
    const datagram = new TextEncoder().encode("ping");
    await socket.send(datagram, { transport: "udp", hostname: "127.0.0.1", port });
    const [reply] = await withTimeout(
      socket.receive(new Uint8Array(100)),
      5000,
      "the echo's reply",
    );
    assert.equal(new TextDecoder().decode(reply), "ping");
    echo.kill("SIGTERM");
    assert.equal(await withTimeout(echo.exited, 5000, "the echo's exit"), 128 + 15);
  } finally {
    socket.close();
  }
});

Deno.test("the exit code of the process is reported", async () => {
  await using process = denoScript("tests/e2e/fixtures/exit_code.ts", ["3"]);
  assert.equal(await process.exited, 3);
  assert.match(process.output(), /exiting with 3/);
});

Deno.test("waitForLine rejects on timeout and quotes the output", async () => {
  await using echo = denoScript("tests/e2e/fixtures/echo_process.ts", ["0"]);
  await echo.waitForLine(/listening on/);
  await assert.rejects(echo.waitForLine(/never printed/, 300), (error: Error) => {
    assert.match(error.message, /within 300 ms/);
    assert.match(error.message, /listening on \d+/);
    return true;
  });
});

Deno.test("waitForLine rejects when the process exits without the line", async () => {
  await using process = denoScript("tests/e2e/fixtures/exit_code.ts", ["4"]);
  await assert.rejects(process.waitForLine(/never printed/, 10_000), (error: Error) => {
    assert.match(error.message, /exited with code 4/);
    assert.match(error.message, /exiting with 4/);
    return true;
  });
});

Deno.test("each match consumes the output up to it", async () => {
  await using process = denoScript("tests/e2e/fixtures/exit_code.ts", ["0", "3"]);
  assert.equal((await process.waitForLine(/line (\d)/))[1], "1");
  assert.equal((await process.waitForLine(/line (\d)/))[1], "2");
  assert.equal((await process.waitForLine(/line (\d)/))[1], "3");
  await assert.rejects(process.waitForLine(/line (\d)/, 5000), /exited with code 0/);
});

Deno.test("a chatty process never blocks and its last lines are kept", async () => {
  await using process = denoScript("tests/e2e/fixtures/exit_code.ts", ["0", "200000"], {
    maxOutputLines: 100,
  });
  await process.waitForLine(/exiting with 0/);
  assert.equal(await process.exited, 0);
  const lines = process.output().split("\n");
  assert.equal(lines.length, 100);
  assert.ok(lines.includes("line 200000"));
});

Deno.test("disposal kills with SIGKILL a process that ignores SIGTERM", async () => {
  let exited: Promise<number>;
  {
    await using echo = denoScript("tests/e2e/fixtures/echo_process.ts", [
      "0",
      "--ignore-sigterm",
    ]);
    await echo.waitForLine(/listening on/);
    exited = echo.exited;
  }
  assert.equal(await exited, 128 + 9);
});

Deno.test("free ports are distinct and bindable", () => {
  const ports = freeUdpPorts(5);
  assert.equal(new Set(ports).size, 5);
  const socket = bindUdp({ hostname: "127.0.0.1", port: ports[0] });
  socket.close();
});

Deno.test("commandExists finds programs on PATH only", () => {
  assert.equal(commandExists("sh"), true);
  assert.equal(commandExists("no-such-program-mptunnel"), false);
  assert.equal(commandExists(Deno.execPath()), true);
});

Deno.test("a missing tool ignores the test outside CI, with the reason, and fails it in CI", () => {
  assert.match(
    toolsMissing(["sh", "no-such-program-mptunnel"], { ci: false }) ?? "",
    /^no-such-program-mptunnel not installed/,
  );
  assert.equal(toolsMissing(["no-such-program-mptunnel"], { ci: true }), undefined);
  assert.equal(toolsMissing(["sh"], { ci: false }), undefined);
  assert.equal(
    toolsMissing(["sh"], { ci: false, isMissing: () => true }),
    "sh not installed (install to run this test; CI does)",
  );
  assert.throws(
    () => requireTools(["sh", "no-such-program-mptunnel"]),
    /no-such-program-mptunnel not on PATH/,
  );
  requireTools(["sh"]);
});

Deno.test("waitForListening reads the port from each program's start line", async () => {
  const lines = [
    "2026-01-01T00:00:00.000Z INFO  server: mpserver 0.1.0 started listen=127.0.0.1:32837 target=x",
    "2026-01-01T00:00:00.000Z INFO  client: mpclient 0.1.0 started listen=[::1]:57769 paths=a",
    "2026-01-01T00:00:00.000Z INFO  client: mpclient 0.1.0 started listen=none forwards=" +
    "127.0.0.1:60618→127.0.0.1:7,[::1]:55027→[::1]:7 paths=b",
    "2026-01-01T00:00:00.000Z INFO  bridge: Relaying 0.0.0.0:48739 to 127.0.0.1:9 version=0.1.0",
  ];
  const ports: number[] = [];
  for (const line of lines) {
    await using process = spawnCommand("echo", [line]);
    const listening = await waitForListening(process);
    assert.equal(listening.line, line.slice(line.search(/mp(server|client) |Relaying/)));
    ports.push(listening.port);
  }
  assert.deepEqual(ports, [32837, 57769, 0, 48739]);
  assert.deepEqual(forwardPorts(lines[2]), [60618, 55027]);
});

Deno.test("startOnFreePort starts a peer again when its port was taken", async () => {
  const taken = freeUdpPort();
  let attempts = 0;
  const { handle, port } = await startOnFreePort((port) => {
    attempts++;
    return attempts === 1
      ? spawnCommand("sh", ["-c", `echo "bind ${taken}: Address already in use"; exit 1`])
      : spawnCommand("sh", ["-c", `echo "listening on ${port}"; sleep 30`]);
  }, /listening on/);
  await handle[Symbol.asyncDispose]();
  assert.equal(attempts, 2);
  assert.ok(port > 0);
});

Deno.test("withTimeout rejects naming what was late, and passes results through", async () => {
  assert.equal(await withTimeout(Promise.resolve(5), 100, "five"), 5);
  let release = () => {};
  const slow = new Promise<void>((resolve) => release = resolve);
  await assert.rejects(withTimeout(slow, 20, "the slow thing"), /the slow thing did not finish/);
  release();
});
