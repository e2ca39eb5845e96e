import type { Command } from 'commander';
import { CliError, exitCodes } from './cli-errors.ts';
import type { KubeFlags, KubeTarget } from './kube-target.ts';

/** What every command gets from main: its outputs, the clock, and how to reach the cluster. */
export interface CliContext {
  readonly out: (text: string) => void;
  /** Progress lines and warnings (stderr): never part of the -o output. */
  readonly note: (text: string) => void;
  readonly now: () => Date;
  readonly signal: AbortSignal;
  readonly target: (flags: KubeFlags) => Promise<KubeTarget>;
  /** Sleeps, aborted with the signal (refresh/restart waits). */
  readonly sleep: (ms: number) => Promise<void>;
}

/** The root program's flags, as every command sees them. */
export interface GlobalFlags extends KubeFlags {
  readonly output?: string;
}

export function globalFlags(command: Command): GlobalFlags {
  return command.optsWithGlobals<GlobalFlags>();
}

/** `kind/NAME` (or just NAME) for one of the kinds' spellings; anything else is a usage error. */
export function parseReference(reference: string, spellings: readonly string[], expected: string): string {
  const slash = reference.indexOf('/');
  const kind = slash < 0 ? undefined : reference.slice(0, slash).toLowerCase();
  const name = slash < 0 ? reference : reference.slice(slash + 1);
  if ((kind !== undefined && !spellings.includes(kind)) || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name)) {
    throw new CliError(`"${reference}" is not a ${expected} reference (expected ${expected}/NAME)`, exitCodes.usage);
  }
  return name;
}
