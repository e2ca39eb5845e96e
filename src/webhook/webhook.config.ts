import { isIP } from 'node:net';

/**
 * The webhook's part of the controller configuration (parsed in `config/controller.config.ts` from
 * the `--webhook-*` flags, then passed down as plain data). Off unless `--webhook-address` is given.
 */
export type WebhookConfig =
  | { readonly enabled: false }
  | {
      readonly enabled: true;
      readonly host: string;
      readonly port: number;
      readonly tls:
        | { readonly kind: 'files'; readonly certFile: string; readonly keyFile: string; readonly caFile: string | undefined }
        /** A CA and certificate in a Secret of the operator namespace, created and renewed by the controller (ADR 0155). */
        | {
            readonly kind: 'secret';
            readonly secretName: string;
            readonly dnsNames: readonly string[];
            readonly ipAddresses: readonly string[];
            readonly validitySeconds: number;
          }
        | { readonly kind: 'self-managed'; readonly dnsNames: readonly string[]; readonly ipAddresses: readonly string[] };
      /** The MutatingWebhookConfiguration and ValidatingWebhookConfiguration whose caBundle we keep. */
      readonly configurationNames: { readonly mutating: string; readonly validating: string };
    };

export interface WebhookFlags {
  readonly address: string | undefined;
  readonly certFile: string | undefined;
  readonly keyFile: string | undefined;
  readonly caFile: string | undefined;
  /** Comma-separated names of the self-managed certificate; IP addresses become IP SANs. */
  readonly dnsNames: string | undefined;
  readonly configurationName: string | undefined;
  /** The Secret holding the controller-managed certificate; unset: files or per-replica self-managed. */
  readonly tlsSecret?: string | undefined;
  readonly managedTlsValiditySeconds?: number;
}

/** Builds the config from validated flag values; returns a problem text for inconsistent flags. */
export function webhookConfigFrom(flags: WebhookFlags, operatorNamespace: string): WebhookConfig | string {
  if (flags.address === undefined) return { enabled: false };
  const match = /^([^:]+):(\d{1,5})$/.exec(flags.address);
  const port = Number(match?.[2]);
  if (match === null || port > 65_535) return '--webhook-address: must be host:port, e.g. 0.0.0.0:9443';
  if ((flags.certFile === undefined) !== (flags.keyFile === undefined)) {
    return '--webhook-cert-file: give both --webhook-cert-file and --webhook-key-file, or neither (self-managed certificate)';
  }
  if (flags.tlsSecret !== undefined && flags.certFile !== undefined) return '--webhook-tls-secret: give --webhook-tls-secret or --webhook-cert-file/--webhook-key-file, not both';
  const name = flags.configurationName ?? 'secret-binder-webhook';
  const names = (flags.dnsNames ?? `secret-binder-webhook.${operatorNamespace}.svc`)
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n !== '');
  return {
    enabled: true,
    host: match[1] ?? '',
    port,
    tls:
      flags.certFile !== undefined && flags.keyFile !== undefined
        ? { kind: 'files', certFile: flags.certFile, keyFile: flags.keyFile, caFile: flags.caFile }
        : flags.tlsSecret !== undefined
          ? {
              kind: 'secret',
              secretName: flags.tlsSecret,
              dnsNames: names.filter((n) => isIP(n) === 0),
              ipAddresses: names.filter((n) => isIP(n) !== 0),
              validitySeconds: flags.managedTlsValiditySeconds ?? 90 * 86_400,
            }
          : { kind: 'self-managed', dnsNames: names.filter((n) => isIP(n) === 0), ipAddresses: names.filter((n) => isIP(n) !== 0) },
    configurationNames: { mutating: name, validating: name },
  };
}
