import assert from "node:assert/strict";
import { bindUdp } from "../../lib/io/udp.ts";
import {
  commandExists,
  denoScript,
  freeUdpPort,
  freeUdpPorts,
  requireTool,
  withTimeout,
} from "./harness.ts";

Deno.test("a spawned echo process answers, and a kill ends it", async () => {
  const port = freeUdpPort();
  const socket = bindUdp({ hostname: "127.0.0.1", port: 0 });
  await using echo = denoScript("tests/e2e/fixtures/echo_process.ts", [String(port)]);
  try {
    const match = await echo.waitForLine(/listening on (\d+)/);
    assert.equal(Number(match[1]), port);
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

Deno.test("a missing tool fails the test in CI and skips it elsewhere", () => {
  assert.throws(
    () => requireTool("no-such-program-mptunnel", { ci: true }),
    /no-such-program-mptunnel is not on PATH/,
  );
  assert.equal(requireTool("no-such-program-mptunnel", { ci: false }), false);
  assert.equal(requireTool("sh", { ci: true }), true);
});

Deno.test("withTimeout rejects naming what was late, and passes results through", async () => {
  assert.equal(await withTimeout(Promise.resolve(5), 100, "five"), 5);
  let release = () => {};
  const slow = new Promise<void>((resolve) => release = resolve);
  await assert.rejects(withTimeout(slow, 20, "the slow thing"), /the slow thing did not finish/);
  release();
});
