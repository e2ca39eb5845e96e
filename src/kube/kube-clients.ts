import type {
  AdmissionregistrationV1Api,
  AppsV1Api,
  AuthenticationV1Api,
  CoreV1Api,
  CustomObjectsApi,
} from '@kubernetes/client-node';
import { requestJson, type KubeRequest, type KubeTransport } from '../runtime/kube-request.ts';

export { loadKubeConnection, type KubeConfigSource } from './kube-connection.ts';

/*
 * The API calls the controller makes, with the method names and parameter objects of
 * client-node's generated classes (whose types we keep: `import type` costs nothing at run time),
 * sent through the runtime's JSON transport (ADR 0200). Importing the generated classes loads all of
 * them with every model (~70 MiB RSS); the controller makes 25 kinds of call. Answers are the API
 * server's JSON as is: timestamps stay strings, never the library's `Date`s. Every patch is a JSON
 * merge patch, the only kind the controller sends. Errors are the runtime's `KubeApiError`.
 */

export type CoreApi = Pick<
  CoreV1Api,
  | 'createNamespacedEvent'
  | 'createNamespacedPodEviction'
  | 'createNamespacedSecret'
  | 'createNamespacedServiceAccountToken'
  | 'patchNamespacedPod'
  | 'readNamespacedPod'
  | 'readNamespacedSecret'
  | 'readNamespacedServiceAccount'
  | 'replaceNamespacedSecret'
>;
export type AppsApi = Pick<
  AppsV1Api,
  'patchNamespacedDaemonSet' | 'patchNamespacedDeployment' | 'patchNamespacedStatefulSet' | 'readNamespacedDaemonSet' | 'readNamespacedDeployment' | 'readNamespacedStatefulSet'
>;
export type AuthApi = Pick<AuthenticationV1Api, 'createSelfSubjectReview' | 'createTokenReview'>;
export type CustomApi = Pick<CustomObjectsApi, 'patchClusterCustomObjectStatus' | 'patchNamespacedCustomObjectStatus'>;
export type AdmissionApi = Pick<
  AdmissionregistrationV1Api,
  'readMutatingWebhookConfiguration' | 'readValidatingWebhookConfiguration' | 'replaceMutatingWebhookConfiguration' | 'replaceValidatingWebhookConfiguration'
>;

/** The API clients the controller uses; created once and passed down. */
export interface KubeClients {
  readonly transport: KubeTransport;
  readonly core: CoreApi;
  readonly apps: AppsApi;
  readonly auth: AuthApi;
  readonly custom: CustomApi;
  readonly admission: AdmissionApi;
}

/** Short single requests: a call that hangs this long fails (client-node set no limit at all). */
const callTimeoutMs = 60_000;

export function createKubeClients(transport: KubeTransport): KubeClients {
  const call = async <T>(method: KubeRequest['method'], path: string, body?: unknown): Promise<T> =>
    (await requestJson(transport, {
      method,
      path,
      ...(body === undefined ? {} : { body }),
      ...(method === 'PATCH' ? { contentType: 'application/merge-patch+json' } : {}),
      signal: AbortSignal.timeout(callTimeoutMs),
    })) as T;
  const ns = (namespace: string): string => `/namespaces/${encodeURIComponent(namespace)}`;
  const n = (name: string): string => `/${encodeURIComponent(name)}`;
  const core = '/api/v1';
  const apps = '/apis/apps/v1';
  const admission = '/apis/admissionregistration.k8s.io/v1';
  const custom = (p: { group: string; version: string; plural: string }): string =>
    `/apis/${encodeURIComponent(p.group)}/${encodeURIComponent(p.version)}`;
  return {
    transport,
    core: {
      createNamespacedEvent: (p) => call('POST', `${core}${ns(p.namespace)}/events`, p.body),
      createNamespacedPodEviction: (p) => call('POST', `${core}${ns(p.namespace)}/pods${n(p.name)}/eviction`, p.body),
      createNamespacedSecret: (p) => call('POST', `${core}${ns(p.namespace)}/secrets`, p.body),
      createNamespacedServiceAccountToken: (p) => call('POST', `${core}${ns(p.namespace)}/serviceaccounts${n(p.name)}/token`, p.body),
      patchNamespacedPod: (p) => call('PATCH', `${core}${ns(p.namespace)}/pods${n(p.name)}`, p.body),
      readNamespacedPod: (p) => call('GET', `${core}${ns(p.namespace)}/pods${n(p.name)}`),
      readNamespacedSecret: (p) => call('GET', `${core}${ns(p.namespace)}/secrets${n(p.name)}`),
      readNamespacedServiceAccount: (p) => call('GET', `${core}${ns(p.namespace)}/serviceaccounts${n(p.name)}`),
      replaceNamespacedSecret: (p) => call('PUT', `${core}${ns(p.namespace)}/secrets${n(p.name)}`, p.body),
    },
    apps: {
      patchNamespacedDaemonSet: (p) => call('PATCH', `${apps}${ns(p.namespace)}/daemonsets${n(p.name)}`, p.body),
      patchNamespacedDeployment: (p) => call('PATCH', `${apps}${ns(p.namespace)}/deployments${n(p.name)}`, p.body),
      patchNamespacedStatefulSet: (p) => call('PATCH', `${apps}${ns(p.namespace)}/statefulsets${n(p.name)}`, p.body),
      readNamespacedDaemonSet: (p) => call('GET', `${apps}${ns(p.namespace)}/daemonsets${n(p.name)}`),
      readNamespacedDeployment: (p) => call('GET', `${apps}${ns(p.namespace)}/deployments${n(p.name)}`),
      readNamespacedStatefulSet: (p) => call('GET', `${apps}${ns(p.namespace)}/statefulsets${n(p.name)}`),
    },
    auth: {
      createSelfSubjectReview: (p) => call('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', p.body),
      createTokenReview: (p) => call('POST', '/apis/authentication.k8s.io/v1/tokenreviews', p.body),
    },
    custom: {
      patchClusterCustomObjectStatus: (p) => call('PATCH', `${custom(p)}/${encodeURIComponent(p.plural)}${n(p.name)}/status`, p.body),
      patchNamespacedCustomObjectStatus: (p) => call('PATCH', `${custom(p)}${ns(p.namespace)}/${encodeURIComponent(p.plural)}${n(p.name)}/status`, p.body),
    },
    admission: {
      readMutatingWebhookConfiguration: (p) => call('GET', `${admission}/mutatingwebhookconfigurations${n(p.name)}`),
      readValidatingWebhookConfiguration: (p) => call('GET', `${admission}/validatingwebhookconfigurations${n(p.name)}`),
      replaceMutatingWebhookConfiguration: (p) => call('PUT', `${admission}/mutatingwebhookconfigurations${n(p.name)}`, p.body),
      replaceValidatingWebhookConfiguration: (p) => call('PUT', `${admission}/validatingwebhookconfigurations${n(p.name)}`, p.body),
    },
  };
}
