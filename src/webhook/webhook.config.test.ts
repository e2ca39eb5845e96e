import { describe, expect, it } from '@jest/globals';
import { ConfigError, parseControllerConfig } from '../config/controller.config.ts';
import { webhookConfigFrom, type WebhookFlags } from './webhook.config.ts';

const none: WebhookFlags = { address: undefined, certFile: undefined, keyFile: undefined, caFile: undefined, dnsNames: undefined, configurationName: undefined };

describe('webhookConfigFrom', () => {
  it('is off without --webhook-address', () => {
    expect(webhookConfigFrom(none, 'sb')).toEqual({ enabled: false });
  });

  it('defaults to a self-managed certificate for the in-cluster Service name', () => {
    expect(webhookConfigFrom({ ...none, address: '0.0.0.0:9443' }, 'sb')).toEqual({
      enabled: true,
      host: '0.0.0.0',
      port: 9443,
      tls: { kind: 'self-managed', dnsNames: ['secret-binder-webhook.sb.svc'], ipAddresses: [] },
      configurationNames: { mutating: 'secret-binder-webhook', validating: 'secret-binder-webhook' },
    });
  });

  it('reads certificate files and a configuration name', () => {
    const c = webhookConfigFrom({ ...none, address: '127.0.0.1:8443', certFile: '/c', keyFile: '/k', caFile: '/ca', configurationName: 'sb-wh' }, 'sb');
    expect(c).toMatchObject({ tls: { kind: 'files', certFile: '/c', keyFile: '/k', caFile: '/ca' }, configurationNames: { mutating: 'sb-wh', validating: 'sb-wh' } });
  });

  it('puts IP addresses of --webhook-dns-names into IP SANs', () => {
    expect(webhookConfigFrom({ ...none, address: '127.0.0.1:9443', dnsNames: 'localhost, 127.0.0.1,::1' }, 'sb')).toMatchObject({
      tls: { kind: 'self-managed', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'] },
    });
  });

  it('names inconsistent flags', () => {
    expect(webhookConfigFrom({ ...none, address: '9443' }, 'sb')).toContain('--webhook-address');
    expect(webhookConfigFrom({ ...none, address: 'h:99999' }, 'sb')).toContain('--webhook-address');
    expect(webhookConfigFrom({ ...none, address: 'h:1', certFile: '/c' }, 'sb')).toContain('--webhook-key-file');
  });
});

describe('--webhook-* flags through the controller configuration', () => {
  const env = { POD_NAMESPACE: 'ops', SECRET_BINDER_HMAC_KEY_FILE: '/keys/hmac' };

  it('is off by default and on with --webhook-address', () => {
    expect(parseControllerConfig([], env).webhook).toEqual({ enabled: false });
    expect(parseControllerConfig(['--webhook-address', '0.0.0.0:9443', '--webhook-configuration-name', 'wh'], env).webhook).toMatchObject({
      enabled: true,
      port: 9443,
      tls: { kind: 'self-managed', dnsNames: ['secret-binder-webhook.ops.svc'] },
      configurationNames: { mutating: 'wh', validating: 'wh' },
    });
  });

  it('keeps its certificate in a Secret with --webhook-tls-secret, for the validity of --managed-tls-validity', () => {
    expect(parseControllerConfig(['--webhook-address', '0.0.0.0:9443', '--webhook-tls-secret', 'sb-webhook-tls', '--managed-tls-validity', '60'], env).webhook).toMatchObject({
      tls: { kind: 'secret', secretName: 'sb-webhook-tls', dnsNames: ['secret-binder-webhook.ops.svc'], ipAddresses: [], validitySeconds: 60 },
    });
    expect(() => parseControllerConfig(['--webhook-address', '0.0.0.0:9443', '--webhook-tls-secret', 'x', '--webhook-cert-file', '/c', '--webhook-key-file', '/k'], env)).toThrow(/not both/);
  });

  it('refuses a certificate without its key', () => {
    expect(() => parseControllerConfig(['--webhook-address', '0.0.0.0:9443', '--webhook-cert-file', '/c'], env)).toThrow(ConfigError);
  });
});
