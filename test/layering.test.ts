/**
 * Layers depend downward only (wire <- capture <- cli; wire <- bench), and the wire package stays
 * pure. Checked from the package manifests and the import statements of every source file.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Which workspace packages each package may depend on. */
const ALLOWED: Record<string, readonly string[]> = {
  '@smc-r/wire': [],
  '@smc-r/capture': ['@smc-r/wire'],
  '@smc-r/verbs': ['@smc-r/wire'],
  '@smc-r/sockops': ['@smc-r/wire'],
  '@smc-r/ibverbs': ['@smc-r/wire', '@smc-r/verbs'],
  '@smc-r/core': ['@smc-r/wire', '@smc-r/verbs'],
  '@smc-r/net': ['@smc-r/wire', '@smc-r/verbs', '@smc-r/core', '@smc-r/sockops'],
  '@smc-r/cli': ['@smc-r/wire', '@smc-r/capture'],
  '@smc-r/bench': ['@smc-r/wire', '@smc-r/verbs', '@smc-r/core', '@smc-r/ibverbs'],
};
const DIRS: Record<string, string> = {
  '@smc-r/wire': 'packages/wire',
  '@smc-r/capture': 'packages/capture',
  '@smc-r/verbs': 'packages/verbs',
  '@smc-r/sockops': 'bindings/sockops',
  '@smc-r/ibverbs': 'bindings/ibverbs',
  '@smc-r/core': 'packages/core',
  '@smc-r/net': 'packages/net',
  '@smc-r/cli': 'packages/cli',
  '@smc-r/bench': 'bench',
};
/** Node modules that would give the pure layers I/O, timers or global state. */
const IMPURE = /^(node:)?(net|dgram|fs|fs\/promises|child_process|cluster|http|https|http2|tls|dns|timers|worker_threads|process)$/;

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (p.endsWith('.ts') && !p.endsWith('.test.ts') && !p.includes('/testing/')) out.push(p);
  }
  return out;
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/^\s*(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]!);
}

describe('layering', () => {
  for (const [pkg, dir] of Object.entries(DIRS)) {
    it(`${pkg} depends only on ${ALLOWED[pkg]!.join(', ') || 'no workspace package'}`, () => {
      const manifest = JSON.parse(readFileSync(join(root, dir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
      const deps = Object.keys(manifest.dependencies ?? {}).filter((d) => d.startsWith('@smc-r/'));
      assert.deepEqual(deps.filter((d) => !ALLOWED[pkg]!.includes(d)), []);
      for (const f of sources(join(root, dir, 'src'))) {
        for (const spec of imports(f)) {
          if (spec.startsWith('@smc-r/')) assert.ok(ALLOWED[pkg]!.includes(spec), `${f} imports ${spec}`);
          if (spec.startsWith('.')) assert.ok(!spec.includes('../../'), `${f} reaches outside its package: ${spec}`);
        }
      }
    });
  }

  for (const pkg of ['@smc-r/wire', '@smc-r/capture']) {
    it(`${pkg} is pure: no sockets, files, timers or processes`, () => {
      const files = sources(join(root, DIRS[pkg]!, 'src'));
      assert.ok(files.length > 3);
      for (const f of files) {
        for (const spec of imports(f)) assert.doesNotMatch(spec, IMPURE, `${f} imports ${spec}`);
        assert.doesNotMatch(readFileSync(f, 'utf8'), /\b(setTimeout|setInterval|setImmediate|process\.(env|exit|argv))\b/, `${f} uses timers or process state`);
      }
    });
  }
});
