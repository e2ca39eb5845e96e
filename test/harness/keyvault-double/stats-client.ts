import { request } from 'node:https';
import type { KeyVaultDoubleEndpoint } from '../world-state.ts';
import type { Stats } from './double-control.ts';

/** The double's request counts (`GET <controlUrl>/stats`), TLS verified against its CA. */
export function doubleStats(endpoint: KeyVaultDoubleEndpoint): Promise<Stats> {
  return new Promise<Stats>((resolve, reject) => {
    const req = request(`${endpoint.controlUrl}/stats`, { method: 'GET', ca: endpoint.caPem, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`keyvault double stats: HTTP ${String(res.statusCode)}`));
        else resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Stats);
      });
    });
    req.on('timeout', () => req.destroy(new Error('keyvault double stats: no answer within 10 s')));
    req.on('error', reject);
    req.end();
  });
}
