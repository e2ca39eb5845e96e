/**
 * Generates the chart's values reference with helm-docs (ADR 0232), the one generator of it: the
 * chart's README (`charts/secret-binder/README.md` from `README.md.gotmpl`) and `docs/values.md`
 * (from `values.md.gotmpl`), both tables rendered by `values-table.gotmpl` from the `# --` comments
 * of `values.yaml`, in file order. helm-docs is built from its Go module by
 * test/harness/install/go-tools.sh (run here when the cache lacks it).
 *
 *   node src/api/codegen/gen-values-doc.ts           write both files
 *   node src/api/codegen/gen-values-doc.ts --check   exit 1 when either drifted (CI)
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../../..');
const chartDir = join(root, 'charts/secret-binder');
const cache = process.env.SECRET_BINDER_CACHE ?? join(homedir(), '.cache', 'secret-binder');
const version = process.env.SECRET_BINDER_HELM_DOCS_VERSION ?? 'v1.14.2';
const helmDocs = join(cache, 'helm-docs', version, 'bin', 'helm-docs');
const table = relative(chartDir, join(here, 'values-table.gotmpl'));

/** Each output and the main template it is rendered from (paths relative to the chart, as helm-docs takes them). */
const outputs = [
  { file: join(chartDir, 'README.md'), template: 'README.md.gotmpl' },
  { file: join(root, 'docs/values.md'), template: relative(chartDir, join(here, 'values.md.gotmpl')) },
];

function render(template: string): string {
  return execFileSync(
    helmDocs,
    ['--dry-run', '--log-level', 'warning', '--chart-search-root', '.', '--sort-values-order', 'file', '--template-files', template, '--template-files', table],
    { cwd: chartDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  );
}

function main(): void {
  if (!existsSync(helmDocs)) execFileSync('bash', [join(root, 'test/harness/install/go-tools.sh')], { stdio: 'inherit' });
  const check = process.argv.includes('--check');
  let drifted = false;
  for (const { file, template } of outputs) {
    const expected = render(template);
    const current = existsSync(file) ? readFileSync(file, 'utf8') : '';
    if (current === expected) continue;
    if (check) {
      process.stderr.write(`${relative(root, file)} is out of date: run \`npm run gen:docs\`\n`);
      drifted = true;
    } else {
      writeFileSync(file, expected);
      process.stdout.write(`${relative(root, file)}: written\n`);
    }
  }
  if (drifted) process.exit(1);
}

main();
