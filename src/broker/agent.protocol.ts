/**
 * Agent mode (ADR 0250): the names a pod the webhook turned into an agent pod carries, shared by the
 * webhook (which writes them), the broker (which proves entitlement from them) and the agent (which
 * runs by them). Plain constants and the wire shapes of the agent's two endpoints; no imports with
 * weight, so the agent can load this file.
 *
 * The agent authenticates with the pod's own projected service-account token (audience
 * `secretbinder.dev`) in `Authorization: Bearer …`: the token names the pod, so the bodies do not.
 */

/** The agent's container name (an init container, or a native sidecar for Refresh bindings). */
export const agentContainerName = 'secretbinder-agent';

/** The projected token volume only the agent container mounts. */
export const agentTokenVolumeName = 'secretbinder-agent-token';
export const agentTokenDir = '/var/run/secrets/secretbinder.dev/agent';
export const agentTokenFile = 'token';
/** The kubelet rotates the token at 80 % of this; 600 s is the API server's minimum. */
export const agentTokenExpirationSeconds = 600;

/** Where the agent mounts the memory volume of one binding (read-write; listed containers mount it read-only). */
export const agentMountPath = (binding: string): string => `${agentMountRoot}/${binding}`;
const agentMountRoot = '/var/run/secretbinder-agent';

/** The binding whose volume the agent mounts at `mountPath`; undefined for any other path. */
export function bindingOfAgentMount(mountPath: string): string | undefined {
  const prefix = `${agentMountRoot}/`;
  const rest = mountPath.startsWith(prefix) ? mountPath.slice(prefix.length) : '';
  return rest !== '' && !rest.includes('/') ? rest : undefined;
}


/** `POST /v1/agent/publish`: the file set of one binding for the pod the bearer token is bound to. */
export interface AgentPublishRequest {
  readonly binding: string;
}

/** `POST /v1/agent/changes` (long poll): which of the pod's bindings have new content, or are revoked. */
export interface AgentChangesRequest {
  readonly bindings: readonly { readonly binding: string; readonly contentHash: string }[];
  readonly waitSeconds: number;
}
