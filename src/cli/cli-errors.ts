import { KubeApiError } from '../runtime/kube-api-error.ts';

/**
 * The exit codes of `kubectl-secretbinder`, for scripts (docs/cli.md lists them). Every failure is
 * one line on stderr and one of these codes; nothing is thrown past main.
 */
export const exitCodes = {
  /** The command did what it was asked. */
  ok: 0,
  /** The API server could not be reached, or something unexpected failed. */
  failure: 1,
  /** Bad usage or bad input: unknown flag, malformed reference, invalid binding or manifest file. */
  usage: 2,
  /** The object named does not exist. */
  notFound: 3,
  /** The caller's credentials do not allow the read or write. */
  forbidden: 4,
  /** The command ran and its check failed: findings at or above `--fail-on`, stale consumers with `--stale --fail`. */
  checkFailed: 5,
  /** `refresh`/`restart` gave up waiting for the consumers. */
  timeout: 6,
} as const;
export type ExitCode = (typeof exitCodes)[keyof typeof exitCodes];

/** A failure the user should read: one line, an exit code. */
export class CliError extends Error {
  readonly exitCode: ExitCode;

  constructor(message: string, exitCode: ExitCode) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

/**
 * An API error as kubectl words it (`Error from server (NotFound): …`), with its exit code. The
 * message is the API server's Status message: it names objects, never their data.
 */
export function apiFailure(error: unknown, what: string): CliError {
  if (error instanceof CliError) return error;
  if (!(error instanceof KubeApiError)) {
    return new CliError(`${what}: ${error instanceof Error ? error.message : String(error)}`, exitCodes.failure);
  }
  if (error.code === 0) return new CliError(`cannot reach the API server (${what}): ${error.message}`, exitCodes.failure);
  const detail = error.message.replace(/^[A-Z]+ \S+: \d+ /, '');
  if (error.code === 404) return new CliError(`Error from server (NotFound): ${what}: ${detail}`, exitCodes.notFound);
  if (error.code === 403 || error.code === 401) {
    return new CliError(`Error from server (${error.code === 403 ? 'Forbidden' : 'Unauthorized'}): ${detail}`, exitCodes.forbidden);
  }
  return new CliError(`Error from server (${error.reason ?? String(error.code)}): ${what}: ${detail}`, exitCodes.failure);
}
