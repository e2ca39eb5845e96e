/**
 * The node plugin's entry point (`node dist/delivery/node-plugin.main.js`): turns off V8's
 * optimizing compilers, then loads the plugin (node-plugin.run.ts). The plugin is I/O-bound — a
 * few calls per volume, files on tmpfs — and TurboFan and Maglev, busy with its start-up code
 * (protobufjs reading the CSI proto, gRPC), cost ~8 MiB of RSS on every node for no measurable
 * gain (ADR 0205). Ignition and Sparkplug still run everything; regular expressions are still
 * compiled. The flags are set before the plugin's modules load: a static import would load them
 * first.
 */
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--no-opt');
setFlagsFromString('--no-maglev');
await import('./node-plugin.run.ts');
