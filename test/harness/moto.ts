import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts, motoServerBinary } from './backend-tools.ts';
import { startProcess, waitReady } from './process.ts';
import type { ProcessRecord } from './process.ts';
import type { MotoEndpoint } from './world-state.ts';

/**
 * moto in server mode for the test world: AWS Secrets Manager (and every other service moto
 * mocks) over plain HTTP on 127.0.0.1. moto accepts any credentials; fixed fake ones keep SDK
 * clients from searching the machine for real ones.
 */

export const motoRegion = 'us-east-1';
export const motoAccessKeyId = 'AKIASECRETBINDERTEST';
export const motoSecretAccessKey = 'secret-binder-test-secret-access-key';

export async function startMoto(opts: {
  readonly dir: string;
  readonly logDir: string;
}): Promise<{ record: ProcessRecord; endpoint: MotoEndpoint }> {
  const dir = join(opts.dir, 'moto');
  mkdirSync(dir, { recursive: true });
  const port = await freePorts(1);
  const endpoint = `http://127.0.0.1:${port}`;
  const record = startProcess({
    name: 'moto',
    command: motoServerBinary(),
    args: ['--host', '127.0.0.1', '--port', String(port)],
    // Unbuffered, so the log shows startup errors at once; HOME keeps moto's files in the world.
    env: { HOME: dir, PYTHONUNBUFFERED: '1' },
    cwd: dir,
    logDir: opts.logDir,
    // moto's own API: answers once the WSGI app is loaded (it lazy-loads each AWS service backend).
    readiness: { kind: 'http', url: `${endpoint}/moto-api/`, okStatuses: [200] },
  });
  await waitReady(record, 60_000);
  return {
    record,
    endpoint: { endpoint, region: motoRegion, accessKeyId: motoAccessKeyId, secretAccessKey: motoSecretAccessKey },
  };
}
