import type { BackendProvider } from '../backend.port.ts';
import { AwsSecretsManagerBackend } from './aws.backend.ts';
import { parseAwsConfig, type AwsConfig } from './aws.config.ts';

/** AWS Secrets Manager (ADR 0063). */
export const awsSecretsManagerProvider: BackendProvider<AwsConfig> = {
  name: 'awsSecretsManager',
  parseConfig: parseAwsConfig,
  create: (config, context) => new AwsSecretsManagerBackend(config, context),
};

export type { AwsConfig } from './aws.config.ts';
