import { describe, expect, it } from '@jest/globals';
import { NodePluginConfigError, parseByteQuantity, parseNodePluginConfig } from './node-plugin.config.ts';

describe('parseNodePluginConfig', () => {
  it('applies defaults and takes the node name from NODE_NAME', () => {
    expect(parseNodePluginConfig(['--broker-url', 'https://secret-binder-broker.secret-binder.svc:8443'], { NODE_NAME: 'node-a' })).toEqual({
      nodeName: 'node-a',
      csiSocket: '/csi/csi.sock',
      registrationSocket: '/registration/secretbinder.dev-reg.sock',
      kubeletCsiSocket: '/var/lib/kubelet/plugins/secretbinder.dev/csi.sock',
      brokerUrl: 'https://secret-binder-broker.secret-binder.svc:8443',
      brokerCaFile: null,
      tokenFile: '/var/run/secrets/secretbinder.dev/token',
      tmpfsSizeBytes: 4 * 1024 * 1024,
      changesWaitSeconds: 30,
      logLevel: 'info',
      healthAddress: null,
    });
  });

  it('reads flags, and an empty registration socket turns registration off', () => {
    const config = parseNodePluginConfig(
      ['--node-name=n1', '--broker-url=http://127.0.0.1:9443', '--registration-socket=', '--tmpfs-size=512Ki', '--changes-wait-seconds=5', '--log-level=debug'],
      {},
    );
    expect(config).toMatchObject({ nodeName: 'n1', registrationSocket: null, tmpfsSizeBytes: 512 * 1024, changesWaitSeconds: 5, logLevel: 'debug' });
    expect(parseNodePluginConfig(['--node-name=n1', '--broker-url=https://b', '--health-address=0.0.0.0:9809'], {}).healthAddress).toEqual({ host: '0.0.0.0', port: 9809 });
  });

  it('refuses what would be unsafe or meaningless', () => {
    const bad: string[][] = [
      ['--broker-url=https://b'],
      ['--node-name=n', '--broker-url=http://broker.example:80'],
      ['--node-name=n', '--broker-url=not a url'],
      ['--node-name=n', '--broker-url=https://b', '--tmpfs-size=10Ti'],
      ['--node-name=n', '--broker-url=https://b', '--tmpfs-size=1'],
      ['--node-name=n', '--broker-url=https://b', '--changes-wait-seconds=600'],
      ['--node-name=n', '--broker-url=https://b', '--log-level=trace'],
      ['--node-name=n', '--broker-url=https://b', '--unknown'],
      ['--node-name=n', '--broker-url=https://b', '--health-address=9809'],
      ['--node-name=n', '--broker-url=https://b', '--health-address=0.0.0.0:70000'],
    ];
    for (const argv of bad) {
      expect(() => parseNodePluginConfig(argv, {})).toThrow(NodePluginConfigError);
    }
  });

  it('parses byte quantities', () => {
    expect(parseByteQuantity('4Mi')).toBe(4194304);
    expect(parseByteQuantity('1k')).toBe(1000);
    expect(parseByteQuantity('123')).toBe(123);
    expect(() => parseByteQuantity('4 Mi')).toThrow(NodePluginConfigError);
  });
});
