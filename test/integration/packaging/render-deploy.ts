/**
 * Writes deploy/secret-binder.yaml, the plain manifests, from the Helm chart:
 *   node test/integration/packaging/render-deploy.ts
 * (chart.test.ts fails when the file and the chart differ.)
 */
import { writeFileSync } from 'node:fs';
import { plainManifestPath, renderPlainManifests } from './helm.support.ts';

writeFileSync(plainManifestPath, await renderPlainManifests());
process.stdout.write(`wrote ${plainManifestPath}\n`);
