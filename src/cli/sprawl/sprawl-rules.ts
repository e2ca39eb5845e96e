/**
 * The rules of `audit sprawl`: what counts as a secret living outside secret-binder, how severe it
 * is, and the checks on one environment variable's name and value. The value is only tested here;
 * no finding carries it, nor any part of it (not even a masked fragment).
 */

export const severities = ['high', 'medium', 'low'] as const;
export type Severity = (typeof severities)[number];

/** Whether `severity` is at or above `threshold` (`--fail-on`). */
export function atLeast(severity: Severity, threshold: Severity): boolean {
  return severities.indexOf(severity) <= severities.indexOf(threshold);
}

export interface SprawlRule {
  readonly id: string;
  readonly name: string;
  readonly severity: Severity;
  readonly summary: string;
  readonly help: string;
}

/** The closed list of rules, in the order SARIF lists them. */
export const sprawlRules = [
  {
    id: 'SBS001',
    name: 'KnownTokenInEnv',
    severity: 'high',
    summary: 'An environment variable holds a value in a known secret format',
    help: 'The value matches a known credential format (cloud access key, private key, JWT, provider token, connection string with a password). It is stored in etcd and every manifest copy in clear text. Move it to the secret store and deliver it as a file with a SecretBinding.',
  },
  {
    id: 'SBS002',
    name: 'SecretNamedEnvWithLiteral',
    severity: 'high',
    summary: 'An environment variable named like a secret has a literal value',
    help: 'A variable named *_PASSWORD, *_TOKEN, *_SECRET, *_KEY (…) is set to a literal in the manifest. Move the value to the secret store and deliver it as a file with a SecretBinding.',
  },
  {
    id: 'SBS003',
    name: 'HighEntropyEnvValue',
    severity: 'medium',
    summary: 'An environment variable holds a random-looking value',
    help: 'The value has the character entropy of a generated credential. If it is one, move it to the secret store and deliver it as a file with a SecretBinding.',
  },
  {
    id: 'SBS004',
    name: 'SecretKeyRefEnv',
    severity: 'medium',
    summary: 'A Kubernetes Secret key is put in the process environment (secretKeyRef)',
    help: 'The value sits in a Kubernetes Secret (etcd) and in the environment of the process, where child processes, crash dumps and debug endpoints see it. Deliver it as an in-memory file with a SecretBinding instead.',
  },
  {
    id: 'SBS005',
    name: 'SecretEnvFrom',
    severity: 'medium',
    summary: 'A whole Kubernetes Secret is put in the process environment (envFrom.secretRef)',
    help: 'Every key of the Secret becomes an environment variable. Deliver the keys the container needs as in-memory files with a SecretBinding instead.',
  },
  {
    id: 'SBS006',
    name: 'UnmanagedSecretVolume',
    severity: 'low',
    summary: 'A Kubernetes Secret is mounted as a volume, outside secret-binder',
    help: 'The value lives in etcd as a Kubernetes Secret. Keep it in the secret store and mount it with a SecretBinding (in-memory files, only for the listed containers, rotated in place).',
  },
  {
    id: 'SBS007',
    name: 'UnreferencedSecret',
    severity: 'low',
    summary: 'A Kubernetes Secret that no workload references',
    help: 'No Pod, workload or secret-binder backend of the namespace uses this Secret (judged from metadata only). Delete it if it is stale, or move it to the secret store.',
  },
  {
    id: 'SBS008',
    name: 'SecretManifestWithData',
    severity: 'high',
    summary: 'A Kubernetes Secret manifest carries its values in a file',
    help: 'The values are in the manifest (base64 is not encryption) and in every copy of the repository or chart output. Keep them in the secret store and deliver them with a SecretBinding.',
  },
] as const satisfies readonly SprawlRule[];
export type RuleId = (typeof sprawlRules)[number]['id'];

export function ruleById(id: RuleId): SprawlRule {
  const rule = sprawlRules.find((r) => r.id === id);
  if (rule === undefined) throw new Error(`unknown rule ${id}`);
  return rule;
}

/** Known credential formats, by name (the name goes into the finding, never the match). */
const knownFormats: readonly { readonly name: string; readonly pattern: RegExp }[] = [
  { name: 'AWS access key id', pattern: /\b(AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b/ },
  { name: 'private key', pattern: /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----/ },
  { name: 'JSON Web Token', pattern: /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}/ },
  { name: 'GitHub token', pattern: /\b(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b/ },
  { name: 'GitLab token', pattern: /\bglpat-[A-Za-z0-9_-]{20,}\b/ },
  { name: 'Slack token', pattern: /\bxox[abposr]-[A-Za-z0-9-]{10,}\b/ },
  { name: 'Stripe secret key', pattern: /\b[sr]k_live_[A-Za-z0-9]{20,}\b/ },
  { name: 'Google API key', pattern: /\bAIza[0-9A-Za-z_-]{35}\b/ },
  { name: 'Azure storage account key', pattern: /AccountKey=[A-Za-z0-9+/]{40,}={0,2}/ },
  { name: 'connection string with a password', pattern: /\b[a-z][a-z0-9+.-]*:\/\/[^\s:/@]+:[^\s@/]+@[^\s/]+/i },
];

/** The name of the known format `value` is in, if any. */
export function knownFormatOf(value: string): string | undefined {
  return knownFormats.find((f) => f.pattern.test(value))?.name;
}

const secretNameSuffix = /(?:^|_)(?:PASSWORD|PASSWD|PASS|PWD|TOKEN|SECRET|SECRET_KEY|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CLIENT_SECRET|CREDENTIALS?|AUTH|KEY)$/i;
const notSecretNames = /PUBLIC|(?:^|_)(?:FILE|PATH|DIR|NAME|ID|URL|URI|HOST|PORT|USER|USERNAME|TTL|TIMEOUT|LENGTH|SIZE|PREFIX|HEADER|TYPE|MODE|ENABLED)(?:_|$)/i;

/** Whether an environment variable's name suggests it carries a secret. */
export function secretLikeName(name: string): boolean {
  return secretNameSuffix.test(name) && !notSecretNames.test(name);
}

/**
 * Whether a literal is plausibly a value rather than a placeholder or a setting: not empty, not a
 * number or boolean, not a path, not a `$(VAR)` reference.
 */
export function plausibleSecretLiteral(value: string): boolean {
  const v = value.trim();
  if (v.length < 4) return false;
  if (/^(true|false|yes|no|on|off|null|none)$/i.test(v)) return false;
  if (/^[0-9.]+$/.test(v)) return false;
  if (v.startsWith('/') || v.startsWith('./')) return false;
  if (/^\$\([A-Za-z_][A-Za-z0-9_]*\)$/.test(v) || /^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/.test(v)) return false;
  return true;
}

/** Shannon entropy of the characters of `value`, in bits per character. */
export function entropy(value: string): number {
  const counts = new Map<string, number>();
  for (const c of value) counts.set(c, (counts.get(c) ?? 0) + 1);
  let bits = 0;
  for (const n of counts.values()) {
    const p = n / value.length;
    bits -= p * Math.log2(p);
  }
  return bits;
}

/**
 * The entropy rule: at least 20 characters from a token alphabet (no spaces; not a URL or path)
 * with more than 4.2 bits per character — above what hex digests (≤ 4) and UUIDs reach, where
 * random base64/base62 strings land.
 */
export function randomLooking(value: string): boolean {
  const v = value.trim();
  if (v.length < 20 || v.length > 4096) return false;
  if (!/^[A-Za-z0-9+/=_\-.~!@#%^&*]+$/.test(v)) return false;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(v) || v.includes('/')) return false;
  if (!/[0-9]/.test(v) || !/[a-z]/.test(v) || !/[A-Z]/.test(v)) return false;
  return entropy(v) > 4.2;
}

/** The rule one literal environment variable breaks, if any, with what it found (never the value). */
export function checkEnvLiteral(name: string, value: string): { readonly rule: RuleId; readonly what: string } | undefined {
  const format = knownFormatOf(value);
  if (format !== undefined) return { rule: 'SBS001', what: `holds a value in a known secret format (${format})` };
  if (secretLikeName(name) && plausibleSecretLiteral(value)) return { rule: 'SBS002', what: 'is named like a secret and set to a literal' };
  if (randomLooking(value)) return { rule: 'SBS003', what: 'holds a random-looking literal' };
  return undefined;
}
