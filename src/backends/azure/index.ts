import type { BackendProvider } from '../backend.port.ts';
import { AzureKeyVaultBackend } from './azure.backend.ts';
import { parseAzureConfig, type AzureConfig } from './azure.config.ts';

/** Azure Key Vault secrets (ADRs 0064, 0065). */
export const azureKeyVaultProvider: BackendProvider<AzureConfig> = {
  name: 'azureKeyVault',
  parseConfig: parseAzureConfig,
  create: (config, context) => new AzureKeyVaultBackend(config, context),
};

export type { AzureConfig } from './azure.config.ts';
