/**
 * Why a send on a path failed, in the words the path counters use. The socket layer classifies the
 * operating system's error into one of these; the engines only count them.
 */

/** Why a send failed, in the words the path counters use. */
export type SendErrorKind =
  | "refused"
  | "unreachable"
  | "not-permitted"
  | "no-address"
  | "too-large"
  | "no-buffer"
  | "other";
