import type { Writable } from 'node:stream';
import winston from 'winston';
import { redactDeep } from './redaction.ts';
import { scrubText } from './sanitize.ts';

/**
 * The structured logger. JSON lines through winston, behind a redaction format that every line
 * passes: no SecretValue, credential-named field, token-looking string or raw SDK error reaches a
 * transport (ADR 0050). There is no global logger: the composition root creates one and passes
 * it (or children of it) down.
 */

export const logLevels = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof logLevels)[number];

/** Structured fields of one log line. Put values in SecretValue, never in plain fields. */
export type LogFields = Readonly<Record<string, unknown>>;

export interface Logger {
  error(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  debug(message: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line (e.g. `{ binding: 'ns/name' }`). */
  child(fields: LogFields): Logger;
  isLevelEnabled(level: LogLevel): boolean;
}

export interface LoggerOptions {
  readonly level: LogLevel;
  /** Which part of the operator speaks (`controller`, `broker`, `csi`...); a field of every line. */
  readonly component: string;
  /** Where the JSON lines go; the process's stdout by default. Tests pass a capturing stream. */
  readonly stream?: Writable;
  /** Clock for the `time` field; tests pin it. */
  readonly now?: () => Date;
}

// winston's info objects carry their level and rendered line under these registered symbols
// (triple-beam's LEVEL / MESSAGE / SPLAT).
const LEVEL = Symbol.for('level');

/**
 * The winston format that redacts an info object. It builds a new object from the redacted
 * string-keyed fields and keeps winston's `level` symbol; other symbol-keyed data (`splat`
 * arguments) is dropped: we never format with it, and it may hold anything.
 */
export const redactionFormat = winston.format((info) => {
  const redacted = redactDeep({ ...info }) as Record<string, unknown>;
  const out: winston.Logform.TransformableInfo = {
    ...redacted,
    level: info.level,
    message: typeof info.message === 'string' ? scrubText(info.message) : redacted['message'],
  };
  (out as Record<symbol, unknown>)[LEVEL] = (info as Record<symbol, unknown>)[LEVEL];
  return out;
});

export function createLogger(options: LoggerOptions): Logger {
  const now = options.now ?? (() => new Date());
  const w = winston.createLogger({
    level: options.level,
    levels: { error: 0, warn: 1, info: 2, debug: 3 },
    format: winston.format.combine(
      winston.format((info) => {
        info['time'] = now().toISOString();
        return info;
      })(),
      redactionFormat(),
      winston.format.json(),
    ),
    // winston types its transports as interfaces with construct signatures, which this rule
    // cannot tell from a real constructor.
    transports: [new winston.transports.Stream({ stream: options.stream ?? process.stdout })],
    exitOnError: false,
  });
  return wrap(w, { component: options.component });
}

function wrap(w: winston.Logger, base: LogFields): Logger {
  const write = (level: LogLevel, message: string, fields: LogFields | undefined): void => {
    // Always the one-argument form: winston's (message, meta) form concatenates an error's message
    // into the line and treats `%` in messages as format tokens, dropping the fields.
    w.log({ ...base, ...fields, level, message });
  };
  return {
    error: (message, fields) => {
      write('error', message, fields);
    },
    warn: (message, fields) => {
      write('warn', message, fields);
    },
    info: (message, fields) => {
      write('info', message, fields);
    },
    debug: (message, fields) => {
      write('debug', message, fields);
    },
    child: (fields) => wrap(w, { ...base, ...fields }),
    isLevelEnabled: (level) => w.isLevelEnabled(level),
  };
}
