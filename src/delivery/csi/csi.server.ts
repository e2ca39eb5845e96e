import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { mkdir, rm } from 'node:fs/promises';
import { dirname, isAbsolute, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { driverName } from '../../broker/broker.protocol.ts';
import type { Logger } from '../../observability/logger.ts';
import { sanitizeError } from '../../observability/sanitize.ts';
import { BrokerRefusal, BrokerUnreachable } from './broker.port.ts';
import type { NodePlugin } from './node-plugin.ts';
import { InvalidVolumeRequest, parseVolumeContext } from './volume-context.ts';

/** Proto files ship next to this module (the image copies `src/delivery/csi/*.proto`). */
const protoDir = dirname(fileURLToPath(import.meta.url));

const loaderOptions: protoLoader.Options = { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true };

function serviceOf(definition: protoLoader.PackageDefinition, name: string): grpc.ServiceDefinition {
  const service = definition[name];
  if (service === undefined || 'format' in service) throw new Error(`proto has no service ${name}`);
  return service;
}

/** The service definitions (and client constructors, for the kubelet driver and tests). */
export function loadCsiProtos(): {
  identity: grpc.ServiceDefinition;
  node: grpc.ServiceDefinition;
  registration: grpc.ServiceDefinition;
} {
  const csi = protoLoader.loadSync(`${protoDir}/csi.proto`, loaderOptions);
  const registration = protoLoader.loadSync(`${protoDir}/pluginregistration.proto`, loaderOptions);
  return {
    identity: serviceOf(csi, 'csi.v1.Identity'),
    node: serviceOf(csi, 'csi.v1.Node'),
    registration: serviceOf(registration, 'pluginregistration.Registration'),
  };
}

export interface CsiServerOptions {
  readonly plugin: NodePlugin;
  readonly logger: Logger;
  /** The node's name: NodeGetInfo's node_id (the broker checks pods are on this node). */
  readonly nodeName: string;
  readonly version: string;
  /** Unix socket path of the CSI endpoint. */
  readonly csiSocket: string;
  /**
   * Kubelet plugin registration: the socket to serve `pluginregistration.Registration` on (in the
   * kubelet's plugins_registry dir), and the CSI socket path as the kubelet sees it.
   */
  readonly registration?: { readonly socket: string; readonly kubeletCsiSocket: string };
  /** Whether the kubelet has confirmed the registration (tests and /readyz). */
  readonly onRegistrationStatus?: (registered: boolean, error: string) => void;
}

type Handler<Req, Res> = (call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>) => void;

interface NodePublishVolumeRequest {
  volumeId: string;
  targetPath: string;
  volumeCapability: {
    mount?: { volumeMountGroup: string } | null;
    block?: object | null;
    accessMode?: { mode: string } | null;
  } | null;
  readonly: boolean;
  volumeContext: Record<string, string>;
}

/** Access modes under which nobody may write to the volume: published read-only, like `readonly`. */
const readerOnlyModes: readonly string[] = ['SINGLE_NODE_READER_ONLY', 'MULTI_NODE_READER_ONLY'];

/**
 * The target path of a request, refused unless it is an absolute path without `.` or `..`
 * segments (the CSI spec: "an absolute path in the root filesystem of the process serving this
 * request"); a relative path would resolve against the plugin's working directory. Repeated and
 * trailing slashes are dropped, so both calls for a volume name the same directory.
 */
export function checkTargetPath(path: string): string {
  if (path === '') throw new InvalidVolumeRequest('target_path is required');
  if (path.includes('\0')) throw new InvalidVolumeRequest('target_path must not contain NUL bytes');
  if (!isAbsolute(path)) throw new InvalidVolumeRequest(`target_path must be an absolute path, not ${JSON.stringify(path)}`);
  if (path.split('/').some((segment) => segment === '.' || segment === '..')) {
    throw new InvalidVolumeRequest(`target_path must not contain "." or ".." segments: ${JSON.stringify(path)}`);
  }
  const normalized = normalize(path);
  return normalized.length > 1 && normalized.endsWith('/') ? normalized.slice(0, -1) : normalized;
}

/** The CSI endpoint (Identity + Node) and the kubelet registration endpoint, over unix sockets. */
export class CsiServer {
  readonly #options: CsiServerOptions;
  readonly #servers: grpc.Server[] = [];

  constructor(options: CsiServerOptions) {
    this.#options = options;
  }

  async start(): Promise<void> {
    const protos = loadCsiProtos();
    const csi = new grpc.Server();
    csi.addService(protos.identity, this.#identity());
    csi.addService(protos.node, this.#node());
    await listen(csi, this.#options.csiSocket);
    this.#servers.push(csi);
    if (this.#options.registration !== undefined) {
      const registration = new grpc.Server();
      registration.addService(protos.registration, this.#registration(this.#options.registration.kubeletCsiSocket));
      await listen(registration, this.#options.registration.socket);
      this.#servers.push(registration);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.#servers.map(
        (server) =>
          new Promise<void>((resolve) => {
            server.tryShutdown(() => {
              resolve();
            });
          }),
      ),
    );
    this.#servers.length = 0;
    await rm(this.#options.csiSocket, { force: true });
    if (this.#options.registration !== undefined) await rm(this.#options.registration.socket, { force: true });
  }

  #identity(): grpc.UntypedServiceImplementation {
    const info: Handler<object, object> = (_call, callback) => {
      callback(null, { name: driverName, vendorVersion: this.#options.version, manifest: {} });
    };
    // No CONTROLLER_SERVICE: volumes are node-local and ephemeral (attachRequired: false).
    const capabilities: Handler<object, object> = (_call, callback) => {
      callback(null, { capabilities: [] });
    };
    const probe: Handler<object, object> = (_call, callback) => {
      callback(null, { ready: { value: true } });
    };
    return { GetPluginInfo: info, GetPluginCapabilities: capabilities, Probe: probe };
  }

  #node(): grpc.UntypedServiceImplementation {
    const { plugin, logger } = this.#options;
    const publish: Handler<NodePublishVolumeRequest, object> = (call, callback) => {
      const req = call.request;
      void (async () => {
        if (req.volumeId === '') throw new InvalidVolumeRequest('volume_id is required');
        const targetPath = checkTargetPath(req.targetPath);
        if (req.volumeCapability == null) throw new InvalidVolumeRequest('volume_capability is required');
        if (req.volumeCapability.mount == null) throw new InvalidVolumeRequest('only mount volumes are supported');
        const volume = parseVolumeContext(req.volumeContext, req.volumeCapability.mount.volumeMountGroup);
        const readOnly = req.readonly || readerOnlyModes.includes(req.volumeCapability.accessMode?.mode ?? '');
        await plugin.publish({ ...volume, volumeId: req.volumeId, targetPath, readOnly });
      })().then(
        () => {
          callback(null, {});
        },
        (err: unknown) => {
          callback(toStatus(err, logger, 'NodePublishVolume'));
        },
      );
    };
    const unpublish: Handler<{ volumeId: string; targetPath: string }, object> = (call, callback) => {
      const req = call.request;
      void (async () => {
        if (req.volumeId === '') throw new InvalidVolumeRequest('volume_id is required');
        await plugin.unpublish(req.volumeId, checkTargetPath(req.targetPath));
      })().then(
        () => {
          callback(null, {});
        },
        (err: unknown) => {
          callback(toStatus(err, logger, 'NodeUnpublishVolume'));
        },
      );
    };
    const capabilities: Handler<object, object> = (_call, callback) => {
      // VOLUME_MOUNT_GROUP: the kubelet hands us the pod's fsGroup instead of chowning the files
      // itself (it would not follow our later atomic rewrites).
      callback(null, { capabilities: [{ rpc: { type: 'VOLUME_MOUNT_GROUP' } }] });
    };
    const info: Handler<object, object> = (_call, callback) => {
      callback(null, { nodeId: this.#options.nodeName, maxVolumesPerNode: '0' });
    };
    return { NodePublishVolume: publish, NodeUnpublishVolume: unpublish, NodeGetCapabilities: capabilities, NodeGetInfo: info };
  }

  #registration(kubeletCsiSocket: string): grpc.UntypedServiceImplementation {
    const getInfo: Handler<object, object> = (_call, callback) => {
      callback(null, { type: 'CSIPlugin', name: driverName, endpoint: kubeletCsiSocket, supportedVersions: ['1.0.0'] });
    };
    const notify: Handler<{ pluginRegistered: boolean; error: string }, object> = (call, callback) => {
      const { pluginRegistered, error } = call.request;
      if (pluginRegistered) this.#options.logger.info('registered with the kubelet', {});
      else this.#options.logger.error('the kubelet refused the registration', { error });
      this.#options.onRegistrationStatus?.(pluginRegistered, error);
      callback(null, {});
    };
    return { GetInfo: getInfo, NotifyRegistrationStatus: notify };
  }
}

async function listen(server: grpc.Server, socket: string): Promise<void> {
  await mkdir(dirname(socket), { recursive: true });
  // A socket left by a previous run would make the bind fail.
  await rm(socket, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) => {
      if (err === null) resolve();
      else reject(err);
    });
  });
}

function toStatus(err: unknown, logger: Logger, method: string): Partial<grpc.StatusObject> {
  if (err instanceof InvalidVolumeRequest) return { code: grpc.status.INVALID_ARGUMENT, details: err.message };
  if (err instanceof BrokerRefusal) {
    const code =
      err.status === 401
        ? grpc.status.UNAUTHENTICATED
        : err.status === 403
          ? grpc.status.PERMISSION_DENIED
          : err.status === 404
            ? grpc.status.NOT_FOUND
            : err.status === 503
              ? grpc.status.UNAVAILABLE
              : grpc.status.INTERNAL;
    return { code, details: err.message };
  }
  if (err instanceof BrokerUnreachable) return { code: grpc.status.UNAVAILABLE, details: err.message };
  const sanitized = sanitizeError(err);
  logger.error(`${method} failed`, { error: sanitized });
  return { code: grpc.status.INTERNAL, details: `${method} failed: ${sanitized.message}` };
}
