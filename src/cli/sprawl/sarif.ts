import { createHash } from 'node:crypto';
import { sprawlRules, type Severity } from './sprawl-rules.ts';
import type { Finding } from './sprawl.ts';

/**
 * Findings as a SARIF 2.1.0 log (OASIS), for code-scanning UIs: one run, the rules in the driver,
 * one result per finding with a physical location (file and line) for manifests on disk and a
 * logical one (the object) always. Messages name objects and fields, never values.
 */

const levels: Readonly<Record<Severity, 'error' | 'warning' | 'note'>> = { high: 'error', medium: 'warning', low: 'note' };
/** GitHub code scanning reads `security-severity` (0-10) to rank security results. */
const securitySeverity: Readonly<Record<Severity, string>> = { high: '8.0', medium: '5.0', low: '2.0' };

export function toSarif(findings: readonly Finding[], toolVersion: string): object {
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: {
          driver: {
            name: 'kubectl-secretbinder',
            informationUri: 'https://secretbinder.dev',
            semanticVersion: toolVersion,
            rules: sprawlRules.map((r) => ({
              id: r.id,
              name: r.name,
              shortDescription: { text: r.summary },
              fullDescription: { text: r.help },
              help: { text: r.help },
              defaultConfiguration: { level: levels[r.severity] },
              properties: { tags: ['security', 'secrets'], 'security-severity': securitySeverity[r.severity] },
            })),
          },
        },
        results: findings.map((f) => {
          const object = `${f.location.kind}/${f.location.namespace}/${f.location.name}`;
          const logical = { fullyQualifiedName: `${object}${f.location.container === undefined ? '' : `/${f.location.container}`}:${f.location.fieldPath}`, kind: 'resource' };
          const physical =
            f.location.file === undefined
              ? undefined
              : { artifactLocation: { uri: f.location.file.split('\\').join('/') }, ...(f.location.line === undefined ? {} : { region: { startLine: f.location.line } }) };
          return {
            ruleId: f.rule,
            ruleIndex: sprawlRules.findIndex((r) => r.id === f.rule),
            level: levels[f.severity],
            message: { text: `${object}${f.location.container === undefined ? '' : ` container ${f.location.container}`}: ${f.message}` },
            locations: [{ ...(physical === undefined ? {} : { physicalLocation: physical }), logicalLocations: [logical] }],
            partialFingerprints: { objectField: createHash('sha256').update(`${f.rule}\n${logical.fullyQualifiedName}`).digest('hex').slice(0, 32) },
            properties: { severity: f.severity, ...(f.suggestion === undefined ? {} : { suggestedSecretBinding: f.suggestion }) },
          };
        }),
      },
    ],
  };
}
