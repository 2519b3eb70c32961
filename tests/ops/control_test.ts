/**
 * The control endpoint in this process, on loopback: its routes, methods and content types, its
 * refusal of a non-loopback Host, a failing handler that answers 500 without stopping anything, and
 * the status client's one-line errors.
 */
import { clientSeams } from "../session/engine_seams.ts";
import assert from "node:assert/strict";
import { ClientCore } from "../../lib/session/client_core.ts";
import {
  type ControlServer,
  type ControlServerOptions,
  ControlUnreachableError,
  fetchStatus,
  isLoopbackHost,
  startControlServer,
  terminalFrame,
} from "../../lib/ops/control.ts";
import { DASHBOARD_HTML } from "../../lib/ops/dashboard.ts";
import { recordingLogger, silentLogger } from "../../lib/base/log.ts";
import { clientStatus } from "../../lib/ops/status.ts";

const LOOPBACK = "127.0.0.1";

function sampleStatus() {
  const core = new ClientCore({
    ...clientSeams,
    pathLabels: ["a", "b"],
    logger: silentLogger,
    sessionId: 0xabc,
  });
  return clientStatus({
    core,
    startedAtMs: 0,
    listenAddress: { hostname: LOOPBACK, port: 4000 },
    flowCount: 0,
    pathAddresses: () =>
      core.paths.map(() => ({
        local: { hostname: "0.0.0.0", port: 1 },
        remote: { hostname: LOOPBACK, port: 2 },
      })),
  }, 1000);
}

/** Fetches and reads the whole body (the sanitizers want every body consumed). */
async function get(url: string, init: RequestInit = {}) {
  const response = await fetch(url, init);
  return { status: response.status, headers: response.headers, body: await response.text() };
}

/** A GET /status with a Host header of our choosing (fetch sets its own); returns the status line. */
async function rawGet(port: number, host: string): Promise<string> {
  const connection = await Deno.connect({ hostname: LOOPBACK, port });
  try {
    await connection.write(
      new TextEncoder().encode(
        `GET /status HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
      ),
    );
    let answer = "";
    const buffer = new Uint8Array(4096);
    for (;;) {
      const count = await connection.read(buffer);
      if (count === null) break;
      answer += new TextDecoder().decode(buffer.subarray(0, count));
    }
    return answer.split("\r\n")[0];
  } finally {
    connection.close();
  }
}

/**
 * Runs `body` against a control server on loopback (the sample status and a silent log unless
 * `options` say otherwise), which is stopped afterwards whatever happens.
 */
async function withControl(
  options: Partial<ControlServerOptions>,
  body: (base: string, control: ControlServer) => Promise<void>,
): Promise<void> {
  const control = await startControlServer({
    address: { hostname: LOOPBACK, port: 0 },
    status: sampleStatus,
    logger: silentLogger,
    ...options,
  });
  try {
    await body(`http://${LOOPBACK}:${control.address.port}`, control);
  } finally {
    await control.stop();
  }
}

Deno.test("the control endpoint serves /status as JSON and /metrics as Prometheus text", async () => {
  const logger = recordingLogger();
  const status = sampleStatus();
  await withControl({
    status: () => status,
    logger,
  }, async (base, control) => {
    assert.notEqual(control.address.port, 0);
    assert.ok(
      logger.records.some((record) =>
        record.message === "control endpoint listening" &&
        record.properties.address === `${LOOPBACK}:${control.address.port}`
      ),
    );
    assert.ok(!logger.records.some((record) => record.level === "warning"));

    const json = await get(`${base}/status`);
    assert.equal(json.status, 200);
    assert.equal(json.headers.get("content-type"), "application/json");
    assert.equal(json.headers.get("cache-control"), "no-store");
    assert.equal(json.headers.get("access-control-allow-origin"), null);
    assert.deepEqual(JSON.parse(json.body), status);

    const metrics = await get(`${base}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
    assert.match(metrics.body, /^mptunnel_path_up\{path="a"\} 0$/m);

    const head = await get(`${base}/status`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.body, "");

    assert.deepEqual(await fetchStatus(control.address, "mpclient"), status);
  });
});

Deno.test("unknown paths are 404, other methods 405, a foreign Host 403", async () => {
  await withControl({}, async (base, control) => {
    assert.equal((await get(`${base}/nope`)).status, 404);
    assert.equal((await get(`${base}/status/`)).status, 404);
    const post = await get(`${base}/status`, { method: "POST", body: "x" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET, HEAD");
    // A page on another site reaching the port through DNS rebinding arrives with its own Host.
    const port = control.address.port;
    assert.match(await rawGet(port, "attacker.example:80"), /^HTTP\/1\.1 403 /);
    assert.match(await rawGet(port, `localhost:${port}`), /^HTTP\/1\.1 200 /);
    assert.match(await rawGet(port, `[::1]:${port}`), /^HTTP\/1\.1 200 /);
  });
});

Deno.test("the web dashboard is served at /", async () => {
  await withControl({}, async (base) => {
    const response = await get(`${base}/`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(response.body, DASHBOARD_HTML);
  });
});

Deno.test("the page at / can be replaced, and keeps its security headers", async () => {
  const page = "<!doctype html><title>mptunnel</title>";
  await withControl({
    dashboardHtml: page,
  }, async (base) => {
    const response = await get(`${base}/`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/html; charset=utf-8");
    assert.match(response.headers.get("content-security-policy")!, /connect-src 'self'/);
    assert.equal(response.body, page);
  });
});

Deno.test("a failing status answers 500 and is logged; the endpoint keeps serving", async () => {
  const logger = recordingLogger();
  let fail = true;
  await withControl({
    status: () => {
      if (fail) throw new Error("snapshot broke");
      return sampleStatus();
    },
    logger,
  }, async (base) => {
    const failed = await get(`${base}/metrics`);
    assert.equal(failed.status, 500);
    assert.ok(
      logger.records.some((record) =>
        record.level === "error" && String(record.properties.error).includes("snapshot broke")
      ),
    );
    fail = false;
    assert.equal((await get(`${base}/status`)).status, 200);
  });
});

Deno.test("binding a port in use fails; stop is idempotent", async () => {
  const first = await startControlServer({
    address: { hostname: LOOPBACK, port: 0 },
    status: sampleStatus,
    logger: silentLogger,
  });
  try {
    await assert.rejects(
      startControlServer({ address: first.address, status: sampleStatus, logger: silentLogger }),
      Deno.errors.AddrInUse,
    );
  } finally {
    await first.stop();
    await first.stop();
  }
});

Deno.test("asking a port with no endpoint is one clear line", async () => {
  const probe = Deno.listen({ hostname: LOOPBACK, port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close(); // free a moment ago: nothing listens there now
  await assert.rejects(
    fetchStatus({ hostname: LOOPBACK, port }, "mpclient"),
    (error: unknown) => {
      assert.ok(error instanceof ControlUnreachableError);
      assert.equal(
        error.message,
        `no control endpoint at ${LOOPBACK}:${port}: is mpclient running with --control?`,
      );
      return true;
    },
  );
});

Deno.test("an endpoint that is not mptunnel's is refused as such", async () => {
  const server = Deno.serve(
    { hostname: LOOPBACK, port: 0, onListen: () => {} },
    () => Response.json({ hello: "world" }),
  );
  try {
    await assert.rejects(
      fetchStatus({ hostname: LOOPBACK, port: server.addr.port }, "mpserver"),
      /does not look like an mptunnel control endpoint/,
    );
  } finally {
    await server.shutdown();
  }
});

Deno.test("loopback hosts are told from the others", () => {
  for (const host of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"]) {
    assert.ok(isLoopbackHost(host), host);
  }
  for (const host of ["0.0.0.0", "::", "192.0.2.1", "10.0.0.1", "example.com", "128.0.0.1"]) {
    assert.ok(!isLoopbackHost(host), host);
  }
});

Deno.test("a watch frame redraws in place without clearing the screen", () => {
  assert.equal(terminalFrame("a\nbb\n"), "\x1b[Ha\x1b[K\nbb\x1b[K\n\x1b[J");
});

Deno.test("POST /paths/NAME/disable and /enable switch a path, by the name it has in /status", async () => {
  const calls: [string, boolean][] = [];
  await withControl({
    setPathInService: (path, inService) => {
      calls.push([path, inService]);
      return path === "a" || path === "10.0.0.1:2000@wwan0" ? "ok" : "no-such-path";
    },
  }, async (base) => {
    const disabled = await get(`${base}/paths/a/disable`, { method: "POST" });
    assert.equal(disabled.status, 200);
    assert.deepEqual(JSON.parse(disabled.body), { path: "a", inService: false });
    const encoded = encodeURIComponent("10.0.0.1:2000@wwan0");
    assert.equal((await get(`${base}/paths/${encoded}/enable`, { method: "POST" })).status, 200);
    assert.equal((await get(`${base}/paths/zz/disable`, { method: "POST" })).status, 404);
    assert.deepEqual(calls, [["a", false], ["10.0.0.1:2000@wwan0", true], ["zz", false]]);
  });
});

Deno.test("a path action must be a POST, and not from another origin", async () => {
  const calls: string[] = [];
  await withControl({
    setPathInService: (path) => {
      calls.push(path);
      return "ok";
    },
  }, async (base) => {
    const viaGet = await get(`${base}/paths/a/disable`);
    assert.equal(viaGet.status, 405);
    assert.equal(viaGet.headers.get("allow"), "POST");
    const foreign = await get(`${base}/paths/a/disable`, {
      method: "POST",
      headers: { origin: "http://evil.example" },
    });
    assert.equal(foreign.status, 403);
    const sameOrigin = await get(`${base}/paths/a/disable`, {
      method: "POST",
      headers: { origin: base },
    });
    assert.equal(sameOrigin.status, 200);
    assert.deepEqual(calls, ["a"]);
  });
});

Deno.test("without a path switch, /paths/NAME/disable is not found", async () => {
  await withControl({}, async (base) => {
    assert.equal((await get(`${base}/paths/a/disable`, { method: "POST" })).status, 404);
  });
});
