/** Structured fields of a log line. Never put secret values here (use keys, names, versions). */
export type LogFields = Readonly<Record<string, unknown>>;

/**
 * The logging port of the runtime: a subset of winston's logger, so the composition root can pass
 * the redacting application logger (or a child of it) straight in.
 */
export interface RuntimeLogger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

export const silentLogger: RuntimeLogger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/** A short, log-safe description of a thrown value: class name and message, no stack or body. */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause instanceof Error ? ` (cause: ${error.cause.message})` : '';
    return `${error.name}: ${error.message}${cause}`;
  }
  return String(error);
}
