/**
 * What Linux's /proc says about a process, for the benchmark: CPU time used (user + system, with its
 * child processes, e.g. socat's per-client children) and resident memory.
 */

/** Clock ticks per second, the unit of CPU times in /proc (`getconf CLK_TCK`, almost always 100). */
export function clockTicksPerSecond(): number {
  try {
    const output = new Deno.Command("getconf", { args: ["CLK_TCK"], stdout: "piped" }).outputSync();
    const ticks = Number(new TextDecoder().decode(output.stdout).trim());
    return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
}

/** The process's own user + system CPU time in clock ticks (0 once it has gone). */
function ownCpuTicks(pid: number): number {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return 0;
  }
  // The command name (field 2) is in parentheses and may hold spaces; count fields after it.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
}

/** The live children of a process (empty when the kernel does not list them). */
function childrenOf(pid: number): number[] {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`).trim().split(/\s+/)
      .filter((word) => word !== "").map(Number);
  } catch {
    return [];
  }
}

/** User + system CPU ticks of a process and, unless told otherwise, of its live children. */
export function cpuTicks(pid: number, withChildren = true): number {
  let ticks = ownCpuTicks(pid);
  if (withChildren) { for (const child of childrenOf(pid)) ticks += ownCpuTicks(child); }
  return ticks;
}

/** Resident and peak resident memory of a process, in bytes. */
export function memoryBytes(
  pid: number,
): { readonly rssBytes: number; readonly peakBytes: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kilobytes = (field: string) => {
    const match = status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
    return match ? Number(match[1]) * 1024 : 0;
  };
  return { rssBytes: kilobytes("VmRSS"), peakBytes: kilobytes("VmHWM") };
}

/**
 * Datagrams each local UDP port's socket has dropped since it opened (its receive buffer was full),
 * from /proc/net/udp and /proc/net/udp6. Summed when several sockets share a port.
 */
export function udpDropsByPort(): Map<number, number> {
  const drops = new Map<number, number>();
  for (const file of ["/proc/net/udp", "/proc/net/udp6"]) {
    let text: string;
    try {
      text = Deno.readTextFileSync(file);
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 13) continue;
      const port = parseInt(fields[1].slice(fields[1].lastIndexOf(":") + 1), 16);
      drops.set(port, (drops.get(port) ?? 0) + Number(fields[fields.length - 1]));
    }
  }
  return drops;
}

/** The whole machine's CPU time so far, in clock ticks: busy (not idle or waiting) and in all. */
export function machineCpuTicks(): { readonly busyTicks: number; readonly totalTicks: number } {
  const fields = Deno.readTextFileSync("/proc/stat").split("\n")[0].trim().split(/\s+/).slice(1)
    .map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = fields;
  const busyTicks = user + nice + system + irq + softirq + (steal ?? 0);
  return { busyTicks, totalTicks: busyTicks + idle + iowait };
}
