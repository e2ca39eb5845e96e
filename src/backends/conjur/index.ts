import type { BackendProvider } from '../backend.port.ts';
import { ConjurBackend } from './conjur.backend.ts';
import { parseConjurConfig, type ConjurConfig } from './conjur.config.ts';

/** CyberArk Conjur variables (ADR 0243); verified only against the project's Conjur API double. */
export const conjurProvider: BackendProvider<ConjurConfig> = {
  name: 'conjur',
  parseConfig: parseConjurConfig,
  create: (config, context) => new ConjurBackend(config, context),
};

export type { ConjurConfig } from './conjur.config.ts';
