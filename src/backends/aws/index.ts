import type { BackendProvider } from '../backend.port.ts';
import { lazyBackend } from '../lazy-backend.ts';
import { parseAwsConfig, type AwsConfig } from './aws.config.ts';

/** AWS Secrets Manager (ADR 0063). */
export const awsSecretsManagerProvider: BackendProvider<AwsConfig> = {
  name: 'awsSecretsManager',
  parseConfig: parseAwsConfig,
  // The SDK loads with the first backend of this kind (ADR 0200).
  create: (config, context) => lazyBackend('awsSecretsManager', async () => new (await import('./aws.backend.ts')).AwsSecretsManagerBackend(config, context)),
};

export type { AwsConfig } from './aws.config.ts';
