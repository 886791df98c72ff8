/**
 * docs/errors.md lists every stable error code of every package: each exported `*ErrorCode` table of
 * each workspace package is read from the built package, so a new package or code cannot be missed.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

function workspacePackages(): string[] {
  const out: string[] = [];
  for (const dir of ['packages', 'bindings']) {
    for (const name of readdirSync(join(root, dir))) {
      const manifest = join(root, dir, name, 'package.json');
      if (existsSync(manifest)) out.push((JSON.parse(readFileSync(manifest, 'utf8')) as { name: string }).name);
    }
  }
  return out;
}

describe('docs/errors.md', () => {
  const md = readFileSync(join(root, 'docs', 'errors.md'), 'utf8');

  it('lists every code of every exported *ErrorCode table, package by package', async () => {
    const missing: string[] = [];
    let tables = 0;
    for (const pkg of workspacePackages()) {
      const mod = (await import(pkg)) as Record<string, unknown>;
      for (const [name, value] of Object.entries(mod)) {
        if (!name.endsWith('ErrorCode') || value === null || typeof value !== 'object') continue;
        tables++;
        for (const code of Object.values(value as Record<string, unknown>)) {
          if (typeof code === 'string' && !md.includes(`\`${code}\``)) missing.push(`${pkg} ${name}: ${code}`);
        }
      }
    }
    assert.ok(tables >= 6, `found only ${tables} error-code tables: the package scan is broken`);
    assert.deepEqual(missing, []);
  });
});
