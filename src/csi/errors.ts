/**
 * Errors are part of the CSI API.
 *
 * Every RPC answers either with a reply or with a gRPC status: a code from a
 * fixed list (INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, ABORTED, …) and a
 * message for humans. The CSI spec says, per RPC, which code means what, and
 * the CO acts on the code: ABORTED means "retry later", ALREADY_EXISTS means
 * "you asked for something incompatible with what is there", and so on.
 *
 * So the driver has one error type, CsiError, carrying the code. Anything
 * else thrown (a failed syscall, a bug) is turned into one by `CsiError.from`,
 * which maps errno values onto the nearest status where one is plain (a full
 * disk, a read-only one, an unreachable share), the rest to INTERNAL, and
 * never lets a stack trace reach the reply.
 */
/**
 * gRPC status codes; CSI uses them as its error vocabulary. The numbers
 * are gRPC's (its doc/statuscodes.md), the same on every implementation's
 * wire.
 */
export const Code = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type Code = (typeof Code)[keyof typeof Code];

const CODE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Code).map(([name, n]) => [n, name]));

export class CsiError extends Error {
  override readonly name = "CsiError";
  readonly code: Code;

  constructor(code: Code, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  /** The code's name as gRPC spells it, e.g. "NOT_FOUND". */
  get codeName(): string {
    return codeName(this.code);
  }

  /** Turn anything thrown into a CsiError whose message is safe to send. */
  static from(err: unknown): CsiError {
    if (err instanceof CsiError) return err;
    const errno = errnoOf(err);
    if (errno !== undefined) {
      const mapped = ERRNO_STATUS[errno] ?? Code.INTERNAL;
      const what = syscallOf(err);
      // A full disk or quota, or a read-only file system: say where, so whoever reads it knows
      // which file system to free or repair.
      const where = errno === "ENOSPC" || errno === "EDQUOT" || errno === "EROFS" ? pathOf(err) : undefined;
      const text = `${errno}${what ? ` during ${what}` : ""}: ${ERRNO_TEXT[errno] ?? "system call failed"}${where ? ` (the file system holding ${where})` : ""}`;
      // One whose code would say nothing to the CO, or the wrong thing, says at least that it was not expected.
      const message = mapped === Code.INTERNAL ? `the driver met what it did not expect (${text}); its log has the details` : text;
      return new CsiError(mapped, message, { cause: err });
    }
    return new CsiError(Code.INTERNAL, "internal error in the driver (details are in its log)", { cause: err });
  }
}

export const invalidArgument = (message: string) => new CsiError(Code.INVALID_ARGUMENT, message);
export const notFound = (message: string) => new CsiError(Code.NOT_FOUND, message);
export const alreadyExists = (message: string) => new CsiError(Code.ALREADY_EXISTS, message);
export const failedPrecondition = (message: string) => new CsiError(Code.FAILED_PRECONDITION, message);
export const aborted = (message: string) => new CsiError(Code.ABORTED, message);
export const outOfRange = (message: string) => new CsiError(Code.OUT_OF_RANGE, message);
export const resourceExhausted = (message: string) => new CsiError(Code.RESOURCE_EXHAUSTED, message);
export const unimplemented = (message: string) => new CsiError(Code.UNIMPLEMENTED, message);
export const unavailable = (message: string) => new CsiError(Code.UNAVAILABLE, message);
export const deadlineExceeded = (message: string) => new CsiError(Code.DEADLINE_EXCEEDED, message);
export const internal = (message: string) => new CsiError(Code.INTERNAL, message);

export function codeName(code: number): string {
  return CODE_NAMES[code] ?? `CODE_${code}`;
}

/** The errno string of a Node.js system error ("ENOENT"), if it is one. */
export function errnoOf(err: unknown): string | undefined {
  if (typeof err === "object" && err !== null && "code" in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === "string" && /^E[A-Z0-9]+$/.test(code)) return code;
  }
  return undefined;
}

/** The directory of the path a failed Node.js file call was given, if it says. */
function pathOf(err: unknown): string | undefined {
  if (typeof err === "object" && err !== null && "path" in err) {
    const p = (err as { path: unknown }).path;
    if (typeof p === "string" && p.startsWith("/")) return p.slice(0, p.lastIndexOf("/")) || "/";
  }
  return undefined;
}

function syscallOf(err: unknown): string | undefined {
  if (typeof err === "object" && err !== null && "syscall" in err) {
    const s = (err as { syscall: unknown }).syscall;
    if (typeof s === "string") return s;
  }
  return undefined;
}

// Where a failed syscall has an obvious CSI meaning, say it; the rest is
// INTERNAL. ENOSPC and EDQUOT are "the storage is full", which CSI spells
// RESOURCE_EXHAUSTED; a timed-out or unreachable share is UNAVAILABLE.
// ENOENT, EEXIST and ENOTDIR are not here: every RPC's NOT_FOUND and
// ALREADY_EXISTS mean something to the CO (no such volume, source or node;
// a volume of that name made otherwise), and the handlers throw them where
// they mean them. One that reaches here is a file of the driver's own gone,
// or there, under it (CreateVolume answering NOT_FOUND would tell the CO
// its content source does not exist): INTERNAL.
const ERRNO_STATUS: Record<string, Code> = {
  ENOSPC: Code.RESOURCE_EXHAUSTED,
  EDQUOT: Code.RESOURCE_EXHAUSTED,
  EACCES: Code.PERMISSION_DENIED,
  EPERM: Code.PERMISSION_DENIED,
  EROFS: Code.FAILED_PRECONDITION,
  EBUSY: Code.FAILED_PRECONDITION,
  ETIMEDOUT: Code.UNAVAILABLE,
  EHOSTUNREACH: Code.UNAVAILABLE,
  ECONNREFUSED: Code.UNAVAILABLE,
  ESTALE: Code.UNAVAILABLE,
};

const ERRNO_TEXT: Record<string, string> = {
  ENOSPC: "no space left on the device",
  EDQUOT: "quota exceeded",
  ENOENT: "no such file or directory",
  ENOTDIR: "not a directory",
  EEXIST: "already exists",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EROFS: "read-only file system",
  EBUSY: "device or resource busy",
  EIO: "input/output error",
  EINVAL: "invalid argument to a system call",
  ETIMEDOUT: "timed out",
  ESTALE: "stale file handle",
  ELOOP: "too many levels of symbolic links",
};
