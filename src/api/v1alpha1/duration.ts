/** Durations in our CRDs are Go duration strings (`90s`, `5m`, `1h30m`), as CEL's duration() reads them. */
export const goDurationPattern = /^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$/;

const unitMs: Readonly<Record<string, number>> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go-style duration in milliseconds; throws on anything else (the CRD schema refuses those). */
export function parseDurationMs(text: string): number {
  if (!goDurationPattern.test(text)) throw new Error(`not a duration: ${text}`);
  let total = 0;
  for (const match of text.matchAll(/([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)/g)) {
    total += Number(match[1]) * (unitMs[match[2] ?? ''] ?? Number.NaN);
  }
  return total;
}
