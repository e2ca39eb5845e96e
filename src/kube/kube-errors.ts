import { KubeApiError } from '../runtime/kube-api-error.ts';

/**
 * A Kubernetes API failure described without the raw exception text: client-node's ApiException
 * message embeds response headers and body, which must not reach a log or a status condition.
 * We keep the HTTP code and the apiserver's own Status message and reason. The controller's calls
 * fail with the runtime's {@link KubeApiError} (ADR 0200); client-node's ApiException (tests pass
 * the library's clients to some functions) is recognized by its shape, without loading the library.
 */
export interface KubeFailure {
  readonly code: number | undefined;
  readonly reason: string | undefined;
  readonly message: string;
}

export function describeKubeError(error: unknown): KubeFailure {
  if (error instanceof KubeApiError) {
    return { code: error.code === 0 ? undefined : error.code, reason: error.reason, message: error.code === 0 ? error.message : (error.statusMessage ?? `HTTP ${error.code}`) };
  }
  if (isLibraryApiException(error)) {
    const code = error.code;
    const body: unknown = parseBody(error.body);
    const status = isRecord(body) ? body : {};
    const reason = typeof status.reason === 'string' ? status.reason : undefined;
    const message = typeof status.message === 'string' ? status.message : `HTTP ${code}`;
    return { code, reason, message };
  }
  if (error instanceof Error) return { code: undefined, reason: undefined, message: error.message };
  return { code: undefined, reason: undefined, message: String(error) };
}

/** The HTTP status of a failed API call; undefined for a transport failure or another error. */
export function kubeErrorCode(error: unknown): number | undefined {
  if (error instanceof KubeApiError) return error.code === 0 ? undefined : error.code;
  if (isLibraryApiException(error)) return error.code;
  return undefined;
}

export function isNotFound(error: unknown): boolean {
  return kubeErrorCode(error) === 404;
}

export function isConflict(error: unknown): boolean {
  return kubeErrorCode(error) === 409;
}

/** client-node's `ApiException`: an Error with a numeric HTTP `code` and the answer's `body`. */
function isLibraryApiException(error: unknown): error is Error & { readonly code: number; readonly body: unknown } {
  return error instanceof Error && typeof (error as { code?: unknown }).code === 'number' && 'body' in error;
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
