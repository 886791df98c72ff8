import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SMC_OPT_OBJECT } from './generated/program.js';

const SCRIPT = fileURLToPath(new URL('../scripts/build-bpf.mjs', import.meta.url));
const COMMITTED = fileURLToPath(new URL('./generated/program.ts', import.meta.url));
const haveClang = spawnSync('sh', ['-c', 'command -v clang'], { stdio: 'ignore' }).status === 0;

describe('the committed BPF artefact', () => {
  it('is what build-bpf.mjs makes from bpf/smc_opt.bpf.c, byte for byte', function () {
    if (!haveClang) {
      process.stdout.write('      SKIP: clang not installed (npm test installs it when run as root)\n');
      this.skip();
    }
    this.timeout(60_000);
    const dir = mkdtempSync(join(tmpdir(), 'smcr-sockops-rebuild-'));
    try {
      const out = join(dir, 'program.ts');
      const r = spawnSync(process.execPath, [SCRIPT, '--out', out], { encoding: 'utf8', cwd: dir, timeout: 60_000 });
      assert.equal(r.status, 0, r.stderr);
      const fresh = readFileSync(out);
      const committed = readFileSync(COMMITTED);
      assert.ok(fresh.equals(committed), 'src/generated/program.ts differs from a fresh build: run `node bindings/sockops/scripts/build-bpf.mjs` and commit the result');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('holds no path, date or host-specific string', () => {
    const text = readFileSync(COMMITTED, 'utf8');
    assert.doesNotMatch(text, /\/(work|tmp|home|root|usr)\//);
    assert.doesNotMatch(text, /20\d\d-\d\d-\d\d/);
    const btfStrings = Buffer.from(SMC_OPT_OBJECT.btf, 'base64').toString('latin1');
    assert.doesNotMatch(btfStrings, /[/\\]|\.c\b/);
  });

  it('is one program whose only relocations are map references on ld_imm64', () => {
    const insns = Buffer.from(SMC_OPT_OBJECT.insns, 'base64');
    assert.equal(insns.length, SMC_OPT_OBJECT.insnCount * 8);
    assert.ok(SMC_OPT_OBJECT.relocations.length > 0);
    for (const r of SMC_OPT_OBJECT.relocations) {
      assert.equal(insns[r.insn * 8], 0x18, `insn ${r.insn} is ld_imm64`);
      assert.ok(r.map >= 0 && r.map < SMC_OPT_OBJECT.maps.length);
      assert.equal(insns.readInt32LE(r.insn * 8 + 4), 0, 'immediate zeroed until load');
    }
    assert.deepEqual(SMC_OPT_OBJECT.maps.map((m) => m.name), ['smcr_sk_state', 'smcr_offer', 'smcr_listen', 'smcr_stats']);
    const storage = SMC_OPT_OBJECT.maps[0]!;
    assert.equal(storage.flags, 1, 'BPF_F_NO_PREALLOC');
    assert.ok(storage.btfKeyTypeId > 0 && storage.btfValueTypeId > 0);
  });
});
