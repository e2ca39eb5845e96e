/**
 * The broker's wire protocol, as plain JSON-serializable data (STYLE 5): the node plugin (CSI) and
 * the agent speak it to the controller's broker over HTTPS. Every request carries the caller's own
 * service-account token in `Authorization: Bearer …`; requests about a pod also carry a token bound
 * to that pod with audience {@link brokerAudience}. Values travel only in {@link PublishAnswer}.
 */

import type { Reason } from '../api/v1alpha1/conditions.ts';

/** The audience of pod tokens the broker accepts (CSIDriver `tokenRequests`). */
export const brokerAudience = 'secretbinder.dev';

/** The CSI driver name, and the prefix of our labels and annotations. */
export const driverName = 'secretbinder.dev';

/**
 * Every request carries the node plugin's own service-account token in `Authorization: Bearer`,
 * with audience {@link brokerAudience} and bound to the plugin's pod (so the API server names the
 * plugin's node in it): a projected token volume in the DaemonSet (ADR 0082).
 */

/** `POST /v1/publish`: the file set of one binding for one pod. */
export interface PublishRequest {
  /** The CSI volume id (kubelet's `volume_id`), unique per pod volume. */
  readonly volumeId: string;
  readonly pod: { readonly namespace: string; readonly name: string; readonly uid: string; readonly serviceAccountName: string };
  /** The binding named by the volume's `volumeAttributes.binding` (same namespace as the pod). */
  readonly binding: string;
  /** Token bound to the pod, audience {@link brokerAudience} (from the kubelet's tokenRequests). */
  readonly podToken: string;
  /**
   * For a `pki` binding, the second call: a PKCS#10 signing request (PEM) for a key the node made
   * and keeps. Never a private key: the broker refuses a request that carries one.
   */
  readonly csr?: string;
}

export interface PublishedFile {
  /** Relative path inside the volume. */
  readonly path: string;
  /** Unix permission bits (e.g. 0o440). */
  readonly mode: number;
  /** File content, base64. */
  readonly contentBase64: string;
}

export interface PublishAnswer {
  readonly volumeId: string;
  /** Keyed HMAC of the file set; the change stream compares these. */
  readonly contentHash: string;
  readonly files: readonly PublishedFile[];
  /**
   * A `pki` binding asked without a CSR: the node makes a key pair, and calls again with a CSR for
   * these names. `contentHash` is then the hash the volume should hold: a volume that holds it
   * already keeps its certificate (no new key).
   */
  readonly certificateRequest?: CertificateRequest;
}

/** What a `pki` volume's signing request names (rendered from the binding and the pod). */
export interface CertificateRequest {
  readonly commonName: string;
  readonly dnsNames: readonly string[];
  readonly uris: readonly string[];
}

/**
 * `POST /v1/publish-batch`: the file sets of many volumes of the caller's node in one request, as a
 * change answer is applied (ADR 0224). Every volume is proven, entitled and audited exactly as by
 * `/v1/publish`; the answer carries each distinct file set once, however many volumes share it.
 */
export interface PublishBatchRequest {
  /** At most {@link maxPublishBatch} volumes. */
  readonly volumes: readonly PublishRequest[];
}

/** The most volumes one `/v1/publish-batch` request may ask for. */
export const maxPublishBatch = 256;

/** One volume of a batch: the hash and the index of its file set, or the refusal `/v1/publish` would answer. */
export type PublishBatchResult =
  | { readonly volumeId: string; readonly contentHash: string; readonly fileSet: number }
  /** A pki volume: its key exchange needs a publish of its own (`contentHash` is '' unless the held certificate is current). */
  | { readonly volumeId: string; readonly contentHash: string; readonly certificateRequest: true }
  | { readonly volumeId: string; readonly error: BrokerError & { readonly status: number } };

export interface PublishBatchAnswer {
  /** One per asked volume, in the order asked. */
  readonly results: readonly PublishBatchResult[];
  /** The distinct file sets the results point at. */
  readonly fileSets: readonly { readonly contentHash: string; readonly files: readonly PublishedFile[] }[];
}

/** `POST /v1/changes` (long poll): which of the caller node's volumes have new content. */
export interface ChangesRequest {
  /**
   * The volumes the node holds, the content hash each was last written with, and the pod each
   * belongs to (the broker answers only for pods on the caller's node that are still entitled;
   * any other volume is answered `revoked`).
   */
  readonly volumes: readonly {
    readonly volumeId: string;
    readonly namespace: string;
    readonly binding: string;
    readonly contentHash: string;
    readonly pod: { readonly name: string; readonly uid: string };
  }[];
  /** How long to hold the request open when nothing changed (the broker caps it at 60). */
  readonly waitSeconds: number;
}

export interface ChangesAnswer {
  /**
   * Volumes whose binding now has another content hash (re-publish them), or whose binding is gone
   * or no longer admits the pod (`revoked`: empty them).
   */
  readonly changed: readonly { readonly volumeId: string; readonly contentHash: string | null; readonly revoked: boolean }[];
}

/** Every refusal: an HTTP status plus one of these reasons (from the closed list) and a message. */
export interface BrokerError {
  /** One reason from the closed list (`src/api/v1alpha1/conditions.ts`), e.g. `IdentityMismatch`. */
  readonly reason: Reason;
  readonly message: string;
}
