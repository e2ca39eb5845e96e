import { statSync } from 'node:fs';
import { CreateSecretCommand, DeleteSecretCommand, PutSecretValueCommand, ResourceExistsException } from '@aws-sdk/client-secrets-manager';
import type { Registry } from 'prom-client';
import { writeKvSecret } from '../../harness/openbao.ts';
import { startFaultProxy, type FaultProxy } from '../../harness/fault-proxy.ts';
import { doubleStats } from '../../harness/keyvault-double/stats-client.ts';
import { currentWorld } from '../../harness/world-state.ts';
import { writerClient } from '../../conformance/azure.server.ts';
import { motoAdmin } from '../backends/backends.support.ts';
import { baoResponses, credentialsSecret, metricSum } from './delivery-world.ts';

/**
 * The world's backends as the rotation suites use them: the SecretBackend a delivery world
 * declares, how a test writes a new value, and the backend's own witness of the calls made for a
 * key (OpenBao's audit log, a counting proxy in front of moto, the Key Vault double's counts).
 */

export const rotationBackendKinds = ['openbao', 'moto', 'azureKeyVault'] as const;
export type RotationBackendKind = (typeof rotationBackendKinds)[number];

/** Backend calls made for one key, as the backend saw them. */
export interface KeyCalls {
  /** Reads that returned the value. */
  readonly valueReads: number;
  /** Cheap version checks (Key Vault has none: see {@link startRotationBackend}). */
  readonly versionChecks: number;
}

export interface RotationBackend {
  readonly kind: RotationBackendKind;
  /** The SecretBackend's `spec`; its auth reads the Secret `credentialsSecret` of its namespace. */
  readonly spec: Record<string, unknown>;
  readonly credentials: Record<string, string>;
  /** The fault proxy between the controller and the backend, where there is one (moto). */
  readonly fault?: FaultProxy;
  /** A key name this backend accepts (Key Vault: letters, digits and dashes). */
  key(name: string): string;
  /** Writes `fields` as the key's new value (a JSON document; bindings pick a property). */
  write(key: string, fields: Readonly<Record<string, string>>): Promise<void>;
  /**
   * Counts since the backend was started; `controller` is the controller's metric registry (Key
   * Vault: its version checks are reads too, told apart by the controller's own count).
   */
  calls(key: string, controller: Registry): Promise<KeyCalls>;
  close(): Promise<void>;
}

export async function startRotationBackend(kind: RotationBackendKind): Promise<RotationBackend> {
  const world = currentWorld();
  switch (kind) {
    case 'openbao': {
      const bao = world.openbao;
      if (bao === undefined) throw new Error('the world has no OpenBao');
      const from = statSync(bao.auditLogPath).size;
      const count = (key: string, kindOf: 'data' | 'metadata'): number =>
        baoResponses(bao, from).filter((e) => e.request?.operation === 'read' && e.request.path === `${bao.kvMount}/${kindOf}/${key}`).length;
      return {
        kind,
        spec: { vault: { address: bao.address, mount: bao.kvMount, kvVersion: 2, auth: { token: { secretRef: { name: credentialsSecret, key: 'token' } } } } },
        credentials: { token: bao.rootToken },
        key: (name) => name,
        write: async (key, fields) => {
          await writeKvSecret(bao, key, fields);
        },
        calls: (key) => Promise.resolve({ valueReads: count(key, 'data'), versionChecks: count(key, 'metadata') }),
        close: () => Promise.resolve(),
      };
    }
    case 'moto': {
      const moto = world.moto;
      if (moto === undefined) throw new Error('the world has no moto');
      const admin = motoAdmin(moto);
      const proxy = await startFaultProxy({ target: moto.endpoint, maxLifetimeMs: 900_000 });
      const written = new Set<string>();
      const count = (key: string, operations: readonly string[]): number =>
        proxy.requests().filter((r) => operations.includes(r.target.replace(/^secretsmanager\./, '')) && r.secretIds.includes(key)).length;
      return {
        kind,
        spec: { awsSecretsManager: { region: moto.region, endpoint: proxy.url, auth: { staticKeys: { secretRef: { name: credentialsSecret } } } } },
        credentials: { accessKeyId: moto.accessKeyId, secretAccessKey: moto.secretAccessKey },
        fault: proxy,
        key: (name) => name,
        write: async (key, fields) => {
          const SecretString = JSON.stringify(fields);
          written.add(key);
          try {
            await admin.send(new CreateSecretCommand({ Name: key, SecretString }));
          } catch (error) {
            if (!(error instanceof ResourceExistsException)) throw error;
            await admin.send(new PutSecretValueCommand({ SecretId: key, SecretString }));
          }
        },
        calls: (key) => Promise.resolve({ valueReads: count(key, ['GetSecretValue', 'BatchGetSecretValue']), versionChecks: count(key, ['DescribeSecret']) }),
        close: async () => {
          for (const key of written) await admin.send(new DeleteSecretCommand({ SecretId: key, ForceDeleteWithoutRecovery: true })).catch(() => undefined);
          admin.destroy();
          await proxy.stop();
        },
      };
    }
    case 'azureKeyVault': {
      const vault = world.azureKeyVault;
      if (vault?.kind !== 'double') throw new Error('the world has no Key Vault double (ADR 0070)');
      const writer = writerClient(vault);
      const start = await doubleStats(vault);
      return {
        kind,
        spec: {
          azureKeyVault: {
            vaultUrl: vault.vaultUrl,
            caBundle: Buffer.from(vault.caPem).toString('base64'),
            auth: {
              clientSecret: {
                tenantId: vault.tenantId,
                clientId: vault.clientId,
                secretRef: { name: credentialsSecret, key: 'client-secret' },
                authorityHost: vault.authorityHost,
              },
            },
          },
        },
        credentials: { 'client-secret': vault.clientSecret },
        key: (name) => name.replace(/[^A-Za-z0-9-]/g, '-'),
        write: async (key, fields) => {
          await writer.setSecret(key, JSON.stringify(fields), { contentType: 'application/json' });
        },
        calls: async (key, controller) => {
          // Key Vault has no version read without the value: the provider's check is a GET of the
          // latest version. The double counts every GET; the controller counts its checks (the
          // only Key Vault secret it checks here is `key`).
          const gets = ((await doubleStats(vault)).secretReads[key] ?? 0) - (start.secretReads[key] ?? 0);
          const checks = await metricSum(controller, 'secretbinder_backend_requests_total', { provider: 'azureKeyVault', operation: 'versions' });
          return { valueReads: gets - checks, versionChecks: checks };
        },
        close: () => Promise.resolve(),
      };
    }
  }
}
