import * as grpc from '@grpc/grpc-js';
import { loadCsiProtos } from './csi.server.ts';

/** The NodePublishVolume fields a kubelet sends for an inline ephemeral CSI volume. */
export interface NodePublishCall {
  readonly volumeId: string;
  readonly targetPath: string;
  readonly volumeContext: Readonly<Record<string, string>>;
  /** The pod's fsGroup, as the kubelet delegates it (VOLUME_MOUNT_GROUP). */
  readonly volumeMountGroup?: string;
  readonly readonly?: boolean;
  /** The volume capability's access mode; default SINGLE_NODE_WRITER. */
  readonly accessMode?: 'SINGLE_NODE_WRITER' | 'SINGLE_NODE_READER_ONLY' | 'MULTI_NODE_READER_ONLY';
}

type UnaryMethod = (request: object, callback: (err: grpc.ServiceError | null, response?: unknown) => void) => void;

/**
 * A gRPC client for our CSI and registration endpoints, speaking as the kubelet does (used by the
 * kubelet driver of the test harness and by tests).
 */
export class CsiClient {
  readonly #identity: grpc.Client;
  readonly #node: grpc.Client;

  constructor(csiSocket: string) {
    const protos = loadCsiProtos();
    const Identity = grpc.makeGenericClientConstructor(protos.identity, 'Identity');
    const Node = grpc.makeGenericClientConstructor(protos.node, 'Node');
    this.#identity = new Identity(`unix://${csiSocket}`, grpc.credentials.createInsecure());
    this.#node = new Node(`unix://${csiSocket}`, grpc.credentials.createInsecure());
  }

  getPluginInfo(): Promise<{ name: string; vendorVersion: string }> {
    return unary(this.#identity, 'GetPluginInfo', {});
  }

  probe(): Promise<{ ready: { value: boolean } | null }> {
    return unary(this.#identity, 'Probe', {});
  }

  nodeGetInfo(): Promise<{ nodeId: string }> {
    return unary(this.#node, 'NodeGetInfo', {});
  }

  nodeGetCapabilities(): Promise<{ capabilities: { rpc: { type: string } | null }[] }> {
    return unary(this.#node, 'NodeGetCapabilities', {});
  }

  async nodePublishVolume(call: NodePublishCall): Promise<void> {
    await unary(this.#node, 'NodePublishVolume', {
      volumeId: call.volumeId,
      targetPath: call.targetPath,
      volumeCapability: { mount: { fsType: '', mountFlags: [], volumeMountGroup: call.volumeMountGroup ?? '' }, accessMode: { mode: call.accessMode ?? 'SINGLE_NODE_WRITER' } },
      readonly: call.readonly ?? false,
      volumeContext: call.volumeContext,
    });
  }

  async nodeUnpublishVolume(volumeId: string, targetPath: string): Promise<void> {
    await unary(this.#node, 'NodeUnpublishVolume', { volumeId, targetPath });
  }

  close(): void {
    this.#identity.close();
    this.#node.close();
  }
}

/** A client of the kubelet registration endpoint, as the kubelet's plugin watcher calls it. */
export class RegistrationClient {
  readonly #client: grpc.Client;

  constructor(socket: string) {
    const Registration = grpc.makeGenericClientConstructor(loadCsiProtos().registration, 'Registration');
    this.#client = new Registration(`unix://${socket}`, grpc.credentials.createInsecure());
  }

  getInfo(): Promise<{ type: string; name: string; endpoint: string; supportedVersions: string[] }> {
    return unary(this.#client, 'GetInfo', {});
  }

  async notifyRegistrationStatus(pluginRegistered: boolean, error = ''): Promise<void> {
    await unary(this.#client, 'NotifyRegistrationStatus', { pluginRegistered, error });
  }

  close(): void {
    this.#client.close();
  }
}

function unary<T>(client: grpc.Client, method: string, request: object): Promise<T> {
  const fn = (client as unknown as Record<string, UnaryMethod | undefined>)[method];
  if (fn === undefined) return Promise.reject(new Error(`no method ${method}`));
  return new Promise<T>((resolve, reject) => {
    fn.call(client, request, (err, response) => {
      if (err !== null) reject(err);
      else resolve(response as T);
    });
  });
}
