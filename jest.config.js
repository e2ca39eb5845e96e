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
  // The leak scan runs last: it reads what every other suite of the run captured (ADR 0177).
  testSequencer: '<rootDir>/test/harness/jest.sequencer.js',
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
