/**
 * The churn row of the scale tier (issue 16): bindings and their pods created and deleted in rounds
 * for a while, then the controller's RSS after a full GC compared with the same reading before.
 * A controller that keeps anything per deleted binding or pod (cache entries, queue keys, timers,
 * resolver or change-hub state) grows with every round.
 */

export interface ChurnOptions {
  /** How long to churn; rounds start until this has passed. */
  readonly seconds: number;
  /** Bindings per round (each with `podsPerBinding` pods). */
  readonly bindingsPerRound: number;
  readonly podsPerBinding: number;
  /** Binding indexes used by the churn start here (above every other binding of the run). */
  readonly firstIndex: number;
}

export interface ChurnPorts {
  readonly createBinding: (index: number) => Promise<void>;
  readonly deleteBinding: (index: number) => Promise<void>;
  readonly createPod: (binding: number, replica: number) => Promise<void>;
  readonly deletePod: (binding: number, replica: number) => Promise<void>;
  /** Runs the tasks with bounded concurrency. */
  readonly inParallel: (count: number, task: (i: number) => Promise<void>) => Promise<void>;
  /** The controller's live RSS in MiB: after a full GC and a settle. */
  readonly liveRss: () => Promise<number>;
  readonly log: (line: string) => void;
}

export interface ChurnResult {
  readonly beforeMiB: number;
  readonly afterMiB: number;
  readonly ratio: number;
  readonly rounds: number;
  readonly bindings: number;
  readonly pods: number;
  readonly ms: number;
}

export async function runChurn(o: ChurnOptions, ports: ChurnPorts): Promise<ChurnResult> {
  const beforeMiB = await ports.liveRss();
  ports.log(`churn: RSS before ${beforeMiB.toFixed(1)} MiB; churning for ${String(o.seconds)} s, ${String(o.bindingsPerRound)} bindings per round`);
  const started = Date.now();
  let rounds = 0;
  let bindings = 0;
  let pods = 0;
  while (Date.now() - started < o.seconds * 1000) {
    // The same indexes every round: the same names come and go, as a redeployed workload's do.
    const index = (i: number): number => o.firstIndex + i;
    const podCount = o.bindingsPerRound * o.podsPerBinding;
    const pod = (k: number): [number, number] => [index(Math.floor(k / Math.max(1, o.podsPerBinding))), k % Math.max(1, o.podsPerBinding)];
    await ports.inParallel(o.bindingsPerRound, (i) => ports.createBinding(index(i)));
    await ports.inParallel(podCount, (k) => ports.createPod(...pod(k)));
    await ports.inParallel(podCount, (k) => ports.deletePod(...pod(k)));
    await ports.inParallel(o.bindingsPerRound, (i) => ports.deleteBinding(index(i)));
    rounds++;
    bindings += o.bindingsPerRound;
    pods += podCount;
  }
  const ms = Date.now() - started;
  const afterMiB = await ports.liveRss();
  ports.log(`churn: ${String(rounds)} rounds (${String(bindings)} bindings, ${String(pods)} pods) in ${(ms / 1000).toFixed(0)} s; RSS after ${afterMiB.toFixed(1)} MiB`);
  return { beforeMiB, afterMiB, ratio: afterMiB / beforeMiB, rounds, bindings, pods, ms };
}
