// One mocha run over every package's unit tests and the cross-package tests, so the suite ends
// with one summary. TypeScript is loaded through tsx; packages import each other's built dist.
module.exports = {
  'node-option': ['import=tsx'],
  spec: [
    'packages/*/src/**/*.test.ts',
    'bindings/*/src/**/*.test.ts',
    'bench/src/**/*.test.ts',
    'test/**/*.test.ts',
  ],
  reporter: 'test/support/reporter.cjs',
  timeout: 20000,
  'forbid-only': Boolean(process.env.CI),
};
