import sequencerModule from '@jest/test-sequencer';

/**
 * Jest's own order, except that the files named here run after every other one: they check what
 * the whole run did: the leak scan reads every suite's capture (ADR 0177), then the egress guard
 * reads the host's counters (ADR 0182). Loaded by jest without its transform, so this file uses
 * only syntax Node strips natively.
 */
const runLast = ['/test/integration/leak-scan.test.ts', '/test/e2e/host-egress.test.ts'];

// The package's types describe its CommonJS build; imported as ESM, its default export is the class.
const TestSequencer = sequencerModule as unknown as typeof sequencerModule.default;
type Tests = Parameters<InstanceType<typeof TestSequencer>['sort']>[0];

export default class RunLastSequencer extends TestSequencer {
  override async sort(tests: Tests): Promise<Tests> {
    const sorted = await super.sort(tests);
    const rank = (path: string): number => runLast.findIndex((suffix) => path.endsWith(suffix));
    const last = runLast.flatMap((_, i) => sorted.filter((t) => rank(t.path) === i));
    return [...sorted.filter((t) => rank(t.path) < 0), ...last];
  }
}
