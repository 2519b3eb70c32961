/**
 * What a client may reach through mpserver: the server's named targets, its default target for
 * classic flows, and `allow` rules for explicit `HOST:PORT` requests. Default deny: a request that no
 * name and no rule covers is refused. Pure functions; the driver resolves host names and asks again
 * with the address, since a rule is about addresses, not names.
 */

import type { HostPort } from "../base/address.ts";
import { type AllowRule, allowRuleMatches } from "./allow_rule.ts";
import type { FlowRefusal, FlowTarget } from "../wire/messages.ts";

/** The server's targets and rules. */
export interface TargetPolicy {
  /** Named targets, by name: always reachable. */
  readonly targets: ReadonlyMap<string, HostPort>;
  /** Where classic flows (no declared target) go; none: they are refused. */
  readonly defaultTarget?: HostPort;
  /** What explicit `HOST:PORT` requests may reach. */
  readonly allow: readonly AllowRule[];
}

/** Where a declared flow would go before resolution, or why it cannot. */
export type TargetChoice =
  | {
    readonly ok: true;
    readonly host: string;
    readonly port: number;
    /** True for a named target (allowed whatever it resolves to). */
    readonly named: boolean;
    /** How logs name the target. */
    readonly label: string;
  }
  | { readonly ok: false; readonly refusal: FlowRefusal };

/** The first step of opening a declared flow: look the name up, or take the address as asked. */
export function chooseTarget(policy: TargetPolicy, target: FlowTarget): TargetChoice {
  if (target.kind === "named") {
    const address = policy.targets.get(target.name);
    if (!address) return { ok: false, refusal: "unknown-target" };
    return {
      ok: true,
      host: address.hostname,
      port: address.port,
      named: true,
      label: target.name,
    };
  }
  // Before resolution only a policy without any rule can refuse outright.
  if (policy.allow.length === 0) return { ok: false, refusal: "denied" };
  return {
    ok: true,
    host: target.host,
    port: target.port,
    named: false,
    label: target.host.includes(":")
      ? `[${target.host}]:${target.port}`
      : `${target.host}:${target.port}`,
  };
}

/** The second step, once the host is an address: does any `allow` rule cover it? */
export function addressAllowed(policy: TargetPolicy, address: string, port: number): boolean {
  return policy.allow.some((rule) => allowRuleMatches(rule, address, port));
}
