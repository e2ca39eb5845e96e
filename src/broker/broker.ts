import type { V1Pod } from '@kubernetes/client-node';
import pLimit from 'p-limit';
import type { SecretBinding } from '../api/v1alpha1/index.ts';
import type { BindingContent } from '../controllers/binding/binding-content.ts';
import type { AuditLog, DeniedEvent } from '../observability/audit.ts';
import type { Logger } from '../observability/logger.ts';
import type { CacheReader } from '../runtime/object-store.ts';
import type { BrokerEndpoint, BrokerMetrics } from './broker.metrics.ts';
import type { BrokerError, ChangesAnswer, PublishAnswer, PublishBatchAnswer, PublishBatchResult, PublishedFile } from './broker.protocol.ts';
import type { AgentChangesRequest } from './agent.protocol.ts';
import { agentEntitlement } from './agent-entitlement.ts';
import { Denial, statusForReason } from './broker.denial.ts';
import { agentChangesSchema, agentPublishSchema, changesSchema, publishBatchSchema, publishSchema } from './broker.requests.ts';
import type { ChangeHub } from './change-hub.ts';
import { BrokerChanges } from './broker.changes.ts';
import { BrokerIdentity, type BrokerIdentityDeps, type CallerNode } from './broker.identity.ts';
import type { CertificateRequestAnswer } from '../dynamic/lease-keeper.ts';
import { entitlement, type Entitlement } from './entitlement.ts';

export interface ContentSource {
  resolve(binding: SecretBinding, signal: AbortSignal): Promise<BindingContent>;
}

/** The content of a dynamic binding for one pod: its own credential (perPod) or the workload's. */
export interface DynamicContentSource {
  contentFor(binding: SecretBinding, pod: V1Pod, signal: AbortSignal): Promise<BindingContent>;
  certificateFor(binding: SecretBinding, pod: V1Pod, csrPem: string | undefined, signal: AbortSignal): Promise<BindingContent | CertificateRequestAnswer>;
}

/** What the HTTP layer sends back: a status code and a JSON body. */
export interface BrokerReply {
  readonly status: number;
  readonly body: PublishAnswer | PublishBatchAnswer | ChangesAnswer | BrokerError;
}

/** Who may ask (BrokerIdentityDeps: token reviews, the node plugin's account, pods) and what it serves. */
export interface BrokerDeps extends BrokerIdentityDeps {
  readonly bindings: CacheReader<SecretBinding>;
  /** Whether a namespace of the pod cache has listed. */
  readonly podsSynced: (namespace: string) => boolean;
  /** The binding's content, as the reconciler computes it (not recording: the broker records itself). */
  readonly content: ContentSource;
  /** The same, with a cache no older than a second: for when this replica's cache looks behind. */
  readonly freshContent: ContentSource;
  readonly hub: ChangeHub;
  /** Dynamic bindings' credentials, one per pod or per workload (issue 21); absent: dynamic bindings are refused. */
  readonly dynamic?: DynamicContentSource;
  readonly audit: AuditLog;
  readonly metrics: BrokerMetrics;
  readonly logger: Logger;
  /** Upper bound of a change-stream wait. */
  readonly maxWaitSeconds?: number;
}

/** Pod proofs of one batch in flight at once (a cache miss is a TokenReview, sometimes a pod GET). */
const batchProofConcurrency = 16;

type ResolvedContent = Extract<BindingContent, { kind: 'resolved' }>;
type RefusalContext = Omit<DeniedEvent, 'reason'> & { binding?: DeniedEvent['binding'] };

/**
 * The broker: the only door to secret values (DESIGN "Broker", invariants 1-3). `publish`
 * answers one binding's files for one pod after proving the caller (the node plugin's own
 * token, bound to a pod on its node), the pod (a token bound to it, whose name and uid match a
 * live pod on the caller's node) and the entitlement (selector, service account, containers).
 * `changes` is the per-node long poll. Every decision is audited before it is answered; the
 * audit and the log carry names, paths, versions and HMACs, never a value or a token.
 */
export class Broker {
  readonly #deps: BrokerDeps;
  readonly #maxWaitSeconds: number;
  readonly #identity: BrokerIdentity;
  readonly #changes: BrokerChanges;

  constructor(deps: BrokerDeps) {
    this.#deps = deps;
    this.#maxWaitSeconds = deps.maxWaitSeconds ?? 60;
    this.#identity = new BrokerIdentity(deps);
    this.#changes = new BrokerChanges({ ...deps, waiting: deps.metrics.waiting });
  }

  async publish(authorization: string | undefined, input: unknown, signal: AbortSignal): Promise<BrokerReply> {
    const started = performance.now();
    const context: RefusalContext = { via: 'csi' };
    try {
      const caller = await this.#identity.callerNode(authorization);
      Object.assign(context, { caller: caller.caller, node: caller.node });
      const parsed = publishSchema.safeParse(input);
      if (!parsed.success) throw new Denial(400, 'InvalidSpec', `malformed publish request: ${parsed.error.issues.map((i) => i.path.join('.')).join(', ')}`);
      const request = parsed.data;
      const proven = await this.#proveVolume(caller, request, context);
      const delivered = await this.#deliver({ ...proven, csr: request.csr, node: caller.node, via: 'csi', endpoint: 'publish' }, (binding) => this.#content(binding, signal), signal);
      if (delivered.kind === 'certificateRequest') {
        // Not a decision yet: the answer with the certificate is the one counted and audited.
        return { status: 200, body: { volumeId: request.volumeId, contentHash: delivered.currentHash, files: [], certificateRequest: delivered.request } };
      }
      return { status: 200, body: { volumeId: request.volumeId, contentHash: delivered.hmac, files: encodeFiles(delivered) } };
    } catch (error) {
      return this.#refuse('publish', error, context);
    } finally {
      this.#deps.metrics.duration.observe({ endpoint: 'publish' }, (performance.now() - started) / 1000);
    }
  }

  /**
   * `publish` for many volumes of the caller's node at once (ADR 0224): the caller is reviewed once,
   * each binding's content is resolved once for the whole batch (content belongs to the binding, not
   * to the pod), and each distinct file set is encoded once. Every volume is still proven, entitled,
   * audited and counted on its own; a volume's refusal is its result, not the batch's.
   */
  async publishBatch(authorization: string | undefined, input: unknown, signal: AbortSignal): Promise<BrokerReply> {
    const started = performance.now();
    const context: RefusalContext = { via: 'csi' };
    try {
      const caller = await this.#identity.callerNode(authorization);
      Object.assign(context, { caller: caller.caller, node: caller.node });
      const parsed = publishBatchSchema.safeParse(input);
      if (!parsed.success) throw new Denial(400, 'InvalidSpec', `malformed publish-batch request: ${parsed.error.issues.map((i) => i.path.join('.')).join(', ')}`);
      const contents = new Map<string, Promise<BindingContent>>();
      const contentOf = (binding: SecretBinding): Promise<BindingContent> => {
        const key = `${binding.metadata.namespace ?? ''}/${binding.metadata.name ?? ''}`;
        let content = contents.get(key);
        if (content === undefined) {
          content = this.#content(binding, signal);
          contents.set(key, content);
        }
        return content;
      };
      const fileSets: { contentHash: string; files: PublishedFile[] }[] = [];
      const fileSetOf = new Map<string, number>();
      const results = await pLimit(batchProofConcurrency).map(parsed.data.volumes, async (request): Promise<PublishBatchResult> => {
        const volumeContext: RefusalContext = { ...context };
        try {
          const proven = await this.#proveVolume(caller, request, volumeContext);
          const content = await this.#deliver({ ...proven, csr: request.csr, node: caller.node, via: 'csi', endpoint: 'publish' }, contentOf, signal);
          // A pki volume's key exchange takes two calls of its own: the node publishes it alone.
          if (content.kind === 'certificateRequest') return { volumeId: request.volumeId, contentHash: content.currentHash, certificateRequest: true };
          let fileSet = fileSetOf.get(content.hmac);
          if (fileSet === undefined) {
            fileSet = fileSets.push({ contentHash: content.hmac, files: encodeFiles(content) }) - 1;
            fileSetOf.set(content.hmac, fileSet);
          }
          return { volumeId: request.volumeId, contentHash: content.hmac, fileSet };
        } catch (error) {
          const refusal = this.#refuse('publish', error, volumeContext);
          return { volumeId: request.volumeId, error: { ...(refusal.body as BrokerError), status: refusal.status } };
        }
      });
      return { status: 200, body: { results, fileSets } };
    } catch (error) {
      return this.#refuse('publish-batch', error, context);
    } finally {
      this.#deps.metrics.duration.observe({ endpoint: 'publish-batch' }, (performance.now() - started) / 1000);
    }
  }

  /**
   * `POST /v1/agent/publish` (ADR 0250): the caller is the agent inside the pod, and its bearer token
   * is the pod's own projected token (audience `secretbinder.dev`): the pod is proven by it exactly
   * as for CSI (TokenReview, its pod name and uid, a live pod) and entitled by the agent rules.
   */
  async agentPublish(authorization: string | undefined, input: unknown, signal: AbortSignal): Promise<BrokerReply> {
    const started = performance.now();
    const context: Omit<DeniedEvent, 'reason'> = { via: 'agent' };
    try {
      const parsed = agentPublishSchema.safeParse(input);
      if (!parsed.success) throw new Denial(400, 'InvalidSpec', `malformed agent publish request: ${parsed.error.issues.map((i) => i.path.join('.')).join(', ')}`);
      const { pod, caller } = await this.#identity.agentPod(authorization, context);
      const namespace = pod.metadata?.namespace ?? '';
      Object.assign(context, { binding: { namespace, name: parsed.data.binding } });
      const binding = this.#deps.bindings.get(`${namespace}/${parsed.data.binding}`);
      if (binding === undefined || binding.metadata.deletionTimestamp !== undefined) throw new Denial(404, 'NotEntitled', `binding ${parsed.data.binding} not found`);
      const entitled = agentEntitlement(binding, pod);
      if (!entitled.entitled) throw new Denial(403, 'NotEntitled', entitled.detail);
      // A pki key is made where the files are written; the agent does not make keys (yet).
      if (binding.spec.pki !== undefined) throw new Denial(422, 'InvalidSpec', `binding ${parsed.data.binding}: pki bindings are delivered by the CSI node plugin only`);
      const delivered = await this.#deliver({ binding, pod, entitled, node: caller.node, via: 'agent', endpoint: 'agent-publish' }, (b) => this.#content(b, signal), signal);
      if (delivered.kind === 'certificateRequest') throw new Denial(422, 'InvalidSpec', `binding ${parsed.data.binding}: a certificate request needs the CSI node plugin`);
      return { status: 200, body: { volumeId: parsed.data.binding, contentHash: delivered.hmac, files: encodeFiles(delivered) } };
    } catch (error) {
      return this.#refuse('agent-publish', error, context);
    } finally {
      this.#deps.metrics.duration.observe({ endpoint: 'agent-publish' }, (performance.now() - started) / 1000);
    }
  }

  /** `POST /v1/agent/changes`: the long poll of one agent pod's bindings (volume ids are binding names). */
  async agentChanges(authorization: string | undefined, input: unknown, signal: AbortSignal): Promise<BrokerReply> {
    const started = performance.now();
    const context: Omit<DeniedEvent, 'reason'> = { via: 'agent' };
    try {
      const parsed = agentChangesSchema.safeParse(input);
      if (!parsed.success) throw new Denial(400, 'InvalidSpec', `malformed agent changes request: ${parsed.error.issues.map((i) => i.path.join('.')).join(', ')}`);
      const request: AgentChangesRequest = parsed.data;
      const { pod, caller } = await this.#identity.agentPod(authorization, context);
      const namespace = pod.metadata?.namespace ?? '';
      const podRef = { name: pod.metadata?.name ?? '', uid: pod.metadata?.uid ?? '' };
      const volumes = request.bindings.map((b) => ({ volumeId: b.binding, namespace, binding: b.binding, contentHash: b.contentHash, pod: podRef }));
      const waitMs = Math.min(request.waitSeconds, this.#maxWaitSeconds) * 1000;
      const changed = await this.#changes.waitForChanges(volumes, caller, waitMs, signal, agentEntitlement);
      for (const c of changed) this.#deps.metrics.decisions.inc({ endpoint: 'agent-changes', result: c.revoked ? 'revoked' : 'changed', reason: 'none' });
      if (changed.length === 0) this.#deps.metrics.decisions.inc({ endpoint: 'agent-changes', result: 'unchanged', reason: 'none' });
      return { status: 200, body: { changed } };
    } catch (error) {
      return this.#refuse('agent-changes', error, context);
    } finally {
      this.#deps.metrics.duration.observe({ endpoint: 'agent-changes' }, (performance.now() - started) / 1000);
    }
  }

  /** Proves a CSI volume's pod (its token, name, uid and node) and its entitlement. Throws a {@link Denial}. */
  async #proveVolume(
    caller: CallerNode,
    request: { readonly pod: { readonly namespace: string; readonly name: string; readonly uid: string; readonly serviceAccountName: string }; readonly binding: string; readonly podToken: string },
    context: RefusalContext,
  ): Promise<{ binding: SecretBinding; pod: V1Pod; entitled: Extract<Entitlement, { entitled: true }> }> {
    const { namespace } = request.pod;
    Object.assign(context, {
      binding: { namespace, name: request.binding },
      pod: { namespace, name: request.pod.name, uid: request.pod.uid },
    });
    const pod = await this.#identity.provePod(request.podToken, request.pod, caller.node);
    const binding = this.#deps.bindings.get(`${namespace}/${request.binding}`);
    if (binding === undefined || binding.metadata.deletionTimestamp !== undefined) throw new Denial(404, 'NotEntitled', 'binding not found');
    const entitled = entitlement(binding, pod);
    if (!entitled.entitled) throw new Denial(403, 'NotEntitled', entitled.detail);
    return { binding, pod, entitled };
  }

  /**
   * Resolves the entitled binding's content for the proven pod and audits the delivery. Static
   * content belongs to the binding (`contentOf`); a dynamic or pki pod holds its own (ADR 0262).
   * A pki volume without a CSR gets the names to request instead (ADR 0263): nothing is delivered,
   * so nothing is audited. Throws a {@link Denial}.
   */
  async #deliver(
    d: { binding: SecretBinding; pod: V1Pod; entitled: Extract<Entitlement, { entitled: true }>; csr?: string | undefined; node: string; via: 'csi' | 'agent'; endpoint: BrokerEndpoint },
    contentOf: (binding: SecretBinding) => Promise<BindingContent>,
    signal: AbortSignal,
  ): Promise<ResolvedContent | CertificateRequestAnswer> {
    const { binding, pod } = d;
    if (binding.spec.pki !== undefined && d.csr === undefined) {
      const asked = await this.#dynamicSource().certificateFor(binding, pod, undefined, signal);
      if (asked.kind === 'failed') throw new Denial(statusForReason(asked.reason), asked.reason, asked.message);
      if (asked.kind === 'certificateRequest') return asked;
    }
    const content =
      binding.spec.pki !== undefined
        ? await this.#certificate(binding, pod, d.csr, signal)
        : binding.spec.dynamic === undefined
          ? await contentOf(binding)
          : await this.#dynamicSource().contentFor(binding, pod, signal);
    if (content.kind === 'failed') throw new Denial(statusForReason(content.reason), content.reason, content.message);
    const namespace = binding.metadata.namespace ?? '';
    const name = binding.metadata.name ?? '';
    const podRef = { namespace, name: pod.metadata?.name ?? '', uid: pod.metadata?.uid ?? '' };
    const backendVersions: Record<string, string> = {};
    for (const v of content.versions) backendVersions[v.key] = backendVersions[v.key] === undefined ? v.version : `${backendVersions[v.key] ?? ''},${v.version}`;
    // Audited before answering: an answer that could not be audited is never sent.
    this.#deps.audit.delivered({
      binding: { namespace, name },
      pod: podRef,
      node: d.node,
      containers: d.entitled.containers,
      paths: content.files.map((f) => f.path),
      contentHmac: content.hmac,
      backendVersions,
      via: d.via,
    });
    this.#deps.hub.held(namespace, name, podRef.uid, content.hmac);
    this.#deps.metrics.decisions.inc({ endpoint: d.endpoint, result: 'delivered', reason: 'none' });
    return content;
  }

  async changes(authorization: string | undefined, input: unknown, signal: AbortSignal): Promise<BrokerReply> {
    const started = performance.now();
    const context: Omit<DeniedEvent, 'reason'> = { via: 'csi' };
    try {
      const caller = await this.#identity.callerNode(authorization);
      Object.assign(context, { caller: caller.caller, node: caller.node });
      const parsed = changesSchema.safeParse(input);
      if (!parsed.success) throw new Denial(400, 'InvalidSpec', `malformed changes request: ${parsed.error.issues.map((i) => i.path.join('.')).join(', ')}`);
      const request = parsed.data;
      const waitMs = Math.min(request.waitSeconds, this.#maxWaitSeconds) * 1000;
      const changed = await this.#changes.waitForChanges(request.volumes, caller, waitMs, signal);
      for (const c of changed) {
        this.#deps.metrics.decisions.inc({ endpoint: 'changes', result: c.revoked ? 'revoked' : 'changed', reason: 'none' });
      }
      if (changed.length === 0) this.#deps.metrics.decisions.inc({ endpoint: 'changes', result: 'unchanged', reason: 'none' });
      return { status: 200, body: { changed } };
    } catch (error) {
      return this.#refuse('changes', error, context);
    } finally {
      this.#deps.metrics.duration.observe({ endpoint: 'changes' }, (performance.now() - started) / 1000);
    }
  }

  /**
   * The binding's content, recorded in the change hub. When this replica's answer differs from
   * the hash the hub holds (written by the leader's status, or an earlier resolution), the cache
   * may be behind the backend: resolve once more with fresh version checks, so the change stream
   * and the files agree and a follower never pins an old hash.
   */
  async #content(binding: SecretBinding, signal: AbortSignal): Promise<BindingContent> {
    let content = await this.#deps.content.resolve(binding, signal);
    const known = this.#deps.hub.current(binding.metadata.namespace ?? '', binding.metadata.name ?? '');
    if (content.kind === 'resolved' && known?.kind === 'hash' && known.hash !== content.hmac) {
      content = await this.#deps.freshContent.resolve(binding, signal);
    }
    this.#deps.hub.record(binding, content);
    return content;
  }

  /** Dynamic and pki bindings: each pod's hash is its own (ChangeHub.expect), not the binding's. */
  #dynamicSource(): DynamicContentSource {
    if (this.#deps.dynamic === undefined) throw new Denial(422, 'InvalidSpec', 'dynamic and pki bindings are not served by this broker');
    return this.#deps.dynamic;
  }

  /** A pki volume's certificate for the node's CSR. */
  async #certificate(binding: SecretBinding, pod: V1Pod, csr: string | undefined, signal: AbortSignal): Promise<BindingContent> {
    const signed = await this.#dynamicSource().certificateFor(binding, pod, csr, signal);
    if (signed.kind === 'certificateRequest') throw new Denial(400, 'InvalidSpec', 'a pki volume needs a csr');
    return signed;
  }

  #refuse(endpoint: BrokerEndpoint, error: unknown, context: Omit<DeniedEvent, 'reason'>): BrokerReply {
    const denial =
      error instanceof Denial
        ? error
        : // Anything else (the API server unreachable for a TokenReview, a bug): the caller retries.
          new Denial(503, 'InternalError', 'the broker could not decide; retry');
    if (!(error instanceof Denial)) this.#deps.logger.warn('broker request failed', { endpoint, error: error instanceof Error ? error.message : String(error) });
    this.#deps.audit.denied({ ...context, reason: denial.reason, detail: denial.message });
    this.#deps.metrics.decisions.inc({ endpoint, result: 'denied', reason: denial.reason });
    return { status: denial.status, body: { reason: denial.reason, message: denial.message } };
  }

}

function encodeFiles(content: ResolvedContent): PublishedFile[] {
  return content.files.map((f) => ({ path: f.path, mode: f.mode, contentBase64: Buffer.from(f.content.reveal()).toString('base64') }));
}
