/**
 * The two cipher implementations in real processes: an mpclient on OpenSSL (the default where FFI
 * and libcrypto are there) talks to an mpserver forced onto node:crypto (`MPTUNNEL_CRYPTO=node`), and
 * the other way round. They must be interchangeable: an operator may run one end without FFI.
 */

import assert from "node:assert/strict";
import { opensslAeadUnavailable } from "../../lib/crypto/aead_openssl.ts";
import { AEAD_IMPLEMENTATION_ENV_VAR } from "../../lib/crypto/aead_factory.ts";
import { generateSecret, SECRET_ENV_VAR } from "../../lib/crypto/secret.ts";
import { runTrafficStream, runUdpEcho } from "../../tools/traffic.ts";
import {
  denoScript,
  PATHS_UP_TIMEOUT_MS,
  type ProcessHandle,
  STARTUP_TIMEOUT_MS,
  waitForCount,
  waitForListening,
} from "./harness.ts";

const LOCALHOST = "127.0.0.1";

for (const [clientCipher, serverCipher] of [["openssl", "node"], ["node", "openssl"]] as const) {
  Deno.test({
    name: `an mpclient on ${clientCipher} and an mpserver on ${serverCipher} carry every datagram`,
    ignore: opensslAeadUnavailable() !== undefined,
    async fn() {
      const secret = generateSecret();
      const config = await Deno.makeTempFile({ prefix: "mptunnel-interop-", suffix: ".conf" });
      const echo = runUdpEcho({ listen: { hostname: LOCALHOST, port: 0 } });
      const processes: ProcessHandle[] = [];
      const start = (script: string, args: string[], cipher: string) => {
        const env = { [SECRET_ENV_VAR]: secret, [AEAD_IMPLEMENTATION_ENV_VAR]: cipher };
        const process = denoScript(script, args, { env });
        processes.push(process);
        return process;
      };
      try {
        const server = start(
          "server.ts",
          [`${LOCALHOST}:0`, LOCALHOST, String(echo.address.port)],
          serverCipher,
        );
        const { line: serverLine, port: serverPort } = await waitForListening(server);
        assert.match(serverLine, new RegExp(`cipher=chacha20-poly1305/${serverCipher}\\b`));
        await Deno.writeTextFile(
          config,
          `${LOCALHOST} ${serverPort}\n${LOCALHOST} ${serverPort}\n`,
        );
        const client = start("client.ts", ["0", config], clientCipher);
        const { line: clientLine, port: clientPort } = await waitForListening(client);
        assert.match(clientLine, new RegExp(`cipher=chacha20-poly1305/${clientCipher}\\b`));
        await client.waitForLine(/session established/, STARTUP_TIMEOUT_MS);
        // Both paths up, not only the session: the stream is to run over the tunnel as configured
        // (each datagram on both paths), not over one path while the other still probes.
        await waitForCount(client, /path up/g, 2, PATHS_UP_TIMEOUT_MS);

        const report = await runTrafficStream({
          target: { hostname: LOCALHOST, port: clientPort },
          sizeBytes: 1000,
          ratePps: 500,
          count: 500,
          // The stream ends as soon as every echo is in: this only bounds the wait for the last.
          drainMs: 10_000,
        });
        console.log(
          `client ${clientCipher}, server ${serverCipher}: ${report.received}/${report.sent} echoed`,
        );
        assert.equal(report.received, report.sent);
        assert.equal(report.duplicates, 0);
        assert.equal(report.corrupted, 0);
      } finally {
        for (const process of processes.reverse()) await process[Symbol.asyncDispose]();
        await echo.stop();
        await Deno.remove(config);
      }
    },
  });
}
