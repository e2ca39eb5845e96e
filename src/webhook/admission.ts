import type { V1Pod } from '@kubernetes/client-node';

/**
 * AdmissionReview v1 as it travels on the wire (admission.k8s.io/v1), reduced to the fields the
 * webhook reads and writes, and the pure helpers that turn a decision into a response.
 */

export const admissionApiVersion = 'admission.k8s.io/v1';

export interface AdmissionRequest {
  readonly uid: string;
  readonly kind?: { readonly group?: string; readonly version?: string; readonly kind?: string };
  readonly resource?: { readonly group?: string; readonly version?: string; readonly resource?: string };
  readonly subResource?: string;
  readonly namespace?: string;
  readonly name?: string;
  readonly operation: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
  readonly object?: unknown;
  readonly oldObject?: unknown;
  readonly dryRun?: boolean;
}

export interface AdmissionResponse {
  readonly uid: string;
  readonly allowed: boolean;
  readonly status?: { readonly code: number; readonly message: string; readonly reason?: string };
  readonly patch?: string;
  readonly patchType?: 'JSONPatch';
  readonly warnings?: readonly string[];
}

export interface AdmissionReview {
  readonly apiVersion: typeof admissionApiVersion;
  readonly kind: 'AdmissionReview';
  readonly request?: AdmissionRequest;
  readonly response?: AdmissionResponse;
}

/** One RFC 6902 operation, as `fast-json-patch` produces them. */
export interface JsonPatchOperation {
  readonly op: string;
  readonly path: string;
  readonly value?: unknown;
  readonly from?: string;
}

/**
 * What a mutating or validating step decided, before it is put on the wire. `outcome` feeds the
 * latency metric's closed label.
 */
export type Decision =
  | { readonly outcome: 'allowed'; readonly warnings: readonly string[] }
  | { readonly outcome: 'patched'; readonly patch: readonly JsonPatchOperation[]; readonly warnings: readonly string[] }
  | { readonly outcome: 'denied'; readonly code: number; readonly message: string; readonly warnings: readonly string[] };

export const allow = (warnings: readonly string[] = []): Decision => ({ outcome: 'allowed', warnings });
export const deny = (message: string, code = 403, warnings: readonly string[] = []): Decision => ({ outcome: 'denied', code, message, warnings });

/** The wire response for a decision (the patch base64-encoded, as the API server wants it). */
export function toResponse(uid: string, decision: Decision): AdmissionResponse {
  const warnings = decision.warnings.length === 0 ? {} : { warnings: decision.warnings };
  switch (decision.outcome) {
    case 'allowed':
      return { uid, allowed: true, ...warnings };
    case 'patched':
      return {
        uid,
        allowed: true,
        patchType: 'JSONPatch',
        patch: Buffer.from(JSON.stringify(decision.patch)).toString('base64'),
        ...warnings,
      };
    case 'denied':
      return { uid, allowed: false, status: { code: decision.code, message: decision.message }, ...warnings };
  }
}

/** The request's pod (`object`), if the request is about pods at all. */
export function podOf(value: unknown): V1Pod | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const kind = (value as { kind?: unknown }).kind;
  return kind === 'Pod' || kind === undefined ? value : undefined;
}

/** Whether the request is about the `pods` resource (optionally one subresource). */
export function isPodRequest(request: AdmissionRequest, subResource = ''): boolean {
  return (request.resource?.group ?? '') === '' && request.resource?.resource === 'pods' && (request.subResource ?? '') === subResource;
}
