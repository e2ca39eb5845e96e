import { ApiException } from '@kubernetes/client-node';

/**
 * A Kubernetes API failure described without the raw exception text: client-node's ApiException
 * message embeds response headers and body, which must not reach a log or a status condition.
 * We keep the HTTP code and the apiserver's own Status message and reason.
 */
export interface KubeFailure {
  readonly code: number | undefined;
  readonly reason: string | undefined;
  readonly message: string;
}

export function describeKubeError(error: unknown): KubeFailure {
  if (error instanceof ApiException) {
    const code = (error as ApiException<unknown>).code;
    const body: unknown = parseBody((error as ApiException<unknown>).body);
    const status = isRecord(body) ? body : {};
    const reason = typeof status.reason === 'string' ? status.reason : undefined;
    const message = typeof status.message === 'string' ? status.message : `HTTP ${code}`;
    return { code, reason, message };
  }
  if (error instanceof Error) return { code: undefined, reason: undefined, message: error.message };
  return { code: undefined, reason: undefined, message: String(error) };
}

export function isNotFound(error: unknown): boolean {
  return error instanceof ApiException && (error as ApiException<unknown>).code === 404;
}

export function isConflict(error: unknown): boolean {
  return error instanceof ApiException && (error as ApiException<unknown>).code === 409;
}

function parseBody(body: unknown): unknown {
  if (typeof body !== 'string') return body;
  try {
    return JSON.parse(body) as unknown;
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}
