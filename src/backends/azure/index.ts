import type { BackendProvider } from '../backend.port.ts';
import { lazyBackend } from '../lazy-backend.ts';
import { parseAzureConfig, type AzureConfig } from './azure.config.ts';

/** Azure Key Vault secrets (ADRs 0064, 0065). */
export const azureKeyVaultProvider: BackendProvider<AzureConfig> = {
  name: 'azureKeyVault',
  parseConfig: parseAzureConfig,
  // The SDK loads with the first backend of this kind (ADR 0200).
  create: (config, context) => lazyBackend('azureKeyVault', async () => new (await import('./azure.backend.ts')).AzureKeyVaultBackend(config, context)),
};

export type { AzureConfig } from './azure.config.ts';
