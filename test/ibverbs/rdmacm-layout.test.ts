/**
 * Layout of the librdmacm binding: every offset, size and constant of rdmacm-layout.ts, compiled
 * with gcc against the installed <rdma/rdma_cma.h> (librdmacm-dev) and compared one by one.
 */
import assert from 'node:assert/strict';
import { CM_LAYOUT_C, CM_EVENT_NAME, cmLayoutValues } from '@smc-r/ibverbs';
import { testRdmacmMissing } from '@smc-r/ibverbs';
import { cValues } from './support/c-values.js';

describe('librdmacm layout against the installed rdma_cma.h', function () {
  this.timeout(60_000);
  let values: Map<string, number>;
  const ours = cmLayoutValues();

  before(function () {
    const why = testRdmacmMissing();
    if (why !== undefined) {
      process.stdout.write(`      SKIP: ${why}\n`);
      this.skip();
    }
    values = cValues(['netinet/in.h', 'rdma/rdma_cma.h'], {
      ...CM_LAYOUT_C,
      ...Object.fromEntries(CM_EVENT_NAME.map((n) => [`name_${n}`, `RDMA_CM_EVENT_${n}`])),
    });
  });

  it(`every offset, size and constant of rdmacm-layout.ts (${Object.keys(CM_LAYOUT_C).length})`, () => {
    const wrong: string[] = [];
    for (const [k, v] of Object.entries(ours)) {
      const c = values.get(k);
      if (c !== v) wrong.push(`${k}: binding ${v}, rdma_cma.h ${String(c)} (${CM_LAYOUT_C[k as keyof typeof CM_LAYOUT_C]})`);
    }
    assert.deepEqual(wrong, []);
  });

  it('the event-name table is indexed by the enum values', () => {
    CM_EVENT_NAME.forEach((n, i) => assert.equal(values.get(`name_${n}`), i, n));
  });
});
