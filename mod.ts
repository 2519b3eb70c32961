/**
 * mptunnel as a library: the protocol cores (no I/O), the drivers that run them on Deno's UDP
 * sockets, the bridge, the configuration parser and the measuring traffic tools.
 *
 * @example
 * ```ts ignore
 * import { bindUdp, ClientDriver, ServerDriver, silentLogger } from "./mod.ts";
 * const server = await ServerDriver.start({
 *   listen: [{ hostname: "127.0.0.1", port: 2000 }],
 *   target: { hostname: "127.0.0.1", port: 1194 },
 *   logger: silentLogger,
 *   bind: bindUdp,
 * });
 * const client = await ClientDriver.start({
 *   listen: { hostname: "127.0.0.1", port: 4000 },
 *   paths: [{ host: "127.0.0.1", port: 2000 }],
 *   logger: silentLogger,
 *   bind: bindUdp,
 * });
 * ```
 *
 * @module
 */

export {
  ClientCore,
  type ClientCoreOptions,
  type ClientOutbox,
  type ClientTiming,
  DEFAULT_CLIENT_TIMING,
  type FlowRefusal,
  type FlowTarget,
} from "./lib/session/client_core.ts";
export { type SchedulingMode } from "./lib/session/scheduler.ts";
export { FecDecoder } from "./lib/fec/decoder.ts";
export { FecEncoder } from "./lib/fec/encoder.ts";
export { type PathScheduler } from "./lib/session/path_scheduler.ts";
export { type PathStatsView } from "./lib/path/path_stats.ts";
export {
  chooseFecParameters,
  type FecParameters,
  residualLossRatio,
} from "./lib/fec/parameters.ts";
export { ReedSolomon } from "./lib/fec/reed_solomon.ts";
export { ReorderBuffer } from "./lib/session/reorder.ts";
export { addressAllowed, chooseTarget, type TargetPolicy } from "./lib/session/target_policy.ts";
export {
  DEFAULT_SERVER_LIMITS,
  ServerCore,
  type ServerLimits,
  type ServerOutbox,
} from "./lib/session/server_core.ts";
export { ClientDriver } from "./lib/driver/client_driver.ts";
export { type ClientDriverOptions, type ClientPathTarget } from "./lib/driver/client_options.ts";
export { ServerDriver, type ServerDriverOptions } from "./lib/driver/server_driver.ts";
export { bindUdp } from "./lib/io/udp.ts";
export { type BindTransport, type DatagramTransport } from "./lib/io/transport.ts";
export { MemoryNetwork } from "./lib/io/memory_transport.ts";
export { type Bridge, type BridgeOptions, startBridge } from "./lib/bridge/bridge_relay.ts";
export { type ImpairmentOptions } from "./lib/bridge/impairment.ts";
export { deriveSecretKeys, type SecretKeys } from "./lib/crypto/handshake.ts";
export { generateSecret, loadSecret } from "./lib/crypto/secret.ts";
export {
  type ClientConfig,
  ConfigError,
  parseClientConfig,
  parseServerConfig,
  type ServerConfig,
} from "./lib/ops/config.ts";
export { type Logger, recordingLogger, silentLogger } from "./lib/base/log.ts";
export {
  type ClientStatus,
  clientStatus,
  type ServerStatus,
  serverStatus,
} from "./lib/ops/status.ts";
export { formatMetrics } from "./lib/ops/metrics.ts";
export { type ControlServer, startControlServer } from "./lib/ops/control.ts";
export { type DropReason } from "./lib/base/counters.ts";
export {
  DECLARED_FLOW_BASE,
  MAX_APP_PAYLOAD_BYTES,
  PROTOCOL_VERSION,
  TUNNEL_OVERHEAD_BYTES,
} from "./lib/wire/messages.ts";
export {
  formatStreamReport,
  runTrafficSink,
  runTrafficStream,
  runUdpEcho,
  type StreamReport,
} from "./tools/traffic.ts";
