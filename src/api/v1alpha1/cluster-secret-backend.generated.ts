// Generated from crds/secretbinder.dev_clustersecretbackends.yaml by src/api/codegen/gen-types.ts. Do not edit:
// change the CRD and run `npm run gen:types`.

import type { Condition } from './conditions.ts';
import type { V1LabelSelector, V1ListMeta, V1ObjectMeta } from '@kubernetes/client-node';

/**
 * ClusterSecretBackend is a cluster-wide secret store (Vault/OpenBao, AWS Secrets Manager, Azure Key Vault) that SecretBindings of the namespaces its access rules admit read from. It names exactly one provider and how to authenticate to it. Secrets it refers to live in the controller's namespace, and so do the service accounts it authenticates as.
 */
export interface ClusterSecretBackend {
  apiVersion: 'secretbinder.dev/v1alpha1';
  kind: 'ClusterSecretBackend';
  metadata: V1ObjectMeta;
  spec: ClusterSecretBackendSpec;
  status?: ClusterSecretBackendStatus;
}
/**
 * The desired backend: exactly one provider block (vault, awsSecretsManager, azureKeyVault, conjur or fake), the access rules, the default refresh interval and the rate budget.
 */
export interface ClusterSecretBackendSpec {
  vault?: ClusterSecretBackendVault;
  awsSecretsManager?: ClusterSecretBackendAwsSecretsManager;
  azureKeyVault?: ClusterSecretBackendAzureKeyVault;
  conjur?: ClusterSecretBackendConjur;
  fake?: ClusterSecretBackendFake;
  /**
   * Which namespaces may use this backend and which keys each may read. A SecretBinding in namespace N may read key K only if some rule matches N and lists a prefix of K.
   *
   * @maxItems 64
   */
  access: ClusterSecretBackendAccessRule[];
  /**
   * How often the version of each secret read through this backend is checked, as a duration (e.g. 30s, 5m, 1h; at least 10s, at most 24h). A binding may set its own. Defaults to 5m.
   */
  refreshInterval?: string;
  rateLimit?: ClusterSecretBackendRateLimit;
}
/**
 * HashiCorp Vault or OpenBao, read through a KV secrets engine (version 1 or 2).
 */
export interface ClusterSecretBackendVault {
  /**
   * Base URL of the Vault server, e.g. https://vault.example.com:8200. With kubernetes auth it must be https:// (it receives a service account token); plain http:// only to a loopback address, and the controller then needs its development flag.
   */
  address: string;
  /**
   * Path where the KV secrets engine is mounted, without slashes around it. Defaults to "secret".
   */
  mount?: string;
  /**
   * Version of the KV secrets engine at the mount: 2 (versioned; supports version pins and cheap version checks through metadata) or 1 (unversioned; the version of a secret is a hash the controller derives). Defaults to 2.
   */
  kvVersion?: 1 | 2;
  /**
   * Vault Enterprise / OpenBao namespace to work in (X-Vault-Namespace). Empty means the root namespace.
   */
  namespace?: string;
  /**
   * Base64-encoded PEM certificates that verify the server's TLS certificate, in addition to the system roots. Not needed for http:// addresses.
   */
  caBundle?: string;
  auth: ClusterSecretBackendVaultAuth;
}
/**
 * How the controller logs in to Vault; exactly one of kubernetes, appRole, token.
 */
export interface ClusterSecretBackendVaultAuth {
  /**
   * Vault's kubernetes auth method: the controller requests a short-lived token for the service account below (TokenRequest) and logs in with it.
   */
  kubernetes?: {
    /**
     * The Vault role to log in as.
     */
    role: string;
    /**
     * Path where the kubernetes auth method is mounted. Defaults to "kubernetes".
     */
    mountPath?: string;
    /**
     * The service account, in the controller's namespace, whose token is presented to Vault. It must opt in: its annotation secretbinder.dev/backends lists this backend (ClusterSecretBackend/<name>), else ServiceAccountNotOptedIn. Never the controller's or the node plugin's own account (ServiceAccountReserved).
     */
    serviceAccountRef: {
      /**
       * Name of the service account.
       */
      name: string;
    };
    /**
     * Audience of the service account token, e.g. vault; must match the role's audience. Required, and never one of the API server's audiences: the controller refuses to mint a token that would be a credential of this cluster (AudienceNotAllowed).
     */
    audience: string;
  };
  /**
   * Vault's AppRole auth method, with the secret id read from a Secret in the controller's namespace.
   */
  appRole?: {
    /**
     * The role id (not secret) of the AppRole.
     */
    roleId: string;
    /**
     * The key of a Secret, in the controller's namespace, that holds the AppRole secret id.
     */
    secretRef: {
      /**
       * Name of the Secret.
       */
      name: string;
      /**
       * Key in the Secret's data.
       */
      key: string;
    };
    /**
     * Path where the AppRole auth method is mounted. Defaults to "approle".
     */
    mountPath?: string;
  };
  /**
   * A static Vault token read from a Secret in the controller's namespace. Meant for development.
   */
  token?: {
    /**
     * The key of a Secret, in the controller's namespace, that holds the Vault token.
     */
    secretRef: {
      /**
       * Name of the Secret.
       */
      name: string;
      /**
       * Key in the Secret's data.
       */
      key: string;
    };
  };
}
/**
 * AWS Secrets Manager in one region.
 */
export interface ClusterSecretBackendAwsSecretsManager {
  /**
   * AWS region of the secrets, e.g. eu-west-1.
   */
  region: string;
  /**
   * Overrides the Secrets Manager endpoint URL (VPC endpoints, FIPS endpoints, local emulators). Empty uses the regional AWS endpoint.
   */
  endpoint?: string;
  /**
   * Overrides the STS endpoint URL used by webIdentity auth. Empty uses the regional AWS endpoint.
   */
  stsEndpoint?: string;
  auth: ClusterSecretBackendAwsAuth;
}
/**
 * How the controller gets AWS credentials; exactly one of webIdentity, staticKeys, defaultChain.
 */
export interface ClusterSecretBackendAwsAuth {
  /**
   * Assume an IAM role with a token of the service account below (AssumeRoleWithWebIdentity, as IRSA / EKS pod identity federation do).
   */
  webIdentity?: {
    /**
     * ARN of the IAM role to assume, e.g. arn:aws:iam::123456789012:role/app-secrets.
     */
    roleArn: string;
    /**
     * The service account, in the controller's namespace, whose token is exchanged for AWS credentials. It must opt in: its annotation secretbinder.dev/backends lists this backend (ClusterSecretBackend/<name>), else ServiceAccountNotOptedIn. Never the controller's or the node plugin's own account (ServiceAccountReserved).
     */
    serviceAccountRef: {
      /**
       * Name of the service account.
       */
      name: string;
    };
    /**
     * Audience of the service account token. Defaults to "sts.amazonaws.com". Never one of the API server's audiences (AudienceNotAllowed).
     */
    audience?: string;
  };
  /**
   * A long-lived access key pair read from a Secret in the controller's namespace.
   */
  staticKeys?: {
    /**
     * The Secret, in the controller's namespace, holding the access key pair.
     */
    secretRef: {
      /**
       * Name of the Secret.
       */
      name: string;
      /**
       * Key in the Secret's data holding the access key id. Defaults to "accessKeyId".
       */
      accessKeyIdKey?: string;
      /**
       * Key in the Secret's data holding the secret access key. Defaults to "secretAccessKey".
       */
      secretAccessKeyKey?: string;
      /**
       * Key in the Secret's data holding a session token, for temporary credentials. Empty means none.
       */
      sessionTokenKey?: string;
    };
  };
  /**
   * The AWS SDK's default credential chain of the controller's pod (its environment, web identity file, instance or container role). Set it as {}.
   */
  defaultChain?: Record<string, never>;
}
/**
 * One Azure Key Vault.
 */
export interface ClusterSecretBackendAzureKeyVault {
  /**
   * URL of the vault, e.g. https://my-vault.vault.azure.net.
   */
  vaultUrl: string;
  /**
   * Key Vault REST API version to speak, e.g. 7.5. Empty uses the SDK's default.
   */
  serviceVersion?: string;
  /**
   * Base64-encoded PEM certificates that verify the vault's TLS certificate, in addition to the system roots (private endpoints with a private CA, emulators).
   */
  caBundle?: string;
  auth: ClusterSecretBackendAzureAuth;
}
/**
 * How the controller gets an Entra ID token; exactly one of workloadIdentity, clientSecret, managedIdentity.
 */
export interface ClusterSecretBackendAzureAuth {
  /**
   * Microsoft Entra Workload ID: a token of the service account below is exchanged for an Entra token of the given application (federated credential).
   */
  workloadIdentity?: {
    /**
     * The Entra tenant id (GUID) or domain.
     */
    tenantId: string;
    /**
     * Client (application) id of the app registration or user-assigned identity.
     */
    clientId: string;
    /**
     * The service account, in the controller's namespace, whose token is exchanged for an Entra token. It must opt in: its annotation secretbinder.dev/backends lists this backend (ClusterSecretBackend/<name>), else ServiceAccountNotOptedIn. Never the controller's or the node plugin's own account (ServiceAccountReserved).
     */
    serviceAccountRef: {
      /**
       * Name of the service account.
       */
      name: string;
    };
    /**
     * Audience of the service account token. Defaults to "api://AzureADTokenExchange". Never one of the API server's audiences (AudienceNotAllowed).
     */
    audience?: string;
    /**
     * Entra authority URL (sovereign clouds). Empty uses https://login.microsoftonline.com.
     */
    authorityHost?: string;
  };
  /**
   * An app registration's client secret, read from a Secret in the controller's namespace.
   */
  clientSecret?: {
    /**
     * The Entra tenant id (GUID) or domain.
     */
    tenantId: string;
    /**
     * Client (application) id of the app registration.
     */
    clientId: string;
    /**
     * The key of a Secret, in the controller's namespace, that holds the client secret.
     */
    secretRef: {
      /**
       * Name of the Secret.
       */
      name: string;
      /**
       * Key in the Secret's data.
       */
      key: string;
    };
    /**
     * Entra authority URL (sovereign clouds). Empty uses https://login.microsoftonline.com.
     */
    authorityHost?: string;
  };
  /**
   * The managed identity of the node / pod the controller runs on (Azure VMs and AKS). Set it as {} for the system-assigned identity.
   */
  managedIdentity?: {
    /**
     * Client id of a user-assigned managed identity. Empty uses the system-assigned identity.
     */
    clientId?: string;
  };
}
/**
 * One CyberArk Conjur account (Conjur Open Source, Conjur Enterprise / Secrets Manager Self-Hosted). Keys are variable ids, e.g. prod/db/password. Verified only against secret-binder's Conjur API double (ADR 0243).
 */
export interface ClusterSecretBackendConjur {
  /**
   * URL of the Conjur server (or follower), e.g. https://conjur.example.com.
   */
  applianceUrl: string;
  /**
   * The Conjur organization account, e.g. myorg.
   */
  account: string;
  /**
   * Base64-encoded PEM certificates that verify Conjur's TLS certificate, in addition to the system roots (Conjur's own CA, from conjur init).
   */
  caBundle?: string;
  auth: ClusterSecretBackendConjurAuth;
}
/**
 * How the controller gets a Conjur access token: jwt (authn-jwt with a service account token), apiKey (authn with a host's API key), or both — then the API key is the fallback when the JWT authenticator refuses the token.
 */
export interface ClusterSecretBackendConjurAuth {
  /**
   * The JWT authenticator (authn-jwt): a token of the service account below, signed by this cluster's API server, is exchanged for a Conjur access token. Configure the authenticator with the cluster's JWKS (jwks-uri or public-keys) and issuer.
   */
  jwt?: {
    /**
     * The service id of the authn-jwt webservice, e.g. k8s-cluster-1.
     */
    serviceId: string;
    /**
     * The Conjur host to log in as, e.g. host/secret-binder/controller; only when the authenticator has no token-app-property (else the token names it).
     */
    hostId?: string;
    /**
     * The service account, in the backend's namespace, whose token is sent. It must opt in: its annotation secretbinder.dev/backends lists this backend (<name>), else ServiceAccountNotOptedIn. Never the controller's or the node plugin's own account (ServiceAccountReserved).
     */
    serviceAccountRef: {
      /**
       * Name of the service account.
       */
      name: string;
    };
    /**
     * Audience of the service account token (the authenticator's audience variable). Defaults to "conjur". Never one of the API server's audiences (AudienceNotAllowed).
     */
    audience?: string;
  };
  /**
   * The default authenticator (authn): a Conjur host's login and its API key, read from a Secret in the backend's namespace.
   */
  apiKey?: {
    /**
     * The login, e.g. host/secret-binder/controller.
     */
    login: string;
    /**
     * The key of a Secret, in the backend's namespace, that holds the API key.
     */
    secretRef: {
      /**
       * Name of the Secret.
       */
      name: string;
      /**
       * Key in the Secret's data.
       */
      key: string;
    };
  };
}
/**
 * An in-memory store for demos and tests; never for real secrets. It holds no values in this object: the controller derives each value in memory from the seed, the key, the field and the version, and starts a new version of every key each rotationPeriod.
 */
export interface ClusterSecretBackendFake {
  /**
   * Input the generated values are derived from; change it to change every value. Defaults to "secret-binder-demo".
   */
  seed?: string;
  /**
   * The keys that exist in the store; reading any other key fails with KeyNotFound.
   *
   * @maxItems 256
   */
  keys: ClusterSecretBackendFakeKey[];
  /**
   * If set, every key gets a new version (and new values) each period, counted from the Unix epoch so every controller replica agrees. Empty keeps version 1 forever.
   */
  rotationPeriod?: string;
  /**
   * Simulates an outage: while true, every call fails with BackendUnavailable. Defaults to false.
   */
  unavailable?: boolean;
}
/**
 * One secret of the fake store.
 */
export interface ClusterSecretBackendFakeKey {
  /**
   * Name of the secret, as bindings refer to it.
   */
  key: string;
  /**
   * Makes the secret a JSON object with these fields (each a generated string). Without fields the secret is a single generated string.
   *
   * @maxItems 32
   *
   * Items: A field name of the JSON object.
   */
  fields?: string[];
}
/**
 * One access rule: the namespaces it admits (by name or by labels, exactly one of the two) and the key prefixes they may read.
 */
export interface ClusterSecretBackendAccessRule {
  /**
   * Names of the namespaces this rule admits.
   *
   * @maxItems 256
   *
   * Items: A namespace name.
   */
  namespaces?: string[];
  /**
   * Labels of the namespaces this rule admits. An empty selector ({}) admits every namespace.
   */
  namespaceSelector?: V1LabelSelector;
  /**
   * Key prefixes the admitted namespaces may read (plain string prefixes, e.g. "apps/payments/"). The empty string "" admits every key.
   *
   * @maxItems 64
   *
   * Items: A key prefix.
   */
  keyPrefixes: string[];
}
/**
 * The budget of calls the controller makes to this backend, shared by every binding and pod that reads through it.
 */
export interface ClusterSecretBackendRateLimit {
  /**
   * Sustained calls per second. Defaults to 10.
   */
  qps?: number;
  /**
   * Calls that may be made at once above the sustained rate. Defaults to 20.
   */
  burst?: number;
  /**
   * Calls in flight at the same time. Defaults to 4.
   */
  maxConcurrency?: number;
}
/**
 * The observed state of the backend, written by the controller.
 */
export interface ClusterSecretBackendStatus {
  /**
   * The metadata.generation of the spec this status describes.
   */
  observedGeneration?: number;
  /**
   * Ready (the configuration is valid and a login / authenticated call succeeded) and Degraded (working, but throttled or partly failing). Reasons come from one closed list.
   *
   * @maxItems 8
   *
   * Items: One aspect of the object's state (the standard metav1.Condition shape).
   */
  conditions?: Condition[];
}

/** A list of ClusterSecretBackend objects, as the API server returns it. */
export interface ClusterSecretBackendList {
  apiVersion: 'secretbinder.dev/v1alpha1';
  kind: 'ClusterSecretBackendList';
  metadata: V1ListMeta;
  items: ClusterSecretBackend[];
}
