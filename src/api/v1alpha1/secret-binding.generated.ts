// Generated from crds/secretbinder.dev_secretbindings.yaml by src/api/codegen/gen-types.ts. Do not edit:
// change the CRD and run `npm run gen:types`.

import type { Condition } from './conditions.ts';
import type { V1LabelSelector, V1ListMeta, V1ObjectMeta } from '@kubernetes/client-node';

/**
 * SecretBinding maps secrets of one or more backends to files in the pods it selects. Its files are served only to pods matching podSelector (and serviceAccountNames, if set), and only to the containers it lists, as in-memory files; values never reach etcd.
 */
export interface SecretBinding {
  apiVersion: 'secretbinder.dev/v1alpha1';
  kind: 'SecretBinding';
  metadata: V1ObjectMeta;
  spec: SecretBindingSpec;
  status?: SecretBindingStatus;
}
/**
 * Which secrets go to which files, for which pods and containers, and how changes reach them.
 */
export interface SecretBindingSpec {
  backendRef: SecretBindingBackendRef;
  /**
   * Further backends this binding reads from, each under a short name that files, items and sources use in their `backend` field (the default backendRef is named `default`). A binding reads from at most 8 backends; all of its files still change together, in one atomic swap with one content hash. A SecretBackend is always one of this namespace; another namespace's store is reachable only through a ClusterSecretBackend whose access rules admit this namespace.
   *
   * @maxItems 7
   */
  backends?: SecretBindingNamedBackend[];
  /**
   * The pods that receive the files, by label, in this namespace. An empty selector ({}) selects every pod of the namespace.
   */
  podSelector: V1LabelSelector;
  /**
   * If set, only pods running as one of these service accounts (in this namespace) receive the files, in addition to matching podSelector.
   *
   * @maxItems 64
   *
   * Items: A service account name.
   */
  serviceAccountNames?: string[];
  /**
   * Names of the containers (including init and sidecar containers) that may mount the files. A pod in which any other container mounts the volume is refused.
   *
   * @maxItems 64
   *
   * Items: A container name.
   */
  containers: string[];
  /**
   * The files of the volume. Each is either a single secret (key, with optional property and version) or a formatted file (format and items) built from several.
   *
   * @maxItems 128
   */
  files: SecretBindingFile[];
  /**
   * How often the versions of this binding's secrets are checked, as a duration (at least 10s, at most 24h). Empty uses the backend's refreshInterval. Checks are shared with every other binding reading the same secrets.
   */
  refreshInterval?: string;
  /**
   * How the files reach the pods. Empty uses the chart-wide default (agent.defaultDeliveryMode, normally csi).
   */
  delivery?: {
    /**
     * csi mounts a tmpfs through the node plugin (a privileged DaemonSet; no container is added to the pod). agent adds the secret-binder agent to each pod the webhook injects: an init container (rotation RollingRestart or None) or a native sidecar (Refresh) writing into a memory-backed emptyDir, with no node privileges, for nodes and namespaces that forbid privileged pods (Pod Security restricted, serverless nodes). Empty uses the chart-wide default.
     */
    mode?: 'csi' | 'agent';
    /**
     * agent mode: the sizeLimit of the memory-backed emptyDir holding the files (a quantity such as 512Ki or 4Mi, at most 64Mi). Defaults to 1Mi.
     */
    sizeLimit?: string;
  };
  rotation?: SecretBindingRotation;
  onBackendUnavailable?: SecretBindingOnBackendUnavailable;
}
/**
 * The default backend: every file (and formatted-file item) that names no backend of its own reads from it. Files may name another backend of `backends` instead.
 */
export interface SecretBindingBackendRef {
  /**
   * SecretBackend (in this binding's namespace) or ClusterSecretBackend (whose access rules must admit this namespace and keys). Defaults to SecretBackend.
   */
  kind?: 'SecretBackend' | 'ClusterSecretBackend';
  /**
   * Name of the backend.
   */
  name: string;
}
/**
 * One named backend of the binding.
 */
export interface SecretBindingNamedBackend {
  /**
   * The name files use for this backend (a DNS label; `default` is reserved for backendRef).
   */
  name: string;
  backendRef: SecretBindingNamedBackendRef;
}
/**
 * The backend this name stands for.
 */
export interface SecretBindingNamedBackendRef {
  /**
   * SecretBackend (in this binding's namespace) or ClusterSecretBackend (whose access rules must admit this namespace and keys). Defaults to SecretBackend.
   */
  kind?: 'SecretBackend' | 'ClusterSecretBackend';
  /**
   * Name of the backend.
   */
  name: string;
}
/**
 * One file of the volume.
 */
export interface SecretBindingFile {
  /**
   * Path of the file relative to the volume root, e.g. db/password or app.env. Subdirectories are created as needed.
   */
  path: string;
  /**
   * The backend this file (a single secret, or every item of a formatted file that names none of its own) reads from, by its name in backends. Empty or `default` means backendRef.
   */
  backend?: string;
  /**
   * The secret in the backend (Vault: path under the mount, e.g. app/db; AWS: secret name or ARN; Azure: secret name). Makes this a single-secret file.
   */
  key?: string;
  from?: SecretBindingSource;
  fallback?: SecretBindingFallbackSource;
  /**
   * Writes only this field of the secret's JSON document (Vault KV data is always a JSON object). Nested fields are separated by '.', e.g. credentials.password. Empty writes the whole document.
   */
  property?: string;
  /**
   * Pins a version instead of following the latest (Vault KV v2: version number; AWS: VersionId; Azure: version id). A pinned file never rotates.
   */
  version?: string;
  /**
   * AWS Secrets Manager staging label to read, e.g. AWSPREVIOUS. Empty means AWSCURRENT. Other providers refuse it.
   */
  versionStage?: string;
  /**
   * File permission bits, between 0 and 0777 (octal). Write it in octal in YAML (0440) or in decimal in JSON (288). Defaults to 0440 (288).
   */
  mode?: number;
  /**
   * Makes this a formatted file holding one entry per item: a JSON object, KEY=value lines (dotenv), Java properties, or a YAML mapping.
   */
  format?: 'json' | 'dotenv' | 'properties' | 'yaml';
  /**
   * The entries of a formatted file, in order.
   *
   * @maxItems 64
   */
  items?: SecretBindingFileItem[];
}
/**
 * The source of a single-secret file that has a fallback (instead of key): the first choice. Status (sources) shows which of from and fallback served the file.
 */
export interface SecretBindingSource {
  /**
   * The backend to read from, by its name in backends; `default` (or empty) is backendRef.
   */
  backend?: string;
  /**
   * The secret in that backend.
   */
  key: string;
  /**
   * Takes only this field of the secret's JSON document; nested fields are separated by '.'.
   */
  property?: string;
  /**
   * Pins a version instead of following the latest.
   */
  version?: string;
  /**
   * AWS Secrets Manager staging label to read, e.g. AWSPREVIOUS. Other providers refuse it.
   */
  versionStage?: string;
}
/**
 * Served when from cannot be (its key or property does not exist, or its backend fails with no last-known-good content left), e.g. the old store during a migration.
 */
export interface SecretBindingFallbackSource {
  /**
   * The backend to read from, by its name in backends; `default` (or empty) is backendRef.
   */
  backend?: string;
  /**
   * The secret in that backend.
   */
  key: string;
  /**
   * Takes only this field of the secret's JSON document; nested fields are separated by '.'.
   */
  property?: string;
  /**
   * Pins a version instead of following the latest.
   */
  version?: string;
  /**
   * AWS Secrets Manager staging label to read, e.g. AWSPREVIOUS. Other providers refuse it.
   */
  versionStage?: string;
}
/**
 * One entry of a formatted file.
 */
export interface SecretBindingFileItem {
  /**
   * Name of the entry in the file (JSON/YAML field, dotenv variable, property key).
   */
  name: string;
  /**
   * The backend this entry reads from, by its name in backends; empty uses the file's backend.
   */
  backend?: string;
  /**
   * The secret in the backend (Vault path under the mount, AWS secret name or ARN, Azure secret name).
   */
  key: string;
  /**
   * Takes only this field of the secret's JSON document; nested fields are separated by '.'.
   */
  property?: string;
  /**
   * Pins a version instead of following the latest.
   */
  version?: string;
  /**
   * AWS Secrets Manager staging label to read, e.g. AWSPREVIOUS. Other providers refuse it.
   */
  versionStage?: string;
}
/**
 * What happens in consuming pods when the content of the files changes.
 */
export interface SecretBindingRotation {
  /**
   * Refresh swaps the files in place, atomically (the application re-reads them); RollingRestart also restarts the owning workloads (Deployment, StatefulSet, DaemonSet) with their own rollout; None leaves running pods on the content they started with. Defaults to Refresh.
   */
  strategy?: 'Refresh' | 'RollingRestart' | 'None';
  /**
   * RollingRestart only: waits this long after a change before restarting, so several changes in a row cause one restart (0s to 1h). Refresh delivers a change at once. Defaults to 30s.
   */
  debounce?: string;
}
/**
 * What new mounts get while the backend cannot be read. Files already in running pods are never removed or changed because of an outage.
 */
export interface SecretBindingOnBackendUnavailable {
  /**
   * ServeLastKnownGood gives new mounts the last content read successfully (held in the controller's memory only) up to maxStaleness old; Fail makes new mounts wait and fail until the backend answers. Defaults to ServeLastKnownGood.
   */
  policy?: 'ServeLastKnownGood' | 'Fail';
  /**
   * The oldest last-known-good content that may still be served, as a duration (e.g. 24h). Empty means no limit.
   */
  maxStaleness?: string;
}
/**
 * The observed state of the binding, written by the controller. It holds keys, versions and keyed HMACs only, never a secret value.
 */
export interface SecretBindingStatus {
  /**
   * The metadata.generation of the spec this status describes.
   */
  observedGeneration?: number;
  /**
   * Ready (the files are resolved and served to entitled pods) and Degraded (serving, but from last-known-good content or with stale consumers). Reasons come from one closed list.
   *
   * @maxItems 8
   *
   * Items: One aspect of the object's state (the standard metav1.Condition shape).
   */
  conditions?: Condition[];
  /**
   * A keyed HMAC (hmac-sha256:<hex>) of the current file set. It changes exactly when the content changes; the key lives only in the controller, so it reveals nothing about the values.
   */
  contentHmac?: string;
  /**
   * The backend version of each secret the current content was built from.
   *
   * @maxItems 1024
   */
  backendVersions?: SecretBindingBackendVersion[];
  /**
   * The health of each backend the binding reads from, as seen by its last resolution. When one fails, the others' files stay current and its own files hold their last-known-good content (up to maxStaleness).
   *
   * @maxItems 8
   */
  backends?: SecretBindingBackendHealth[];
  /**
   * For every file with a fallback, which of its sources served the current content.
   *
   * @maxItems 128
   */
  sources?: SecretBindingSourceServed[];
  /**
   * When the controller last read this binding's secrets from the backend because something changed (first sync, new versions, a new spec). Version checks that find nothing new do not update it.
   */
  lastSyncTime?: string;
  /**
   * When the content last changed after the first sync and was delivered to the consumers.
   */
  lastRotationTime?: string;
  consumers?: SecretBindingConsumers;
}
/**
 * One secret and its version.
 */
export interface SecretBindingBackendVersion {
  /**
   * The binding's name of the backend the secret was read from (default is backendRef).
   */
  backend?: string;
  /**
   * The secret in the backend.
   */
  key: string;
  /**
   * The backend's version id of what was read.
   */
  version: string;
}
/**
 * One backend of the binding and how its reads went.
 */
export interface SecretBindingBackendHealth {
  /**
   * The binding's name of the backend (default for backendRef).
   */
  name: string;
  /**
   * SecretBackend or ClusterSecretBackend.
   */
  kind: string;
  /**
   * The name of the backend object.
   */
  backendName: string;
  /**
   * Current (every read of it succeeded), LastKnownGood (it failed and its files hold the last content read from it) or Failed (it failed with nothing to serve in its place).
   */
  state: 'Current' | 'LastKnownGood' | 'Failed';
  /**
   * Reconciled when Current; otherwise why it failed, from the closed list of reasons.
   */
  reason: string;
  /**
   * What failed (keys and errors, never a value).
   */
  message?: string;
}
/**
 * One file with a fallback.
 */
export interface SecretBindingSourceServed {
  /**
   * The file's path in the volume.
   */
  path: string;
  /**
   * Which source the current content of the file came from.
   */
  served: 'from' | 'fallback';
}
/**
 * Who uses the files now.
 */
export interface SecretBindingConsumers {
  /**
   * Pods that mount the files.
   */
  pods?: number;
  /**
   * Distinct owning workloads (Deployments, StatefulSets, DaemonSets, Jobs, bare pods) of those pods.
   */
  workloads?: number;
  /**
   * Consuming pods that do not hold the current content (yet).
   */
  stale?: number;
}

/** A list of SecretBinding objects, as the API server returns it. */
export interface SecretBindingList {
  apiVersion: 'secretbinder.dev/v1alpha1';
  kind: 'SecretBindingList';
  metadata: V1ListMeta;
  items: SecretBinding[];
}
