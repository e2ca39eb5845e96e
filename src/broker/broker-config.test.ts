import { describe, expect, it } from '@jest/globals';
import { ConfigError, parseControllerConfig } from '../config/controller.config.ts';

const base = ['--hmac-key-file', '/k', '--namespace', 'sb-system'];

describe('broker configuration', () => {
  it('is off unless --broker-address is given', () => {
    expect(parseControllerConfig(base, {}).broker).toEqual({ enabled: false });
  });

  it('self-manages its certificate by default, with the in-cluster service name and a CA output', () => {
    const config = parseControllerConfig([...base, '--broker-address', '0.0.0.0:8443', '--broker-ca-out', '/var/run/ca.pem'], {});
    expect(config.broker).toEqual({
      enabled: true,
      host: '0.0.0.0',
      port: 8443,
      tls: { kind: 'self-managed', dnsNames: ['secret-binder-broker.sb-system.svc', 'localhost'], ipAddresses: ['127.0.0.1'], caOut: '/var/run/ca.pem' },
      nodePlugin: { namespace: 'sb-system', name: 'secret-binder-node' },
    });
  });

  it('reads certificate files and the node plugin service account from flags', () => {
    const config = parseControllerConfig(
      [...base, '--broker-address', '127.0.0.1:9443', '--broker-cert-file', '/c', '--broker-key-file', '/k2', '--node-plugin-service-account', 'kube-system:csi'],
      {},
    );
    expect(config.broker).toMatchObject({ tls: { kind: 'files', certFile: '/c', keyFile: '/k2' }, nodePlugin: { namespace: 'kube-system', name: 'csi' } });
  });

  it('keeps its certificate in a Secret with --broker-tls-secret (ADR 0155), never together with files', () => {
    const config = parseControllerConfig([...base, '--broker-address', '0.0.0.0:8443', '--broker-tls-secret', 'sb-broker-tls', '--broker-ca-out', '/ca.pem'], {});
    expect(config.broker).toMatchObject({
      tls: { kind: 'secret', secretName: 'sb-broker-tls', dnsNames: ['secret-binder-broker.sb-system.svc', 'localhost'], ipAddresses: ['127.0.0.1'], caOut: '/ca.pem', validitySeconds: 7_776_000 },
    });
    expect(() => parseControllerConfig([...base, '--broker-address', '0.0.0.0:8443', '--broker-tls-secret', 's', '--broker-cert-file', '/c', '--broker-key-file', '/k'], {})).toThrow(/not both/);
  });

  it('refuses half a certificate pair and a malformed service account', () => {
    expect(() => parseControllerConfig([...base, '--broker-address', '127.0.0.1:9443', '--broker-cert-file', '/c'], {})).toThrow(ConfigError);
    expect(() => parseControllerConfig([...base, '--broker-address', '127.0.0.1:9443', '--node-plugin-service-account', 'csi'], {})).toThrow(/namespace:name/);
  });
});
