import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { connect, createServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { group, resources, version } from '../../../src/api/v1alpha1/index.ts';
import { registerNeedle } from '../../harness/leak-capture.ts';
import type { OpenBaoEndpoint } from '../../harness/world-state.ts';
import { eventually } from '../support/cluster.ts';
import { readText, startDeliveryWorld, type DeliveryWorld } from '../rotation/delivery-world.ts';
import { createPkiRole, revokedSerials, worldPostgres } from './dynamic-world.ts';

/**
 * Per-pod certificates from OpenBao's PKI engine (issue 21, ADR 0263): the node plugin makes each
 * pod's key and sends only a CSR; the certificate carries the binding's templated names, chains to
 * the role's CA, and two pods complete a mutual TLS handshake with them. At two thirds of its
 * lifetime a certificate (and key) is replaced in place, without a restart; a deleted pod's
 * certificate is revoked. The key appears nowhere but the volume: not in the controller's log or audit.
 */

let world: DeliveryWorld;
let bao: OpenBaoEndpoint;

interface PodTls {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
}

async function tlsOf(targetPath: string): Promise<PodTls> {
  const [cert, key, ca] = await Promise.all(['tls.crt', 'tls.key', 'ca.crt'].map((f) => readText(join(targetPath, f))));
  if (cert === undefined || key === undefined || ca === undefined) throw new Error(`no tls files in ${targetPath}`);
  registerNeedle(key.replace(/-----[A-Z ]+-----/g, '').replace(/\s/g, ''), 'pki private key');
  return { cert, key, ca };
}

/** A mutual TLS handshake: server with A's pair, client with B's, each trusting only ca.crt. */
async function handshake(server: PodTls, client: PodTls, serverName: string): Promise<{ serverSawClient: string; clientAuthorized: boolean }> {
  let sawClient = '';
  const tlsServer = createServer({ cert: server.cert, key: server.key, ca: server.ca, requestCert: true, rejectUnauthorized: true }, (socket: TLSSocket) => {
    sawClient = socket.getPeerX509Certificate()?.subject ?? '';
    socket.end('hello');
  });
  await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
  try {
    const port = (tlsServer.address() as AddressInfo).port;
    const authorized = await new Promise<boolean>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, servername: serverName, cert: client.cert, key: client.key, ca: client.ca }, () => {
        resolve(socket.authorized);
      });
      socket.on('data', () => socket.end());
      socket.on('error', reject);
    });
    await eventually('server saw the client', () => Promise.resolve(sawClient === '' ? undefined : true), 5_000);
    return { serverSawClient: sawClient, clientAuthorized: authorized };
  } finally {
    tlsServer.close();
  }
}

describe('per-pod certificates', () => {
  beforeAll(async () => {
    ({ bao } = await worldPostgres());
    world = await startDeliveryWorld({ prefix: 'pki', nodes: 2 });
  }, 120_000);

  afterAll(async () => {
    await world.close();
  }, 120_000);

  it('signs each pod\'s own key for its templated names, chained to the CA; mutual TLS works; renewed in place; revoked with the pod', async () => {
    const role = `web-${world.suffix}`;
    await createPkiRole(bao, role, '1h');
    await world.createBinding('tls', {
      podSelector: { matchLabels: { binding: 'tls' } },
      rotation: { strategy: 'Refresh' },
      pki: {
        role,
        commonName: '{{ podName }}.{{ namespace }}.pod',
        dnsNames: ['{{ podName }}.{{ namespace }}.pod'],
        spiffeId: 'spiffe://cluster.local/ns/{{ namespace }}/sa/{{ serviceAccount }}',
        ttl: '30s',
      },
    });
    const pods = await Promise.all(['a', 'b'].map((n, i) => world.podWithVolume(`web-${n}`, 'tls', i)));
    const [a, b] = await Promise.all(pods.map(({ mount }) => tlsOf(mount.targetPath)));
    if (a === undefined || b === undefined) throw new Error('two pods expected');
    for (const [pod, tls] of [['web-a', a], ['web-b', b]] as const) {
      const cert = new X509Certificate(tls.cert);
      const ca = new X509Certificate(tls.ca);
      expect(cert.subject).toContain(`CN=${pod}.${world.ns}.pod`);
      expect(cert.subjectAltName).toContain(`DNS:${pod}.${world.ns}.pod`);
      expect(cert.subjectAltName).toContain(`URI:spiffe://cluster.local/ns/${world.ns}/sa/web`);
      expect(cert.verify(ca.publicKey)).toBe(true);
      // The key in the volume is the certificate's: made on the node, matched by OpenBao's signature.
      expect(cert.checkPrivateKey(createPrivateKey(tls.key))).toBe(true);
    }
    expect(a.key).not.toBe(b.key);
    const shaken = await handshake(a, b, `web-a.${world.ns}.pod`);
    expect(shaken.clientAuthorized).toBe(true);
    expect(shaken.serverSawClient).toContain(`CN=web-b.${world.ns}.pod`);

    // Renewal at two thirds of 30 s: a new key and certificate in the same volume, no restart.
    const firstSerial = new X509Certificate(a.cert).serialNumber;
    const renewed = await eventually('web-a certificate renewed', async () => {
      const now = await tlsOf(pods[0]?.mount.targetPath ?? '');
      return new X509Certificate(now.cert).serialNumber !== firstSerial ? now : undefined;
    }, 40_000);
    const renewedCert = new X509Certificate(renewed.cert);
    expect(renewedCert.checkPrivateKey(createPrivateKey(renewed.key))).toBe(true);
    expect(renewed.key).not.toBe(a.key);
    expect(new Date(renewedCert.validTo).getTime()).toBeGreaterThan(new Date(new X509Certificate(a.cert).validTo).getTime());
    expect((await handshake(renewed, b, `web-a.${world.ns}.pod`)).clientAuthorized).toBe(true);

    // A deleted pod's certificate is revoked.
    const bSerial = new X509Certificate((await tlsOf(pods[1]?.mount.targetPath ?? '')).cert).serialNumber.toLowerCase();
    await world.core.deleteNamespacedPod({ namespace: world.ns, name: 'web-b', gracePeriodSeconds: 0 });
    await eventually('web-b certificate revoked', async () => {
      const revoked = (await revokedSerials(bao)).map((s) => s.replace(/[^0-9a-f]/gi, '').toLowerCase());
      return revoked.includes(bSerial) ? true : undefined;
    }, 15_000);

    // The keys never reached the controller: not in its log, not in its audit.
    const logs = `${await world.controllerLog.text()}\n${await world.auditOut.text()}`;
    for (const tls of [a, b, renewed]) expect(logs).not.toContain(tls.key.split('\n')[1] ?? 'no key line');
    await world.custom.deleteNamespacedCustomObject({ group, version, plural: resources.SecretBinding.plural, namespace: world.ns, name: 'tls' });
  }, 120_000);
});
