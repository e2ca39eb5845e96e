/** What the Event Grid receiver's Entra token check is configured with (ADR 0225); no imports, so the configuration loads no JWT library. */
export interface EntraTokenCheckOptions {
  /** The webhook's app registration: its application id or id URI, as the subscription names it. */
  readonly audience: string;
  /** The tenant's issuer, e.g. `https://sts.windows.net/<tenant>/` (v1 tokens) or `https://login.microsoftonline.com/<tenant>/v2.0`. */
  readonly issuer: string;
  /** The tenant's signing keys, e.g. `https://login.microsoftonline.com/<tenant>/discovery/v2.0/keys`. */
  readonly jwksUrl: string;
  /** The application the token must be issued to: Event Grid's ({@link eventGridAppId} in Azure's public cloud). */
  readonly senderAppId: string;
}

/** Event Grid's application id in Azure's public cloud (Microsoft's secure webhook delivery scripts). */
export const eventGridAppId = '4962773b-9cdb-44cf-a8bf-237846a00ab7';
