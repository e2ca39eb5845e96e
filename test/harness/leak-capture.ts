import { spawnSync } from 'node:child_process';
import { appendFileSync, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { dirname, join } from 'node:path';
import { worldEnvVar } from './world-state.ts';

/**
 * The leak capture of an integration run (issue #15 item 8, ADR 0177): every secret value and
 * token the suites use is registered as a *needle*, and everything the operator says is written
 * to a *haystack* in the world directory — controller log lines at debug level, audit events,
 * metrics scrapes (plus, read by the scan itself: our processes' logs, the API server's audit log
 * of Events and our resources' writes, and the Events and statuses still stored). The last test
 * of the run (test/integration/leak-scan.test.ts) searches the haystack for every needle.
 *
 * Registering is one call, `registerNeedle(value, source)`; the harness functions that write
 * values into OpenBao, moto and the Key Vault double, and those that mint tokens, already call it.
 * Outside a test world (no SECRET_BINDER_WORLD) every function here is a no-op.
 */

/** Shorter values are not needles: a 3-letter test value would match unrelated text by chance. */
export const minNeedleLength = 8;

/** `<world dir>/leak-capture`, or undefined outside a test world. */
export function captureDir(): string | undefined {
  const statePath = process.env[worldEnvVar];
  if (statePath === undefined || statePath === '' || !existsSync(statePath)) return undefined;
  const dir = join(dirname(statePath), 'leak-capture');
  mkdirSync(join(dir, 'haystack'), { recursive: true });
  return dir;
}

/** Whether this process runs inside a test world whose output is captured. */
export function captureActive(): boolean {
  return captureDir() !== undefined;
}

export interface Needle {
  readonly value: string;
  /** Who registered it (for the report of a hit), e.g. `openbao:app/db`. */
  readonly source: string;
}

/** Registers a secret value or token that must never appear in the haystack. */
export function registerNeedle(value: string, source: string): void {
  const dir = captureDir();
  if (dir === undefined || value.length < minNeedleLength) return;
  appendFileSync(join(dir, 'needles.jsonl'), `${JSON.stringify({ value, source } satisfies Needle)}\n`, { mode: 0o600 });
}

/**
 * Registers a value that may be a JSON document (a KV secret, a SecretString): the whole text and
 * every string inside it (the fields a binding's `property` picks).
 */
export function registerNeedlesIn(value: unknown, source: string): void {
  if (typeof value === 'string') {
    registerNeedle(value, source);
    try {
      const parsed: unknown = JSON.parse(value);
      if (typeof parsed === 'object' && parsed !== null) registerNeedlesIn(parsed, source);
    } catch {
      // Not JSON: the whole string was the value.
    }
  } else if (Array.isArray(value)) {
    for (const item of value) registerNeedlesIn(item, source);
  } else if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value)) registerNeedlesIn(item, `${source}.${key}`);
  }
}

/** Appends `text` to the haystack file `name` (e.g. `metrics/controller-x.txt`). */
export function captureText(name: string, text: string): void {
  const dir = captureDir();
  if (dir === undefined) return;
  const path = join(dir, 'haystack', name);
  mkdirSync(dirname(path), { recursive: true });
  appendFileSync(path, text.endsWith('\n') ? text : `${text}\n`);
}

const levelOrder: Readonly<Record<string, number>> = { error: 0, warn: 1, info: 2, debug: 3 };

/**
 * A stream for a logger created at `debug`: every line goes to the haystack file
 * `logs/<name>.jsonl`, and the lines at `forwardLevel` or more severe go on to `forward` (what the
 * test asked for). Outside a test world it is `forward` itself behind the level filter.
 */
export function teeLogToCapture(name: string, forward: Writable, forwardLevel: string): Writable {
  const dir = captureDir();
  const path = dir === undefined ? undefined : join(dir, 'haystack', 'logs', `${name}.jsonl`);
  if (path !== undefined) mkdirSync(dirname(path), { recursive: true });
  // Written asynchronously: a debug line must not block the event loop the code under test runs on.
  const file = path === undefined ? undefined : createWriteStream(path, { flags: 'a' });
  const limit = levelOrder[forwardLevel] ?? 3;
  return new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      const text = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
      file?.write(text);
      const level = /"level":"(\w+)"/.exec(text)?.[1] ?? 'error';
      if ((levelOrder[level] ?? 0) <= limit) forward.write(chunk, callback);
      else callback();
    },
  });
}

/** The registered needles (duplicates removed). */
export function readNeedles(dir: string): Needle[] {
  const path = join(dir, 'needles.jsonl');
  if (!existsSync(path)) return [];
  const seen = new Map<string, Needle>();
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    const needle = JSON.parse(line) as Needle;
    if (!seen.has(needle.value)) seen.set(needle.value, needle);
  }
  return [...seen.values()];
}

/**
 * The forms in which a value could leak: as is, JSON-escaped (inside a JSON log line or object),
 * base64 and base64url (a Secret's data, a header), URL-encoded. Forms shorter than the minimum
 * or holding a newline (grep matches line by line) are dropped; JSON-escaping covers newlines.
 */
export function needleForms(value: string): string[] {
  const forms = new Set<string>([
    value,
    JSON.stringify(value).slice(1, -1),
    Buffer.from(value).toString('base64'),
    Buffer.from(value).toString('base64url'),
    encodeURIComponent(value),
  ]);
  return [...forms].filter((f) => f.length >= minNeedleLength && !f.includes('\n') && !f.includes('\r'));
}

export interface LeakHit {
  readonly file: string;
  readonly needle: Needle;
  readonly form: string;
}

/** Every regular file under `path` (a file or a directory). */
export function filesUnder(path: string): string[] {
  if (!existsSync(path)) return [];
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path).flatMap((name) => filesUnder(join(path, name)));
}

/**
 * Searches `files` for every form of every needle with `grep -F` (Aho–Corasick: one pass over the
 * haystack whatever the number of needles). Returns one hit per (file, form).
 */
export function scanForNeedles(needles: readonly Needle[], files: readonly string[], workDir: string): LeakHit[] {
  const byForm = new Map<string, Needle>();
  for (const needle of needles) for (const form of needleForms(needle.value)) if (!byForm.has(form)) byForm.set(form, needle);
  if (byForm.size === 0 || files.length === 0) return [];
  mkdirSync(workDir, { recursive: true });
  const patterns = join(workDir, 'needle-forms.txt');
  writeFileSync(patterns, [...byForm.keys()].join('\n') + '\n', { mode: 0o600 });
  const hits: LeakHit[] = [];
  // In slices, so the command line stays short whatever the number of files.
  for (let i = 0; i < files.length; i += 200) {
    const slice = files.slice(i, i + 200);
    const result = spawnSync('grep', ['-F', '-a', '-o', '-H', '-f', patterns, '--', ...slice], { encoding: 'utf8', maxBuffer: 1 << 28 });
    if (result.status !== 0 && result.status !== 1) throw new Error(`grep failed (${String(result.status)}): ${result.stderr}`);
    const seen = new Set<string>();
    for (const line of result.stdout.split('\n')) {
      if (line === '') continue;
      // `file:match`; a file name never contains a newline, the match is one of our forms.
      const file = slice.find((f) => line.startsWith(`${f}:`));
      if (file === undefined) continue;
      const form = line.slice(file.length + 1);
      const needle = byForm.get(form);
      if (needle === undefined || seen.has(`${file}\0${form}`)) continue;
      seen.add(`${file}\0${form}`);
      hits.push({ file, needle, form });
    }
  }
  return hits;
}
