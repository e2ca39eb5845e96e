import { describe, expect, it } from '@jest/globals';
import { parseGridBody } from './azure.event-grid-event.ts';
import { cloudSecretEvent, gridSecretEvent } from './azure.event-grid.test-fixtures.ts';

describe('parseGridBody', () => {
  it('reads the vault host from the secret id, else from the vault name', () => {
    expect(parseGridBody(gridSecretEvent('https://Vault-1.vault.azure.net', 'db'), 'eventGrid')).toEqual([{ kind: 'change', vaultHost: 'vault-1.vault.azure.net', secretName: 'db' }]);
    const withoutId = cloudSecretEvent('https://vault-1.vault.azure.net', 'db');
    const data = { ...(withoutId.data as Record<string, unknown>), Id: undefined };
    expect(parseGridBody({ ...withoutId, data }, 'cloudEvents')).toEqual([{ kind: 'change', vaultHost: 'vault-1.vault.azure.net', secretName: 'db' }]);
  });

  it('calls a non-array Event Grid body, an empty batch and a CloudEvent of another spec version malformed', () => {
    expect(parseGridBody({}, 'eventGrid')).toEqual([{ kind: 'malformed' }]);
    expect(parseGridBody([], 'eventGrid')).toEqual([{ kind: 'malformed' }]);
    expect(parseGridBody({ ...cloudSecretEvent('https://v.vault.azure.net', 'db'), specversion: '0.3' }, 'cloudEvents')).toEqual([{ kind: 'malformed' }]);
  });
});
