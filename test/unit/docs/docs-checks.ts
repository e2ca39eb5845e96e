import { readdirSync, readFileSync, existsSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { parse } from 'yaml';

/**
 * Checks that keep the documentation true to the code (ADR 0191): condition reasons, annotations,
 * command-line flags, chart values paths, and relative links with their anchors. Each check is a
 * pure function of texts, so a test can plant a mismatch and see it found; {@link repositoryFacts}
 * reads those texts from the repository.
 */

export interface Finding {
  /** Path relative to the repository root. */
  readonly file: string;
  /** 1-based line, 0 when the finding is about the file as a whole. */
  readonly line: number;
  readonly message: string;
}

/** A Markdown document: its path relative to the root, and its text. */
export interface Doc {
  readonly path: string;
  readonly text: string;
}

export interface Facts {
  /** The closed reason list (src/api/v1alpha1/conditions.ts). */
  readonly reasons: readonly string[];
  /** Source files (without the reason list's declaration and without tests), for "is it set". */
  readonly sources: readonly Doc[];
  /** Label and annotation names the code defines, without the `secretbinder.dev/` prefix. */
  readonly annotations: readonly string[];
  /** Flags of the controller and the node plugin, without `--`, by program. */
  readonly flags: Readonly<Record<string, readonly string[]>>;
  /** The chart's values.yaml, parsed. */
  readonly values: unknown;
  /** The user documentation: README.md and docs/ (not the decision records). */
  readonly docs: readonly Doc[];
  /** The decision records (docs/decisions/): history, held to working links only. */
  readonly records: readonly Doc[];
}

const prefix = 'secretbinder.dev/';

function lineOf(text: string, index: number): number {
  return text.slice(0, index).split('\n').length;
}

/** Fenced code blocks are examples (YAML, shell): links and headings in them do not count. */
function withoutFences(text: string): string {
  return text.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, (block) => block.replace(/[^\n]/g, ' '));
}

// --- Condition reasons -------------------------------------------------------------------------

/**
 * Every reason of the closed list is set by some source file (as a quoted literal outside the list
 * itself) and named in the troubleshooting guide; every reason-looking word the guide names in a
 * `reason` column or heading exists.
 */
export function checkReasons(facts: Pick<Facts, 'reasons' | 'sources' | 'docs'>, guidePath = 'docs/troubleshooting.md'): Finding[] {
  const findings: Finding[] = [];
  const guide = facts.docs.find((d) => d.path === guidePath);
  if (guide === undefined) return [{ file: guidePath, line: 0, message: 'the troubleshooting guide is missing' }];
  const known = new Set(facts.reasons);
  for (const reason of facts.reasons) {
    const used = facts.sources.some((s) => s.text.includes(`'${reason}'`) || s.text.includes(`"${reason}"`));
    if (!used) findings.push({ file: 'src/api/v1alpha1/conditions.ts', line: 0, message: `reason ${reason} is in the closed list but no code sets it: set it where it helps, or remove it` });
    if (!new RegExp(`\`${reason}\``).test(guide.text)) findings.push({ file: guidePath, line: 0, message: `reason ${reason} is not documented in the troubleshooting guide` });
  }
  // The guide's reason tables: the first cell of a row under a header whose first cell is "Reason".
  const lines = guide.text.split('\n');
  let inReasonTable = false;
  lines.forEach((line, i) => {
    if (!line.startsWith('|')) {
      inReasonTable = false;
      return;
    }
    const first = line.split('|')[1]?.trim() ?? '';
    if (first === 'Reason') {
      inReasonTable = true;
      return;
    }
    if (!inReasonTable || /^-+$/.test(first)) return;
    for (const [, word] of first.matchAll(/`([A-Z][A-Za-z]+)`/g)) {
      if (word !== undefined && !known.has(word)) findings.push({ file: guidePath, line: i + 1, message: `\`${word}\` is not a reason the code can report` });
    }
  });
  return findings;
}

// --- Annotations and labels ----------------------------------------------------------------------

/** `secretbinder.dev/x` names in docs exist in the code, and every name the code defines is documented. */
export function checkAnnotations(facts: Pick<Facts, 'annotations' | 'docs'>): Finding[] {
  const findings: Finding[] = [];
  const defined = new Set(facts.annotations);
  const documented = new Set<string>();
  for (const doc of facts.docs) {
    for (const match of doc.text.matchAll(/(?<![/\w])secretbinder\.dev\/([a-z][a-z0-9-]*(?:\.[a-z0-9<>][a-z0-9<>-]*)?)/g)) {
      const full = match[1] ?? '';
      const name = full.split('.')[0] ?? full;
      if (name === 'v1alpha1') continue;
      documented.add(name);
      if (!defined.has(name)) findings.push({ file: doc.path, line: lineOf(doc.text, match.index), message: `${prefix}${full} is not a label or annotation the code knows` });
    }
  }
  for (const name of defined) {
    if (!documented.has(name)) findings.push({ file: 'docs', line: 0, message: `${prefix}${name} is defined in the code but no document names it` });
  }
  return findings;
}

// --- Flags ---------------------------------------------------------------------------------------

/**
 * The flags reference lists every flag of every program under a heading naming the program, and
 * nothing else: `--x` in a program's section must be one of its flags.
 */
export function checkFlags(facts: Pick<Facts, 'flags' | 'docs'>, referencePath = 'docs/configuration.md'): Finding[] {
  const reference = facts.docs.find((d) => d.path === referencePath);
  if (reference === undefined) return [{ file: referencePath, line: 0, message: 'the flags reference is missing' }];
  const findings: Finding[] = [];
  const sections = new Map<string, { start: number; text: string }>();
  const headings = [...reference.text.matchAll(/^## (.+)$/gm)];
  headings.forEach((h, i) => {
    const start = h.index + h[0].length;
    const end = headings[i + 1]?.index ?? reference.text.length;
    sections.set((h[1] ?? '').trim(), { start, text: reference.text.slice(start, end) });
  });
  for (const [program, flags] of Object.entries(facts.flags)) {
    const section = [...sections.entries()].find(([title]) => title.includes(`\`${program}\``));
    if (section === undefined) {
      findings.push({ file: referencePath, line: 0, message: `no section names \`${program}\`` });
      continue;
    }
    const [, { start, text }] = section;
    const listed = new Set<string>();
    for (const match of text.matchAll(/`--([a-z][a-z0-9-]*)/g)) {
      const flag = match[1] ?? '';
      listed.add(flag);
      if (!flags.includes(flag)) findings.push({ file: referencePath, line: lineOf(reference.text, start + match.index), message: `--${flag} is not a flag of ${program}` });
    }
    for (const flag of flags) if (!listed.has(flag)) findings.push({ file: referencePath, line: lineOf(reference.text, start), message: `--${flag} of ${program} is not documented` });
  }
  return findings;
}

// --- Chart values --------------------------------------------------------------------------------

function hasPath(values: unknown, path: readonly string[]): boolean {
  let node: unknown = values;
  for (const part of path) {
    if (node === null || typeof node !== 'object' || Array.isArray(node) || !(part in node)) return false;
    node = (node as Record<string, unknown>)[part];
  }
  return true;
}

/** Every leaf path of the values (maps descended; lists, empty maps and scalars are leaves). */
export function valueLeaves(values: unknown, path: readonly string[] = []): string[] {
  if (values === null || typeof values !== 'object' || Array.isArray(values) || (path.length > 0 && Object.keys(values).length === 0)) return [path.join('.')];
  return Object.entries(values as Record<string, unknown>).flatMap(([k, v]) => valueLeaves(v, [...path, k]));
}

/**
 * A backticked `a.b.c` (optionally `=value`) in a document whose first part is a top-level values
 * key is a values path, and must exist; every leaf of values.yaml is named in a row of the values
 * reference's tables (`| `path` |`), itself or a block around it.
 */
export function checkValues(facts: Pick<Facts, 'values' | 'docs'>, referencePath = 'docs/values.md'): Finding[] {
  const findings: Finding[] = [];
  const top = new Set(Object.keys(facts.values ?? {}));
  for (const doc of facts.docs) {
    for (const match of doc.text.matchAll(/`([a-z][A-Za-z0-9]*(?:\.[A-Za-z][A-Za-z0-9]*)+)(?:[=:][^`]*)?`/g)) {
      const parts = (match[1] ?? '').split('.');
      if (!top.has(parts[0] ?? '')) continue;
      if (!hasPath(facts.values, parts)) findings.push({ file: doc.path, line: lineOf(doc.text, match.index), message: `values path ${match[1] ?? ''} does not exist in charts/secret-binder/values.yaml` });
    }
  }
  const reference = facts.docs.find((d) => d.path === referencePath);
  if (reference === undefined) return [...findings, { file: referencePath, line: 0, message: 'the values reference is missing' }];
  for (const leaf of valueLeaves(facts.values)) {
    // A row of the table names it, or a block documented as a whole (helm-docs: a `# --` comment on
    // the map, e.g. `controller.resources`) covers its keys; a section heading covers nothing.
    const parts = leaf.split('.');
    const covered = parts.some((_, i) => reference.text.includes(`| \`${parts.slice(0, i + 1).join('.')}\` |`));
    if (!covered) findings.push({ file: referencePath, line: 0, message: `values path ${leaf} is not in the values reference` });
  }
  return findings;
}

// --- Links and anchors ---------------------------------------------------------------------------

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchorsOf(text: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const match of withoutFences(text).matchAll(/^#{1,6} (.+)$/gm)) {
    const base = slug(match[1] ?? '');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${String(n)}`);
  }
  return anchors;
}

/**
 * Every relative link `[text](target#anchor)` resolves to a file or directory of the repository,
 * and an anchor to a heading of its Markdown target. `exists` and `read` are the file system.
 */
export function checkLinks(
  docs: readonly Doc[],
  root: string,
  fs: { exists: (path: string) => boolean; read: (path: string) => string } = { exists: existsSync, read: (p) => readFileSync(p, 'utf8') },
): Finding[] {
  const findings: Finding[] = [];
  for (const doc of docs) {
    const text = withoutFences(doc.text);
    for (const match of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = match[1] ?? '';
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue;
      const [path = '', anchor] = target.split('#');
      const absolute = path === '' ? join(root, doc.path) : resolve(root, dirname(doc.path), path);
      const line = lineOf(text, match.index);
      if (!fs.exists(absolute)) {
        findings.push({ file: doc.path, line, message: `link target ${target} does not exist` });
        continue;
      }
      if (anchor !== undefined && anchor !== '' && absolute.endsWith('.md') && !anchorsOf(fs.read(absolute)).has(anchor)) {
        findings.push({ file: doc.path, line, message: `link ${target}: ${relative(root, absolute)} has no heading #${anchor}` });
      }
    }
  }
  return findings;
}

// --- The repository ------------------------------------------------------------------------------

function filesUnder(dir: string, accept: (name: string) => boolean): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return filesUnder(path, accept);
    return accept(name) ? [path] : [];
  });
}

/** The option names of every `parseArgs` options object in a source text (`'name': { type: … }`). */
export function flagsIn(source: string): string[] {
  return [...source.matchAll(/^\s*'?([a-z][a-z0-9-]*)'?: \{ type: '(?:string|boolean)'/gm)].map((m) => m[1] ?? '');
}

/** Label and annotation names written as `secretbinder.dev/x`, `${driverName}/x` or `${group}/x`. */
export function annotationsIn(source: string): string[] {
  // A name starts a string and ends it (or continues with `.<binding>`): paths such as
  // '/plugins/secretbinder.dev/csi.sock' and schema ids such as 'secretbinder.dev/audit/v1' are not names.
  const names = [...source.matchAll(/(?<=['"`])(?:secretbinder\.dev|\$\{(?:driverName|group)\})\/([a-z][a-z0-9-]*)(?=['"`]|\.\$\{)/g)].map((m) => m[1] ?? '');
  return names.filter((n) => n !== 'v1alpha1');
}

/** The reason list, read from its declaration. */
export function reasonsIn(conditionsSource: string): { reasons: string[]; withoutList: string } {
  const list = /export const reasons = \[([\s\S]*?)\] as const;/.exec(conditionsSource);
  if (list === null) throw new Error('conditions.ts: no `export const reasons = [...] as const`');
  const reasons = [...(list[1] ?? '').replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*/g, '').matchAll(/'([A-Za-z]+)'/g)].map((m) => m[1] ?? '');
  return { reasons, withoutList: conditionsSource.replace(list[0], '') };
}

export const flagSources: Readonly<Record<string, string>> = {
  controller: 'src/config/controller.config.ts',
  'node-plugin': 'src/delivery/csi/node-plugin.config.ts',
};

export function repositoryFacts(root: string): Facts {
  const read = (path: string): string => readFileSync(join(root, path), 'utf8');
  const conditionsPath = 'src/api/v1alpha1/conditions.ts';
  const { reasons, withoutList } = reasonsIn(read(conditionsPath));
  const sources = filesUnder(join(root, 'src'), (n) => n.endsWith('.ts') && !n.endsWith('.test.ts')).map((p) => {
    const path = relative(root, p);
    return { path, text: path === conditionsPath ? withoutList : readFileSync(p, 'utf8') };
  });
  const annotations = [...new Set(sources.filter((s) => !s.path.endsWith('.generated.ts')).flatMap((s) => annotationsIn(s.text)))].sort();
  const flags = Object.fromEntries(Object.entries(flagSources).map(([program, path]) => [program, flagsIn(read(path))]));
  const docPaths = ['README.md', ...filesUnder(join(root, 'docs'), (n) => n.endsWith('.md')).map((p) => relative(root, p))];
  const all = docPaths.map((path) => ({ path, text: read(path) }));
  const docs = all.filter((d) => !d.path.startsWith('docs/decisions/'));
  const records = all.filter((d) => d.path.startsWith('docs/decisions/'));
  return { reasons, sources, annotations, flags, values: parse(read('charts/secret-binder/values.yaml')) as unknown, docs, records };
}

export function checkRepository(root: string): Finding[] {
  const facts = repositoryFacts(root);
  return [...checkReasons(facts), ...checkAnnotations(facts), ...checkFlags(facts), ...checkValues(facts), ...checkLinks([...facts.docs, ...facts.records], root)];
}
