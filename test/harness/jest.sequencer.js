// Jest's default order (slowest and failed first), with the leak scan moved to the very end: it
// reads what every other suite of the run left in the leak capture (ADR 0177).
import Sequencer from '@jest/test-sequencer';

const last = /[/\\]test[/\\]integration[/\\]leak-scan\.test\.ts$/;

export default class LeakScanLastSequencer extends (Sequencer.default ?? Sequencer) {
  async sort(tests) {
    const sorted = await super.sort(tests);
    return [...sorted.filter((t) => !last.test(t.path)), ...sorted.filter((t) => last.test(t.path))];
  }
}
