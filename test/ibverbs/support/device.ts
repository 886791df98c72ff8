/**
 * One build of the C test device per mocha run (gcc against the installed verbs.h), shared by
 * every ibverbs test file; removed when the process exits. Suites call `testDeviceOrSkip` from
 * their `before` hook.
 */
import { buildTestDevice, testDeviceMissing, type TestDevice } from '@smc-r/ibverbs';

let built: TestDevice | undefined;

export function testDeviceOrSkip(ctx: Mocha.Context): string {
  const why = testDeviceMissing();
  if (why !== undefined) {
    process.stdout.write(`      SKIP: ${why}\n`);
    ctx.skip();
  }
  if (built === undefined) {
    built = buildTestDevice();
    const dev = built;
    process.once('exit', () => dev.cleanup());
  }
  return built.path;
}
