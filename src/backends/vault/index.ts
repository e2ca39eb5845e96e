import type { BackendProvider } from '../backend.port.ts';
import { lazyBackend } from '../lazy-backend.ts';
import { parseVaultConfig, type VaultConfig } from './vault.config.ts';

/** HashiCorp Vault / OpenBao, KV secrets engine v1 or v2 (ADRs 0060–0062). */
export const vaultProvider: BackendProvider<VaultConfig> = {
  name: 'vault',
  parseConfig: parseVaultConfig,
  // The SDK loads with the first backend of this kind (ADR 0200).
  create: (config, context) => lazyBackend('vault', async () => new (await import('./vault.backend.ts')).VaultBackend(config, context), { leasing: true }),
};

export type { VaultConfig } from './vault.config.ts';
