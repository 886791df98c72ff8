/**
 * Asks the C compiler for the truth: builds a program that includes `headers` and prints each
 * `name -> C expression` (offsetof, sizeof, enum constants) as a long, runs it, and returns the
 * values by name. gcc with -Wall -Werror, in a temporary directory removed afterwards.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function cValues(headers: readonly string[], exprs: Readonly<Record<string, string>>): Map<string, number> {
  const dir = mkdtempSync(join(tmpdir(), `smcr-cvalues-${process.pid}-`));
  try {
    const lines = [
      '#include <stdio.h>',
      '#include <stddef.h>',
      ...headers.map((h) => `#include <${h}>`),
      'int main(void) {',
      ...Object.entries(exprs).map(([k, expr]) => `  printf("%s %ld\\n", "${k}", (long)(${expr}));`),
      '  return 0;',
      '}',
    ];
    writeFileSync(join(dir, 'values.c'), lines.join('\n'));
    execFileSync('gcc', ['-std=gnu11', '-Wall', '-Werror', '-o', join(dir, 'values'), join(dir, 'values.c')], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = execFileSync(join(dir, 'values'), { encoding: 'utf8' });
    return new Map(out.trim().split('\n').map((l) => {
      const [k, v] = l.split(' ');
      return [k!, Number(v)];
    }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
