/** Network-interface lists for the tests of `lib/uplink/interfaces.ts` and `lib/uplink/uplinks.ts`. */

/** One entry as `Deno.networkInterfaces()` gives it (the family follows from the address). */
export function interfaceEntry(name: string, address: string): Deno.NetworkInterfaceInfo {
  const family = address.includes(":") ? "IPv6" : "IPv4";
  return {
    name,
    family,
    address,
    netmask: family === "IPv4" ? "255.255.255.0" : "ffff:ffff:ffff:ffff::",
    scopeid: family === "IPv4" ? null : 0,
    cidr: `${address}/${family === "IPv4" ? 24 : 64}`,
    mac: "02:00:00:00:00:01",
  };
}
