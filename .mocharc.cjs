// One mocha run over every package's unit tests and the cross-package tests, so the suite ends
// with one summary. TypeScript is loaded through tsx; packages import each other's built dist.
// mocha appends command-line files to `spec`, so the default list applies only when none are given:
// `npx mocha path/to/x.test.ts` runs just that file.
const named = process.argv.slice(2).some((a) => /\.test\.[cm]?[jt]s$/.test(a));
module.exports = {
  'node-option': ['import=tsx'],
  spec: named ? [] : [
    'packages/*/src/**/*.test.ts',
    'bindings/*/src/**/*.test.ts',
    'bench/src/**/*.test.ts',
    'test/**/*.test.ts',
  ],
  reporter: 'test/support/reporter.cjs',
  timeout: 20000,
  'forbid-only': Boolean(process.env.CI),
};
