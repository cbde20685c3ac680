/** The process exit codes, shared by every command. */
export const ExitCode = {
  /** Done. */
  Ok: 0,
  /** Failed; retrying may help. */
  Failed: 1,
  /** The request was invalid; nothing was written and retrying the same request cannot help. */
  InvalidRequest: 2,
  /** Cancelled (SIGINT/SIGTERM or a cancel request); nothing was left behind. */
  Cancelled: 3,
} as const;
