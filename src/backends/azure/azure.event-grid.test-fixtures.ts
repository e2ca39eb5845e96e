/**
 * Key Vault events as Event Grid delivers them, shaped as Microsoft documents them ("Azure Key
 * Vault as Event Grid source", "Event Grid event schema", "CloudEvents v1.0 schema with Azure Event
 * Grid", "Webhook event delivery"). Shared by the unit tests and the integration suite.
 */
const eventData = (vaultUrl: string, secretName: string, version: string): Record<string, string> => {
  const host = new URL(vaultUrl).host;
  return {
    Id: `https://${host}/secrets/${secretName}/${version}`,
    VaultName: host.split('.')[0] ?? host,
    ObjectType: 'Secret',
    ObjectName: secretName,
    Version: version,
    NBF: '1559081980',
    EXP: '1559082102',
  };
};

const topic = (vaultUrl: string): string =>
  `/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/${new URL(vaultUrl).host.split('.')[0] ?? ''}`;

/** An Event Grid schema batch (a JSON array) of one Key Vault event. */
export function gridSecretEvent(vaultUrl: string, secretName: string, eventType = 'Microsoft.KeyVault.SecretNewVersionCreated', version = 'ee059b2bb5bc48398a53b168c6cdcb10'): unknown[] {
  return [
    {
      id: '00eccf70-95a7-4e7c-8299-2eb17ee9ad64',
      topic: topic(vaultUrl),
      subject: secretName,
      eventType,
      eventTime: '2026-12-06T06:30:33.1036736Z',
      data: eventData(vaultUrl, secretName, version),
      dataVersion: '1',
      metadataVersion: '1',
    },
  ];
}

/** One CloudEvents 1.0 Key Vault event (content type `application/cloudevents+json`). */
export function cloudSecretEvent(vaultUrl: string, secretName: string, version = 'ee059b2bb5bc48398a53b168c6cdcb10'): Record<string, unknown> {
  return {
    id: '00eccf70-95a7-4e7c-8299-2eb17ee9ad64',
    source: topic(vaultUrl),
    subject: secretName,
    type: 'Microsoft.KeyVault.SecretNewVersionCreated',
    time: '2026-12-06T06:30:33.1036736Z',
    data: eventData(vaultUrl, secretName, version),
    specversion: '1.0',
  };
}

/** The Event Grid schema's subscription validation (header `aeg-event-type: SubscriptionValidation`). */
export function gridValidationEvent(validationCode: string): unknown[] {
  return [
    {
      id: '2d1781af-3a4c-4d7c-bd0c-e34b19da4e66',
      topic: '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.EventGrid/systemTopics/kv',
      subject: '',
      data: { validationCode, validationUrl: 'https://rp-eastus2.eventgrid.azure.net:553/eventsubscriptions/sub/validate?id=x&t=y' },
      eventType: 'Microsoft.EventGrid.SubscriptionValidationEvent',
      eventTime: '2026-12-06T06:12:19.4556811Z',
      metadataVersion: '1',
      dataVersion: '1',
    },
  ];
}
