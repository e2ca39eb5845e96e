import { fromWebToken } from '@aws-sdk/credential-provider-web-identity';
import type { BackendContext } from '../backend.port.ts';
import { mapContextError } from '../provider.support.ts';
import type { AwsConfig } from './aws.config.ts';
import { mapAwsError } from './aws.errors.ts';

/**
 * AWS credentials for one backend identity, as a provider *function* the SDK client memoizes: it
 * is called again only when the credentials it returned are within five minutes of their
 * `expiration` (the SDK's refresh window), so there is one login per credential lifetime.
 *
 * - webIdentity: a fresh service-account token (TokenRequest, audience `sts.amazonaws.com` by
 *   default) exchanged through AssumeRoleWithWebIdentity by the SDK's own web-identity provider;
 *   the token goes from memory to STS, never to a file.
 * - staticKeys: the key pair read from a Secret, re-read every 15 minutes (rotation by the user).
 * - defaultChain: undefined — the SDK's default chain of the controller's pod.
 *
 * ADR 0063.
 */

/** Life given to statically read keys, so the SDK asks again (re-reads the Secret) after ~10 min. */
const staticKeysLifetimeMs = 15 * 60_000;
/** The service-account token is only presented to STS once. */
const webIdentityTokenSeconds = 600;

/** AWS credentials as the SDK takes them (structurally its AwsCredentialIdentity). */
export interface AwsCredentialIdentity {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
  readonly expiration?: Date;
}

export type AwsCredentialIdentityProvider = () => Promise<AwsCredentialIdentity>;

/** What the credentials function learnt, so error messages can strip it verbatim. */
export interface KnownCredentials {
  current(): readonly string[];
}

export function awsCredentials(
  config: AwsConfig,
  context: BackendContext,
  now: () => number = Date.now,
): { provider: AwsCredentialIdentityProvider | undefined; known: KnownCredentials } {
  let known: readonly string[] = [];
  const remember = (identity: AwsCredentialIdentity, extra: readonly string[] = []): AwsCredentialIdentity => {
    known = [identity.accessKeyId, identity.secretAccessKey, identity.sessionToken ?? '', ...extra].filter((s) => s !== '');
    return identity;
  };
  const knownCredentials: KnownCredentials = { current: () => known };
  const auth = config.auth;

  if (auth.method === 'defaultChain') return { provider: undefined, known: knownCredentials };

  if (auth.method === 'staticKeys') {
    const provider: AwsCredentialIdentityProvider = async () => {
      const what = `cannot read AWS keys from Secret ${context.namespace}/${auth.secretName}`;
      const read = (key: string): Promise<string> =>
        context.readOperatorSecret(auth.secretName, key).then(
          (value) => value.revealText().trim(),
          (error: unknown) => {
            throw mapContextError(error, `${what} (key "${key}")`);
          },
        );
      const [accessKeyId, secretAccessKey, sessionToken] = await Promise.all([
        read(auth.accessKeyIdKey),
        read(auth.secretAccessKeyKey),
        auth.sessionTokenKey === undefined ? Promise.resolve(undefined) : read(auth.sessionTokenKey),
      ]);
      context.onLogin('awsSecretsManager');
      return remember({
        accessKeyId,
        secretAccessKey,
        ...(sessionToken === undefined || sessionToken === '' ? {} : { sessionToken }),
        expiration: new Date(now() + staticKeysLifetimeMs),
      });
    };
    return { provider, known: knownCredentials };
  }

  const provider: AwsCredentialIdentityProvider = async () => {
    let jwt: string;
    try {
      const minted = await context.requestServiceAccountToken({
        namespace: context.namespace,
        serviceAccountName: auth.serviceAccountName,
        audiences: [auth.audience],
        expirationSeconds: webIdentityTokenSeconds,
        recipient: config.stsEndpoint ?? `https://sts.${config.region}.amazonaws.com`,
      });
      jwt = minted.token.revealText();
    } catch (error) {
      throw mapContextError(error, `cannot obtain a token for service account ${context.namespace}/${auth.serviceAccountName}`);
    }
    try {
      const identity = await fromWebToken({
        roleArn: auth.roleArn,
        webIdentityToken: jwt,
        roleSessionName: `secret-binder-${context.namespace}`.slice(0, 64),
        clientConfig: {
          region: config.region,
          maxAttempts: 2,
          ...(config.stsEndpoint === undefined ? {} : { endpoint: config.stsEndpoint }),
        },
      })();
      context.onLogin('awsSecretsManager');
      return remember(identity, [jwt]);
    } catch (error) {
      throw mapAwsError(error, { operation: 'AssumeRoleWithWebIdentity', credentials: [jwt] });
    }
  };
  return { provider, known: knownCredentials };
}
