/**
 * How a process picks between a fast implementation that may not run here (it needs FFI, a library,
 * an OS) and the portable one it falls back to: once, from an environment variable when it is set
 * and readable, else a default. Used for the socket layer (`udpIo` in `lib/io/udp.ts`) and the cipher
 * (`aeadImplementation` in `lib/crypto/aead_factory.ts`). A leaf module: it knows neither.
 */

/** One fast/portable pair and what decides between them. */
export interface ImplementationChoice<Fast extends string, Portable extends string> {
  /** The variable that may name either (read only with permission, so nothing prompts). */
  readonly envVar: string;
  readonly fast: Fast;
  readonly portable: Portable;
  /** What is used when the variable is unset, empty, unknown or unreadable. */
  readonly defaultChoice: Fast | Portable;
  /** Why the fast one cannot run in this process, or undefined when it can. */
  readonly fastUnavailable: () => string | undefined;
  /** How the warning names the fallback, e.g. "Deno's sockets". */
  readonly portableDescription: string;
}

/**
 * The implementation to use: the variable's value when it names one, else the default; the fast
 * one only where it can run. Warns (on stderr) about a value that names neither, and when the fast
 * one was asked for explicitly but cannot run, saying why.
 */
export function chooseImplementation<Fast extends string, Portable extends string>(
  choice: ImplementationChoice<Fast, Portable>,
): Fast | Portable {
  const { envVar, fast, portable } = choice;
  let wanted: string | undefined;
  if (Deno.permissions.querySync({ name: "env", variable: envVar }).state === "granted") {
    wanted = Deno.env.get(envVar)?.trim().toLowerCase() || undefined;
  }
  if (wanted !== undefined && wanted !== fast && wanted !== portable) {
    console.warn(`${envVar}=${wanted} is not "${fast}" or "${portable}"; ignored`);
    wanted = undefined;
  }
  const picked = (wanted ?? choice.defaultChoice) as Fast | Portable;
  if (picked !== fast) return picked;
  const unavailable = choice.fastUnavailable();
  if (unavailable === undefined) return fast;
  if (wanted === fast) {
    console.warn(
      `${envVar}=${fast}: unavailable (${unavailable}); using ${choice.portableDescription}`,
    );
  }
  return portable;
}
