/**
 * Layout: every offset, size and enum value the binding uses (bindings/ibverbs/src/layout.ts),
 * and the verbs interface's enum values the binding passes through unchanged, compiled with gcc
 * against the installed <infiniband/verbs.h> and compared one by one.
 */
import assert from 'node:assert/strict';
import { LAYOUT_C, layoutValues, testDeviceMissing } from '@smc-r/ibverbs';
import { Access, IbMtu, QpState, SendFlag, WcOpcode, WcStatus, WrOpcode } from '@smc-r/verbs';
import { cValues } from './support/c-values.js';

/** The verbs interface's tables under their verbs.h enumerator names (IBV_WC_REM_ACCESS_ERR, ...). */
function interfaceEnums(): Record<string, [string, number]> {
  const out: Record<string, [string, number]> = {};
  const add = (table: Record<string, number>, prefix: string): void => {
    for (const [k, v] of Object.entries(table)) out[`${prefix}${k}`] = [`${prefix}${k}`, v];
  };
  add(WcStatus, 'IBV_WC_');
  add(WcOpcode, 'IBV_WC_');
  add(WrOpcode, 'IBV_WR_');
  add(SendFlag, 'IBV_SEND_');
  add(Access, 'IBV_ACCESS_');
  add(QpState, 'IBV_QPS_');
  add(IbMtu, 'IBV_');
  return out;
}

describe('ibverbs layout against the installed verbs.h', function () {
  this.timeout(60_000);
  let values: Map<string, number>;
  const ours = layoutValues();
  const enums = interfaceEnums();

  before(function () {
    const why = testDeviceMissing();
    if (why !== undefined) {
      process.stdout.write(`      SKIP: ${why}\n`);
      this.skip();
    }
    values = cValues(['infiniband/verbs.h'], {
      ...LAYOUT_C,
      ...Object.fromEntries(Object.entries(enums).map(([k, [c]]) => [k, c])),
    });
  });

  it(`every offset, size and verbs.h constant of layout.ts (${Object.keys(LAYOUT_C).length})`, () => {
    const wrong: string[] = [];
    for (const [k, v] of Object.entries(ours)) {
      const c = values.get(k);
      if (c !== v) wrong.push(`${k}: binding ${v}, verbs.h ${String(c)} (${LAYOUT_C[k as keyof typeof LAYOUT_C]})`);
    }
    assert.deepEqual(wrong, []);
  });

  it('the verbs interface enums equal libibverbs\' (passed through unchanged)', () => {
    const wrong: string[] = [];
    for (const [k, [, v]] of Object.entries(enums)) {
      if (values.get(k) !== v) wrong.push(`${k}: interface ${v}, verbs.h ${String(values.get(k))}`);
    }
    assert.deepEqual(wrong, []);
  });
});
