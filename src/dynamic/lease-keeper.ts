import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import { reasonForError, type AnyBackend, type Reason, type SecretBinding } from '../api/v1alpha1/index.ts';
import { BackendError } from '../backends/backend.port.ts';
import type { LeasingBackend } from '../backends/leasing.port.ts';
import { backendQueueKey } from '../controllers/backend/backend.reconciler.ts';
import type { BackendPool } from '../controllers/backend/backend-pool.ts';
import { checkAccess } from '../controllers/binding/access-rules.ts';
import { namedBackends } from '../controllers/binding/binding-backends.ts';
import type { BindingContent } from '../controllers/binding/binding-content.ts';
import { isConsumer } from '../controllers/binding/consumers.ts';
import { defaultBackend } from '../delivery/files/file-set.ts';
import { contentHmac } from '../observability/content-hmac.ts';
import type { Logger } from '../observability/logger.ts';
import { SecretValue } from '../observability/secret-value.ts';
import type { CacheReader } from '../runtime/object-store.ts';
import type { CertificateRequest } from '../broker/broker.protocol.ts';
import { certificateNames, consumerOf, MissingFieldError, parseRecord, recordKey, renderDynamicFiles, serializeRecord, type LeaseRecord } from './lease-record.ts';

/** What the keeper tells the delivery side: which hash a pod's volume should hold, and who holds what. */
export interface DeliveryState {
  /** Records the hash a pod's volume of a dynamic binding should hold, and wakes its waiters when it moved. */
  expect(namespace: string, binding: string, pod: { readonly name: string; readonly uid: string }, hash: string): void;
  /** The hash the pod's node last reported (or was served); undefined when unknown. */
  heldBy(namespace: string, binding: string, podUid: string): string | undefined;
}

/** A pki publish without a CSR: the names to request, and the hash a volume holding a current certificate has. */
export interface CertificateRequestAnswer {
  readonly kind: 'certificateRequest';
  readonly request: CertificateRequest;
  /** '' when the pod has no current certificate (or it is due for renewal). */
  readonly currentHash: string;
}

export interface LeaseKeeperDeps {
  readonly clusterBackends: CacheReader<AnyBackend>;
  readonly namespacedBackends: CacheReader<AnyBackend>;
  readonly namespaces: CacheReader<V1Namespace>;
  readonly pool: BackendPool;
  readonly contentKey: SecretValue;
  readonly delivery: DeliveryState;
  readonly logger: Logger;
  /** Epoch milliseconds (lease times are wall-clock times, shared through the records). */
  readonly now?: () => number;
  /** How long a record whose pod is not (yet) in the cache is left alone: the broker may have issued it a moment ago. */
  readonly newRecordGraceMs?: number;
}

/** The outcome of one lifecycle pass over a binding. */
export interface LeaseReconcile {
  /** The leases the binding holds now. */
  readonly leases: number;
  /** When the next renewal, re-issue or revocation is due (ms from now); undefined when nothing is. */
  readonly nextDueMs: number | undefined;
  /** A keyed HMAC of the binding's dynamic spec: what status shows as its content hash. */
  readonly hmac: string;
}

type Opened = { readonly ok: true; readonly leasing: LeasingBackend } | { readonly ok: false; readonly reason: Reason; readonly message: string; readonly retry: boolean };

/** A re-issue happens this long before the lease's end at the latest (a third of the TTL, at least). */
const minReissueLeadMs = 5_000;

/**
 * Dynamic secrets (issue 21, ADRs 0260–0262): issues a leased credential per consumer (a pod, or
 * the binding's workload), serves it to the broker, and on the leader keeps it alive — renewal at
 * two thirds of the TTL, a new credential before the maximum TTL (delivered like any content
 * change), revocation when its pod or binding is gone. What was issued is recorded in the backend
 * itself (its KV mount), never in etcd, so any replica serves the same credential and a restarted
 * controller finds every lease it issued: none is orphaned, none revoked while its pod lives.
 */
export class LeaseKeeper {
  readonly #deps: LeaseKeeperDeps;
  readonly #now: () => number;
  /** Records this replica knows, by record key. The store is the truth; this spares reads. */
  readonly #records = new Map<string, LeaseRecord>();
  /** Bindings whose records were listed from the store since this replica started (by `<ns>/<name>`). */
  readonly #listed = new Set<string>();
  /** One issue per record key at a time (concurrent publishes of one consumer share it). */
  readonly #issuing = new Map<string, Promise<LeaseRecord>>();
  /** Deleted dynamic bindings by `<ns>/<name>`, so their leases can be revoked after the object is gone. */
  readonly #deleted = new Map<string, SecretBinding>();
  /** Told `<ns>/<name>` when this replica issued a credential, so its renewal gets scheduled. */
  #onIssued: (bindingKey: string) => void = () => undefined;

  constructor(deps: LeaseKeeperDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
  }

  /**
   * The files of a dynamic binding for one entitled pod (the broker's publish): the consumer's
   * current credential, issued now when it has none (or its lease has ended).
   */
  async contentFor(binding: SecretBinding, pod: V1Pod, signal: AbortSignal): Promise<BindingContent> {
    const opened = await this.#open(binding);
    if (!opened.ok) return { kind: 'failed', reason: opened.reason, message: opened.message, retry: opened.retry };
    const namespace = binding.metadata.namespace ?? '';
    const name = binding.metadata.name ?? '';
    const podRef = { name: pod.metadata?.name ?? '', uid: pod.metadata?.uid ?? '' };
    const key = recordKey(namespace, name, consumerOf(binding, podRef.uid));
    try {
      // The replica that keeps this binding's leases (the leader) knows its records; any other reads
      // the store, so it never serves a credential the leader has replaced.
      let record = (this.#listed.has(`${namespace}/${name}`) ? this.#records.get(key) : undefined) ?? (await this.#read(opened.leasing, key, signal));
      if (record === undefined || record.bindingUid !== binding.metadata.uid || record.expiresAt <= this.#now() + minReissueLeadMs) {
        record = await this.#issueOnce(opened.leasing, binding, key, podRef, record, signal);
      }
      const files = renderDynamicFiles(binding, record.data);
      const hmac = contentHmac(this.#deps.contentKey, files);
      this.#deps.delivery.expect(namespace, name, podRef, hmac);
      return { kind: 'resolved', files, hmac, versions: [{ key: binding.spec.dynamic?.path ?? '', version: `lease-${String(record.serial)}` }], stale: undefined };
    } catch (error) {
      return failure(error);
    }
  }

  /**
   * A pki binding's publish (ADR 0263). Without a CSR: the names the node must request and the hash
   * of the pod's current certificate, if it has one not yet due for renewal. With a CSR (made by the
   * node, which keeps the key): the certificate signed for the binding's names — tls.crt (with its
   * chain) and ca.crt; the node adds tls.key itself. The controller never sees a private key.
   */
  async certificateFor(binding: SecretBinding, pod: V1Pod, csrPem: string | undefined, signal: AbortSignal): Promise<BindingContent | CertificateRequestAnswer> {
    const pki = binding.spec.pki;
    if (pki === undefined) return { kind: 'failed', reason: 'InvalidSpec', message: 'not a pki binding', retry: false };
    const opened = await this.#open(binding, `${pki.mount ?? 'pki'}/sign/${pki.role}`);
    if (!opened.ok) return { kind: 'failed', reason: opened.reason, message: opened.message, retry: opened.retry };
    const namespace = binding.metadata.namespace ?? '';
    const name = binding.metadata.name ?? '';
    const podRef = { name: pod.metadata?.name ?? '', uid: pod.metadata?.uid ?? '' };
    const key = recordKey(namespace, name, consumerOf(binding, podRef.uid));
    try {
      const names = certificateNames(binding, { name: podRef.name, namespace, serviceAccount: pod.spec?.serviceAccountName ?? 'default' });
      if (csrPem === undefined) {
        const record = (this.#listed.has(`${namespace}/${name}`) ? this.#records.get(key) : undefined) ?? (await this.#read(opened.leasing, key, signal));
        const current = record !== undefined && record.bindingUid === binding.metadata.uid && renewAt(record) > this.#now() ? (record.contentHash ?? '') : '';
        return { kind: 'certificateRequest', request: names, currentHash: current };
      }
      const signed = await opened.leasing.sign(
        { mount: pki.mount ?? 'pki', role: pki.role, csrPem, commonName: names.commonName, dnsNames: names.dnsNames, uriSans: names.uris, ...(pki.ttl === undefined ? {} : { ttl: pki.ttl }) },
        { signal },
      );
      const files = [
        { path: 'tls.crt', mode: 0o444, content: SecretValue.fromString([signed.certificatePem, ...signed.caChainPem].map((p) => p.trim()).join('\n') + '\n') },
        { path: 'ca.crt', mode: 0o444, content: SecretValue.fromString((signed.caChainPem.at(-1) ?? '').trim() + '\n') },
      ];
      const hmac = contentHmac(this.#deps.contentKey, files);
      const now = this.#now();
      const previous = this.#records.get(key) ?? (await this.#read(opened.leasing, key, signal));
      const record: LeaseRecord = {
        version: 1,
        kind: 'certificate',
        bindingUid: binding.metadata.uid ?? '',
        consumer: consumerOf(binding, podRef.uid),
        pod: podRef,
        leaseId: signed.serialNumber,
        data: {},
        serial: previous !== undefined && previous.bindingUid === binding.metadata.uid ? previous.serial + 1 : 1,
        issuedAt: now,
        renewedAt: now,
        expiresAt: signed.expiresAt,
        ttlSeconds: Math.max(1, Math.round((signed.expiresAt - now) / 1000)),
        renewable: false,
        contentHash: hmac,
      };
      await opened.leasing.writeRecord(key, serializeRecord(record), { signal });
      this.#records.set(key, record);
      // The certificate it replaces stays valid to its end: the pod may still serve with it for a moment.
      this.#deps.delivery.expect(namespace, name, podRef, hmac);
      this.#onIssued(`${namespace}/${name}`);
      this.#deps.logger.info('certificate signed for a pod', { binding: `${namespace}/${name}`, pod: podRef.name, serial: record.serial });
      return { kind: 'resolved', files, hmac, versions: [{ key: `${pki.mount ?? 'pki'}/sign/${pki.role}`, version: `certificate-${String(record.serial)}` }], stale: undefined };
    } catch (error) {
      return failure(error);
    }
  }

  /** Calls `listener` with a binding's key whenever this replica issued or signed for it (the binding controller enqueues it). */
  onIssued(listener: (bindingKey: string) => void): void {
    this.#onIssued = listener;
  }

  /** Remembers a deleted binding, so the next reconcile of its key revokes its leases. */
  bindingDeleted(binding: SecretBinding): void {
    if (binding.spec.dynamic === undefined && binding.spec.pki === undefined) return;
    const key = `${binding.metadata.namespace ?? ''}/${binding.metadata.name ?? ''}`;
    this.#deleted.set(key, binding);
    // Followers never reconcile: keep the memory bounded.
    if (this.#deleted.size > 10_000) this.#deleted.delete(this.#deleted.keys().next().value ?? '');
  }

  /**
   * Revokes every lease of a deleted binding (by its queue key) and deletes the records. True when
   * the key named a deleted dynamic binding. Throws (the reconcile retries) when the store fails.
   */
  async release(key: string, signal: AbortSignal): Promise<boolean> {
    const binding = this.#deleted.get(key);
    if (binding === undefined) return false;
    const opened = await this.#open(binding);
    if (!opened.ok) {
      // The backend itself is gone or refused: nothing can be revoked through it any more.
      this.#deps.logger.warn('leases of a deleted binding cannot be revoked', { binding: key, reason: opened.reason, message: opened.message });
      this.#deleted.delete(key);
      return true;
    }
    const records = await this.#list(opened.leasing, key, signal);
    for (const [recordKey, record] of records) await this.#revokeRecord(opened.leasing, recordKey, record, signal, binding);
    this.#deleted.delete(key);
    this.#listed.delete(key);
    this.#deps.logger.info('leases of a deleted binding revoked', { binding: key, leases: records.size });
    return true;
  }

  /**
   * One lifecycle pass over a live dynamic binding (leader): revokes the leases of consumers that
   * are gone, renews those at two thirds of their TTL, issues new credentials before the max TTL,
   * revokes replaced leases once every consumer holds the new one.
   */
  async reconcile(binding: SecretBinding, pods: readonly V1Pod[], signal: AbortSignal): Promise<{ ok: true; result: LeaseReconcile } | Extract<BindingContent, { kind: 'failed' }>> {
    const opened = await this.#open(binding);
    if (!opened.ok) return { kind: 'failed', reason: opened.reason, message: opened.message, retry: opened.retry };
    const namespace = binding.metadata.namespace ?? '';
    const name = binding.metadata.name ?? '';
    const bindingKey = `${namespace}/${name}`;
    try {
      const records = await this.#list(opened.leasing, bindingKey, signal);
      const live = pods.filter((p) => p.metadata?.deletionTimestamp === undefined && isConsumer(binding, p));
      const liveUids = new Set(live.map((p) => p.metadata?.uid ?? ''));
      const grace = this.#deps.newRecordGraceMs ?? 5_000;
      const now = this.#now();
      let nextDue: number | undefined;
      const due = (at: number): void => {
        nextDue = nextDue === undefined ? at : Math.min(nextDue, at);
      };
      const kept: LeaseRecord[] = [];
      for (const [key, found] of records) {
        let record = found;
        const gone =
          record.bindingUid !== binding.metadata.uid ||
          (record.pod !== undefined ? !liveUids.has(record.pod.uid) : live.length === 0);
        if (gone) {
          // A record younger than the grace may belong to a pod this cache has not seen yet.
          if (record.bindingUid === binding.metadata.uid && now - record.issuedAt < grace) {
            due(record.issuedAt + grace);
            kept.push(record);
            continue;
          }
          await this.#revokeRecord(opened.leasing, key, record, signal, binding);
          continue;
        }
        const holders = record.pod !== undefined ? [record.pod] : live.map((p) => ({ name: p.metadata?.name ?? '', uid: p.metadata?.uid ?? '' }));
        if (record.kind === 'certificate') {
          // At two thirds of its lifetime the pod's volume is told to change: its node makes a new
          // key and CSR (the controller cannot: it has no key), and the new certificate replaces this record.
          if (renewAt(record) <= now && record.pod !== undefined) this.#deps.delivery.expect(namespace, name, record.pod, `renew-${String(record.serial)}`);
          else due(renewAt(record));
          kept.push(record);
          continue;
        }
        if (record.previous !== undefined) {
          const hash = contentHmac(this.#deps.contentKey, renderDynamicFiles(binding, record.data));
          const served = holders.every((h) => this.#deps.delivery.heldBy(namespace, name, h.uid) === hash);
          if (served || record.previous.expiresAt <= now) {
            await this.#revoke(opened.leasing, record.previous.leaseId, signal);
            const { previous: _revoked, ...rest } = record;
            record = rest;
            await opened.leasing.writeRecord(key, serializeRecord(record), { signal });
            this.#records.set(key, record);
          } else {
            // Checked again soon: the nodes report what they hold in their next change poll.
            due(now + 2_000);
          }
        }
        // Renewal at two thirds of the TTL; a new credential a third of the TTL before the lease's
        // end when renewals can no longer extend it (max TTL reached, or not renewable), or when it
        // has (nearly) ended already (renewals missed while no controller ran).
        if (record.expiresAt <= now + 1_000 || (reissueAt(record) ?? Number.POSITIVE_INFINITY) <= now) {
          record = await this.#reissue(opened.leasing, binding, key, record, holders, signal);
        } else if (record.renewable && renewAt(record) <= now) {
          record = await this.#renew(opened.leasing, key, record, signal);
        }
        const nextReissue = reissueAt(record);
        if (nextReissue !== undefined) due(nextReissue);
        if (record.renewable && record.maxExpiresAt === undefined) due(renewAt(record));
        if (record.previous !== undefined) due(Math.min(record.previous.expiresAt, now + 2_000));
        kept.push(record);
      }
      // The binding's status hash: its dynamic spec, not its leases (a new pod is no content change).
      const spec = new TextEncoder().encode(`${binding.metadata.uid ?? ''}:${JSON.stringify(binding.spec.dynamic ?? binding.spec.pki)}`);
      const hmac = contentHmac(this.#deps.contentKey, [{ path: 'dynamic', content: spec }]);
      return { ok: true, result: { leases: kept.length, nextDueMs: nextDue === undefined ? undefined : Math.max(0, nextDue - this.#now()), hmac } };
    } catch (error) {
      return failure(error);
    }
  }

  async #open(binding: SecretBinding, path: string = binding.spec.dynamic?.path ?? (binding.spec.pki === undefined ? '' : `${binding.spec.pki.mount ?? 'pki'}/sign/${binding.spec.pki.role}`)): Promise<Opened> {
    const ref = namedBackends(binding).get(defaultBackend);
    if (ref === undefined) return { ok: false, reason: 'InvalidSpec', message: 'the binding names no backend', retry: false };
    const backend =
      ref.kind === 'ClusterSecretBackend' ? this.#deps.clusterBackends.get(ref.backendName) : this.#deps.namespacedBackends.get(ref.queueKey.slice('SecretBackend/'.length));
    if (backend === undefined) return { ok: false, reason: 'BackendNotFound', message: `${ref.kind} ${ref.backendName} not found`, retry: false };
    if (backend.kind === 'ClusterSecretBackend') {
      const namespace = binding.metadata.namespace ?? '';
      const decision = checkAccess(backend.spec.access, { name: namespace, labels: this.#deps.namespaces.get(namespace)?.metadata?.labels }, [path], ref.backendName);
      if (!decision.allowed) return { ok: false, reason: 'AccessDenied', message: decision.message, retry: false };
    }
    try {
      const pooled = await this.#deps.pool.ensure(backendQueueKey(backend), backend);
      const leasing = pooled.client.leasing;
      if (leasing === undefined) return { ok: false, reason: 'InvalidSpec', message: `dynamic needs a vault backend; ${ref.kind} ${ref.backendName} is ${pooled.provider}`, retry: false };
      return { ok: true, leasing };
    } catch (error) {
      if (!(error instanceof BackendError)) throw error;
      return { ok: false, reason: 'BackendNotReady', message: `${ref.queueKey}: ${error.message}`, retry: false };
    }
  }

  async #read(leasing: LeasingBackend, key: string, signal: AbortSignal): Promise<LeaseRecord | undefined> {
    const stored = await leasing.readRecord(key, { signal });
    const record = stored === undefined ? undefined : parseRecord(stored);
    if (record !== undefined) this.#records.set(key, record);
    return record;
  }

  /**
   * The binding's records: one LIST of the store per pass (another replica's broker may have issued
   * some), a read only of those this replica does not know yet.
   */
  async #list(leasing: LeasingBackend, bindingKey: string, signal: AbortSignal): Promise<Map<string, LeaseRecord>> {
    const listed = new Set((await leasing.listRecords(`${bindingKey}/`, { signal })).filter((c) => !c.endsWith('/')).map((c) => `${bindingKey}/${c}`));
    for (const key of listed) if (!this.#records.has(key)) await this.#read(leasing, key, signal);
    this.#listed.add(bindingKey);
    const prefix = `${bindingKey}/`;
    // A record known here but no longer stored was deleted by another replica; one issued here a
    // moment ago is stored already (written before it is cached).
    return new Map([...this.#records].filter(([key]) => key.startsWith(prefix) && listed.has(key)));
  }

  #issueOnce(leasing: LeasingBackend, binding: SecretBinding, key: string, pod: { name: string; uid: string }, stale: LeaseRecord | undefined, signal: AbortSignal): Promise<LeaseRecord> {
    const running = this.#issuing.get(key);
    if (running !== undefined) return running;
    const issuing = (async (): Promise<LeaseRecord> => {
      // A record of an earlier binding of the same name: its lease is revoked first.
      if (stale !== undefined && stale.bindingUid !== binding.metadata.uid) await this.#revokeRecord(leasing, key, stale, signal);
      const serial = stale !== undefined && stale.bindingUid === binding.metadata.uid ? stale.serial + 1 : 1;
      const record = await this.#issue(leasing, binding, pod, serial, undefined, signal);
      await leasing.writeRecord(key, serializeRecord(record), { signal });
      this.#records.set(key, record);
      this.#onIssued(`${binding.metadata.namespace ?? ''}/${binding.metadata.name ?? ''}`);
      this.#deps.logger.info('dynamic credential issued', { binding: `${binding.metadata.namespace ?? ''}/${binding.metadata.name ?? ''}`, consumer: record.consumer, serial, ttlSeconds: record.ttlSeconds });
      return record;
    })().finally(() => {
      this.#issuing.delete(key);
    });
    this.#issuing.set(key, issuing);
    return issuing;
  }

  async #issue(leasing: LeasingBackend, binding: SecretBinding, pod: { name: string; uid: string }, serial: number, previous: LeaseRecord['previous'], signal: AbortSignal): Promise<LeaseRecord> {
    const dynamic = binding.spec.dynamic;
    if (dynamic === undefined) throw new Error('not a dynamic binding');
    const issued = await leasing.issue(dynamic.path, dynamic.parameters as Record<string, string> | undefined, { signal });
    const now = this.#now();
    const data = JSON.parse(issued.data.revealText()) as Record<string, unknown>;
    // Fail before anything is delivered when a file names a field the credential lacks.
    try {
      renderDynamicFiles(binding, data);
    } catch (error) {
      await leasing.revoke(issued.leaseId, { signal });
      throw error;
    }
    const perPod = dynamic.scope !== 'perWorkload';
    return {
      version: 1,
      bindingUid: binding.metadata.uid ?? '',
      consumer: consumerOf(binding, pod.uid),
      ...(perPod ? { pod } : {}),
      leaseId: issued.leaseId.revealText(),
      data,
      serial,
      issuedAt: now,
      renewedAt: now,
      expiresAt: now + issued.leaseDurationSeconds * 1000,
      ttlSeconds: issued.leaseDurationSeconds,
      renewable: issued.renewable,
      ...(previous === undefined ? {} : { previous }),
    };
  }

  async #renew(leasing: LeasingBackend, key: string, record: LeaseRecord, signal: AbortSignal): Promise<LeaseRecord> {
    const { leaseDurationSeconds } = await leasing.renew(SecretValue.fromString(record.leaseId), record.ttlSeconds, { signal });
    const now = this.#now();
    const expiresAt = now + leaseDurationSeconds * 1000;
    // A shorter answer than asked: the lease's max TTL caps it; it ends at expiresAt whatever we do.
    const renewed: LeaseRecord = { ...record, renewedAt: now, expiresAt, ...(leaseDurationSeconds < record.ttlSeconds ? { maxExpiresAt: expiresAt } : {}) };
    await leasing.writeRecord(key, serializeRecord(renewed), { signal });
    this.#records.set(key, renewed);
    this.#deps.logger.info('dynamic credential renewed', { consumer: record.consumer, serial: record.serial, leaseSeconds: leaseDurationSeconds });
    return renewed;
  }

  /** A new credential for the consumer; the old lease stays until every holder has the new one. */
  async #reissue(leasing: LeasingBackend, binding: SecretBinding, key: string, record: LeaseRecord, holders: readonly { name: string; uid: string }[], signal: AbortSignal): Promise<LeaseRecord> {
    // A replaced lease that is still pending goes now: at most two leases per consumer.
    if (record.previous !== undefined) await this.#revoke(leasing, record.previous.leaseId, signal);
    const next = await this.#issue(leasing, binding, record.pod ?? { name: '', uid: '' }, record.serial + 1, { leaseId: record.leaseId, expiresAt: record.expiresAt }, signal);
    await leasing.writeRecord(key, serializeRecord(next), { signal });
    this.#records.set(key, next);
    const hash = contentHmac(this.#deps.contentKey, renderDynamicFiles(binding, next.data));
    for (const holder of holders) this.#deps.delivery.expect(binding.metadata.namespace ?? '', binding.metadata.name ?? '', holder, hash);
    this.#deps.logger.info('dynamic credential re-issued before its max TTL', { consumer: record.consumer, serial: next.serial });
    return next;
  }

  async #revokeRecord(leasing: LeasingBackend, key: string, record: LeaseRecord, signal: AbortSignal, binding?: SecretBinding): Promise<void> {
    if (record.kind === 'certificate') {
      const mount = binding?.spec.pki?.mount ?? 'pki';
      // Revoked so a key left behind on a node is worthless; a revocation the role refuses is logged, not retried forever.
      await leasing.revokeCertificate(mount, record.leaseId, { signal }).catch((error: unknown) => {
        this.#deps.logger.warn('certificate revocation failed', { consumer: record.consumer, error: error instanceof Error ? error.message : String(error) });
      });
      await leasing.deleteRecord(key, { signal });
      this.#records.delete(key);
      this.#deps.logger.info('certificate of a gone pod revoked', { consumer: record.consumer, serial: record.serial });
      return;
    }
    if (record.previous !== undefined) await this.#revoke(leasing, record.previous.leaseId, signal);
    await this.#revoke(leasing, record.leaseId, signal);
    await leasing.deleteRecord(key, { signal });
    this.#records.delete(key);
    this.#deps.logger.info('dynamic credential revoked', { consumer: record.consumer, serial: record.serial });
  }

  #revoke(leasing: LeasingBackend, leaseId: string, signal: AbortSignal): Promise<void> {
    return leasing.revoke(SecretValue.fromString(leaseId), { signal });
  }
}

/** When a lease is renewed: two thirds of its TTL after the last renewal (or the issue). */
function renewAt(record: LeaseRecord): number {
  return record.renewedAt + (record.ttlSeconds * 1000 * 2) / 3;
}

/** When a new credential is issued: a third of the TTL (at least 5 s) before an end no renewal can move; undefined while renewals can. */
function reissueAt(record: LeaseRecord): number | undefined {
  const end = record.maxExpiresAt ?? (record.renewable ? undefined : record.expiresAt);
  return end === undefined ? undefined : end - Math.max(minReissueLeadMs, (record.ttlSeconds * 1000) / 3);
}

function failure(error: unknown): Extract<BindingContent, { kind: 'failed' }> {
  if (error instanceof MissingFieldError) return { kind: 'failed', reason: 'PropertyNotFound', message: error.message, retry: false };
  if (error instanceof BackendError) return { kind: 'failed', reason: reasonForError(error), message: error.message, retry: error.retryable };
  throw error;
}
