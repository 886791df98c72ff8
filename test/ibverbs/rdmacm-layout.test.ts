/**
 * Layout of the librdmacm binding: every offset, size and constant of rdmacm-layout.ts, compiled
 * with gcc against the installed <rdma/rdma_cma.h> (librdmacm-dev) and compared one by one.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CM_LAYOUT_C, CM_EVENT_NAME, cmLayoutValues } from '@smc-r/ibverbs';
import { testRdmacmMissing } from '@smc-r/ibverbs';

describe('librdmacm layout against the installed rdma_cma.h', function () {
  this.timeout(60_000);
  let dir = '';
  let values: Map<string, number>;
  const ours = cmLayoutValues();

  before(function () {
    const why = testRdmacmMissing();
    if (why !== undefined) {
      process.stdout.write(`      SKIP: ${why}\n`);
      this.skip();
    }
    dir = mkdtempSync(join(tmpdir(), `smcr-rdmacm-layout-${process.pid}-`));
    const lines = [
      '#include <stdio.h>',
      '#include <stddef.h>',
      '#include <netinet/in.h>',
      '#include <rdma/rdma_cma.h>',
      'int main(void) {',
      ...Object.entries(CM_LAYOUT_C).map(([k, expr]) => `  printf("%s %ld\\n", "${k}", (long)(${expr}));`),
      ...CM_EVENT_NAME.map((n) => `  printf("%s %ld\\n", "name_${n}", (long)(RDMA_CM_EVENT_${n}));`),
      '  return 0;',
      '}',
    ];
    writeFileSync(join(dir, 'layout.c'), lines.join('\n'));
    execFileSync('gcc', ['-std=gnu11', '-Wall', '-Werror', '-o', join(dir, 'layout'), join(dir, 'layout.c')], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = execFileSync(join(dir, 'layout'), { encoding: 'utf8' });
    values = new Map(out.trim().split('\n').map((l) => {
      const [k, v] = l.split(' ');
      return [k!, Number(v)];
    }));
  });

  after(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
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
