/** The `Status` the API server sends with an error (HTTP body or watch ERROR event). */
export interface ApiStatus {
  readonly code?: number;
  readonly reason?: string;
  readonly message?: string;
}

/** An error answer of the API server, or a transport failure (code 0). */
export class KubeApiError extends Error {
  readonly code: number;
  readonly reason: string | undefined;
  /** The API server's own Status message (or the HTTP status text), without method and path. */
  readonly statusMessage: string | undefined;

  constructor(code: number, reason: string | undefined, message: string, options?: { cause?: unknown; statusMessage?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KubeApiError';
    this.code = code;
    this.reason = reason;
    this.statusMessage = options?.statusMessage;
  }
}

/** 410 Gone: the resourceVersion we watch from is no longer available; only a fresh list helps. */
export function isGone(error: unknown): boolean {
  return error instanceof KubeApiError && error.code === 410;
}
