// Jest runs the TypeScript sources as native ES modules (Node 24, --experimental-vm-modules),
// compiled on the fly by @swc/jest. Imports use `.ts` specifiers, as Node's type stripping does.
const swc = ['@swc/jest', { jsc: { target: 'es2024', parser: { syntax: 'typescript' } }, module: { type: 'es6' } }];

const common = {
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': swc },
  testEnvironment: 'node',
};

/** @type {import('jest').Config} */
export default {
  // These files run after every other one: the leak scan reads what every suite captured (ADR 0177),
  // the egress check the host's counters (ADR 0182).
  testSequencer: '<rootDir>/test/harness/jest.sequencer.ts',
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/src/**/*.test.ts', '<rootDir>/test/unit/**/*.test.ts'] },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/{harness,integration,conformance,e2e}/**/*.test.ts'],
      globalSetup: '<rootDir>/test/harness/jest.global-setup.ts',
      globalTeardown: '<rootDir>/test/harness/jest.global-teardown.ts',
      // Run with --runInBand (npm run test:integration): the suites share one world, and some of
      // them restart its kube-apiserver or run leader-electing controllers.
    },
  ],
};
