import type { BackendProvider } from '../backend.port.ts';
import { VaultBackend } from './vault.backend.ts';
import { parseVaultConfig, type VaultConfig } from './vault.config.ts';

/** HashiCorp Vault / OpenBao, KV secrets engine v1 or v2 (ADRs 0060–0062). */
export const vaultProvider: BackendProvider<VaultConfig> = {
  name: 'vault',
  parseConfig: parseVaultConfig,
  create: (config, context) => new VaultBackend(config, context),
};

export type { VaultConfig } from './vault.config.ts';
