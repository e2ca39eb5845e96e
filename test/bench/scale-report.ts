/**
 * The scale tier's table (ADR 0200): every figure of issue 16 with its target, the measured value
 * and pass/fail, or why it was not measured. Printed as Markdown; the same rows go to a JSON file.
 */

export type Verdict = 'pass' | 'FAIL' | 'report' | 'not measured';

export interface Row {
  readonly figure: string;
  readonly target: string;
  /** The measured value as printed (with unit), or the reason it was not measured. */
  readonly value: string;
  readonly verdict: Verdict;
  /** Raw numbers for tooling (MiB, ms, counts). */
  readonly numbers?: Readonly<Record<string, number>>;
}

/** Every row the tier reports, in the order; the CI run checks each is present. */
export const scaleFigures = [
  'Controller RSS idle (CRDs installed, no binding), compiled JavaScript',
  'Controller RSS at N bindings, pods, unrelated Secrets + ConfigMaps',
  'Extra RSS caused by the unrelated objects',
  'N bindings created at once → all Ready',
  'One new binding → Ready, p99, with N existing',
  'API writes during idle refresh intervals (API server audit log)',
  'Backend reads per refresh interval, all controller replicas together',
  'Rotation: change detected → files updated on ≥ 4 node plugins, p99',
  'Node plugin RSS at 110 volumes',
  'Broker: mount request p99 at 100 concurrent mounts',
  'Webhook admission p99 over 500 admissions',
  '10-minute churn: RSS after churn vs before',
] as const;

export type Figure = (typeof scaleFigures)[number];

export function row(figure: Figure, target: string, value: string, verdict: Verdict, numbers?: Readonly<Record<string, number>>): Row {
  return { figure, target, value, verdict, ...(numbers === undefined ? {} : { numbers }) };
}

export function atMost(value: number, limit: number): Verdict {
  return value <= limit ? 'pass' : 'FAIL';
}

export function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

export const mib = (value: number): string => `${value.toFixed(1)} MiB`;
export const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

export function markdownTable(rows: readonly Row[]): string {
  const header = ['Figure', 'Target', 'Measured', 'Verdict'];
  const lines = rows.map((r) => [r.figure, r.target, r.value, r.verdict]);
  const esc = (cell: string): string => cell.replace(/\|/g, '\\|');
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...lines.map((cells) => `| ${cells.map(esc).join(' | ')} |`),
  ].join('\n');
}
