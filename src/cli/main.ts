#!/usr/bin/env node
/**
 * `kubectl-secretbinder`, the kubectl plugin (`kubectl secretbinder …`). This entry point only
 * turns on Node's compile cache before loading the program: the Kubernetes client library takes
 * most of a run's start-up, and a kubectl plugin starts often (ADR 0210).
 */
import { enableCompileCache } from 'node:module';

// Best effort: on a read-only file system the cache is simply off.
enableCompileCache();
const { main } = await import('./program.ts');
await main();
