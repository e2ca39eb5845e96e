import { stringify } from 'yaml';
import { CliError, exitCodes } from './cli-errors.ts';

/** The output formats every command takes; some commands add their own (dot, sarif). */
export const baseFormats = ['table', 'json', 'yaml'] as const;

/** Checks `-o` against the formats a command supports. */
export function outputFormat<const F extends string>(value: string | undefined, allowed: readonly F[]): F {
  const format = value ?? 'table';
  if (!(allowed as readonly string[]).includes(format)) {
    throw new CliError(`unsupported output format "${format}" (one of: ${allowed.join(', ')})`, exitCodes.usage);
  }
  return format as F;
}

/** Plain data as JSON or YAML (the machine-readable forms share one document shape). */
export function renderDocument(document: unknown, format: 'json' | 'yaml'): string {
  return format === 'json' ? `${JSON.stringify(document, null, 2)}\n` : stringify(document, { lineWidth: 0, aliasDuplicateObjects: false });
}

/** A kubectl-style table: upper-case headers, columns padded to their widest cell, 3 spaces apart. */
export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('   ').trimEnd();
  return [line(headers.map((h) => h.toUpperCase())), ...rows.map(line)].join('\n') + '\n';
}

/** A file mode as kubectl shows it in YAML: 4-digit octal. */
export function octalMode(mode: number): string {
  return `0${mode.toString(8).padStart(3, '0')}`;
}

/** `2026-12-06T06:00:00Z` → `5m ago` relative to now, for tables (JSON/YAML keep the timestamp). */
export function age(timestamp: string | undefined, now: Date): string {
  if (timestamp === undefined) return '-';
  const ms = now.getTime() - Date.parse(timestamp);
  if (!Number.isFinite(ms)) return '-';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${String(s)}s ago`;
  if (s < 7200) return `${String(Math.round(s / 60))}m ago`;
  if (s < 172800) return `${String(Math.round(s / 3600))}h ago`;
  return `${String(Math.round(s / 86400))}d ago`;
}
