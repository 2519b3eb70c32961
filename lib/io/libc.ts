/**
 * The libc of the batched UDP socket (`udp_batch.ts`), through Deno's FFI: the symbols it calls,
 * the Linux numbers they take, and `errno`. Loaded once, when this module is, where FFI is
 * permitted; the layouts the socket writes (`sockaddr.ts`, `message_vector.ts`) are those of
 * 64-bit Linux, so only there (x86_64, aarch64) is it used at all.
 */

/** `SOL_SOCKET`, the level of the socket options below. */
export const SOL_SOCKET = 1;
/** `SO_SNDBUF`: the kernel's send buffer of a socket. */
export const SO_SNDBUF = 7;
/** `SO_RCVBUF`: the kernel's receive buffer of a socket. */
export const SO_RCVBUF = 8;
/** `MSG_DONTWAIT`: return at once (EAGAIN) rather than wait. */
export const MSG_DONTWAIT = 0x40;
/** `MSG_TRUNC` in a received message's flags: the datagram was longer than its buffer. */
export const MSG_TRUNC = 0x20;
/** `PROT_READ`, `PROT_WRITE`: the access `mmap` grants. */
export const PROT_READ = 1;
/** See {@link PROT_READ}. */
export const PROT_WRITE = 2;
/** `MAP_PRIVATE`, `MAP_ANONYMOUS`, `MAP_NORESERVE`: memory of this process only, backed by nothing. */
export const MAP_PRIVATE = 2;
/** See {@link MAP_PRIVATE}. */
export const MAP_ANONYMOUS = 0x20;
/** See {@link MAP_PRIVATE}. */
export const MAP_NORESERVE = 0x4000;
/** `MADV_DONTNEED`: the kernel may take the pages back (they read as zeros afterwards). */
export const MADV_DONTNEED = 4;
/** `EINTR`: interrupted by a signal; try again. */
export const EINTR = 4;
/** `EBADF`: not an open file descriptor. */
export const EBADF = 9;
/** `EAGAIN`: nothing to receive, or no room to send, without waiting. */
export const EAGAIN = 11;

const SYMBOLS = {
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "pointer"], result: "i32" },
  sendmmsg: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  madvise: { parameters: ["pointer", "usize", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

/** The libc functions the batched socket calls. */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let libc: Libc | undefined;
let libcError: unknown;

/** Why libc cannot be driven through FFI in this process, or undefined when it can. */
export function libcUnavailable(): string | undefined {
  if (Deno.build.os !== "linux") return `not Linux (${Deno.build.os})`;
  if (Deno.build.arch !== "x86_64" && Deno.build.arch !== "aarch64") {
    return `unsupported architecture ${Deno.build.arch}`;
  }
  if (libc !== undefined) return undefined;
  if (libcError !== undefined) return String(libcError);
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return "no --allow-ffi";
  try {
    libc = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
    return undefined;
  } catch (error) {
    libcError = error;
    return String(error);
  }
}

/** The libc symbols; throws, saying why, when the batched socket cannot have them. */
export function loadedLibc(): Libc {
  const reason = libcUnavailable();
  if (reason !== undefined) throw new Error(`batched UDP unavailable: ${reason}`);
  return libc!;
}

let errnoView: Deno.UnsafePointerView | undefined;

/**
 * The last libc error number of this (the main) thread, read right after a synchronous call. Only a
 * hint: the runtime may run code of its own between the call and this read (a garbage collection
 * step, say) that changes errno — a receive once reported ENOENT this way — so callers use it to
 * choose a path (retry after EINTR, wait after EAGAIN) and leave reporting errors to Deno's own
 * calls. The view is made once, so that reading it allocates nothing. Call only once libc is loaded.
 */
export function errno(): number {
  errnoView ??= new Deno.UnsafePointerView(libc!.__errno_location()!);
  return errnoView.getInt32();
}

/** The address of the first byte of `bytes`, as a `bigint` to write into a C structure. */
export function addressOf(bytes: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes as Uint8Array<ArrayBuffer>)));
}

// Loaded once, when this module is, where FFI is permitted: not inside whatever first binds a
// socket (Deno's resource sanitizer would count the library against that test).
libcUnavailable();
