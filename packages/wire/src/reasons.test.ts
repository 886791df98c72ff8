import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { SmcError, WireErrorCode } from './errors.js';
import {
  SmcReason,
  REASON_LIST,
  LEGACY_REASONS,
  reasonByCode,
  legacyReasonByCode,
  describeReason,
  formatFallback,
  isDeclineSendable,
  SmcReasonError,
  SmcReasonErrorCode,
} from './reasons.js';

// Spec 4.2, written out independently of the registry.
const EXPECTED_CODES = [
  0x01010000, 0x02010000, 0x02020000, 0x03000000, 0x03010000, 0x03010001, 0x03020000,
  0x03030000, 0x03030001, 0x03030002, 0x03030003, 0x03030004, 0x03030005, 0x03030006,
  0x03030007, 0x03030008, 0x03030009, 0x0303000a, 0x0303000b, 0x0303000c,
  0x03040000, 0x03050000, 0x03060000, 0x03070000, 0x03080000, 0x03090000,
  0x030a0000, 0x030b0000, 0x030c0000, 0x030d0000, 0x030e0000, 0x030f0000,
  0x04000000, 0x05000000,
  0x09990000, 0x09990001, 0x09990002, 0x09990003, 0x09990004,
];

// Spec 4.2 columns "Kernel name", "Sent?" and "stats name" (undefined = smc-tools prints [unknown]).
const EXPECTED: [number, string, 'sent' | 'local' | 'sent-legacy', string | undefined][] = [
  [0x01010000, 'SMC_CLC_DECL_MEM', 'sent', 'MEMORY'],
  [0x02010000, 'SMC_CLC_DECL_TIMEOUT_CL', 'sent', 'TIMEOUT_CL'],
  [0x02020000, 'SMC_CLC_DECL_TIMEOUT_AL', 'sent-legacy', 'TIMEOUT_AL'],
  [0x03000000, 'SMC_CLC_DECL_CNFERR', 'sent', 'CNF_ERR'],
  [0x03010000, 'SMC_CLC_DECL_PEERNOSMC', 'local', 'PEER_NO_SMC'],
  [0x03010001, 'SMC_CLC_DECL_ACTIVE', 'local', undefined],
  [0x03020000, 'SMC_CLC_DECL_IPSEC', 'sent', 'IPSEC'],
  [0x03030000, 'SMC_CLC_DECL_NOSMCDEV', 'sent', 'NOSMCDEV'],
  [0x03030001, 'SMC_CLC_DECL_NOSMCDDEV', 'sent', 'NOSMCDDEV'],
  [0x03030002, 'SMC_CLC_DECL_NOSMCRDEV', 'sent', 'NOSMCRDEV'],
  [0x03030003, 'SMC_CLC_DECL_NOISM2SUPP', 'sent', 'NOISM2SUPP'],
  [0x03030004, 'SMC_CLC_DECL_NOV2EXT', 'sent', 'NOV2EXT'],
  [0x03030005, 'SMC_CLC_DECL_NOV2DEXT', 'sent', 'NOV2DEXT'],
  [0x03030006, 'SMC_CLC_DECL_NOSEID', 'sent', 'NOSEID'],
  [0x03030007, 'SMC_CLC_DECL_NOSMCD2DEV', 'sent', 'NOSMCD2DEV'],
  [0x03030008, 'SMC_CLC_DECL_NOUEID', 'sent', undefined],
  [0x03030009, 'SMC_CLC_DECL_RELEASEERR', 'sent', undefined],
  [0x0303000a, 'SMC_CLC_DECL_MAXCONNERR', 'sent', undefined],
  [0x0303000b, 'SMC_CLC_DECL_MAXLINKERR', 'sent', undefined],
  [0x0303000c, 'SMC_CLC_DECL_VENDORERR', 'sent', undefined],
  [0x03040000, 'SMC_CLC_DECL_MODEUNSUPP', 'sent', 'MODEUNSUPP'],
  [0x03050000, 'SMC_CLC_DECL_RMBE_EC', 'sent', 'RMBE_EC'],
  [0x03060000, 'SMC_CLC_DECL_OPTUNSUPP', 'local', 'OPTUNSUPP'],
  [0x03070000, 'SMC_CLC_DECL_DIFFPREFIX', 'sent', 'DIFFPREFIX'],
  [0x03080000, 'SMC_CLC_DECL_GETVLANERR', 'sent', 'GETVLANERR'],
  [0x03090000, 'SMC_CLC_DECL_ISMVLANERR', 'sent', 'ISMVLANERR'],
  [0x030a0000, 'SMC_CLC_DECL_NOACTLINK', 'sent', 'NOACTLINK'],
  [0x030b0000, 'SMC_CLC_DECL_NOSRVLINK', 'sent', 'NOSRVLINK'],
  [0x030c0000, 'SMC_CLC_DECL_VERSMISMAT', 'sent', 'VERSMISMAT'],
  [0x030d0000, 'SMC_CLC_DECL_MAX_DMB', 'sent', 'MAX_DMB'],
  [0x030e0000, 'SMC_CLC_DECL_NOROUTE', 'sent', undefined],
  [0x030f0000, 'SMC_CLC_DECL_NOINDIRECT', 'sent', undefined],
  [0x04000000, 'SMC_CLC_DECL_SYNCERR', 'sent', 'SYNCERR'],
  [0x05000000, 'SMC_CLC_DECL_PEERDECL', 'local', 'PEERDECL'],
  [0x09990000, 'SMC_CLC_DECL_INTERR', 'sent', undefined],
  [0x09990001, 'SMC_CLC_DECL_ERR_RTOK', 'sent', undefined],
  [0x09990002, 'SMC_CLC_DECL_ERR_RDYLNK', 'sent', undefined],
  [0x09990003, 'SMC_CLC_DECL_ERR_REGBUF', 'sent', undefined],
  [0x09990004, 'SMC_CLC_DECL_CREDITSERR', 'sent', undefined],
];

const ALIBABA = [0x03010001, 0x0303000c, 0x09990004];
const LEGACY_CODES = [0x02000000, 0x02040000, 0x03030000, 0x06000000, 0x07000000, 0x99990000];

const hex = (c: number): string => `0x${c.toString(16).padStart(8, '0')}`;
const docsPath = (name: string): string => fileURLToPath(new URL(`../../../docs/${name}`, import.meta.url));

describe('reasons: registry (spec 4.2)', () => {
  it('holds exactly the codes of spec 4.2, in numeric order', () => {
    assert.deepEqual(REASON_LIST.map((e) => e.code), EXPECTED_CODES);
    for (const c of EXPECTED_CODES) assert.ok(reasonByCode(c), hex(c));
  });

  it('has unique codes and names; every key is the kernel name without its prefix', () => {
    assert.equal(new Set(REASON_LIST.map((e) => e.code)).size, REASON_LIST.length);
    assert.equal(new Set(REASON_LIST.map((e) => e.name)).size, REASON_LIST.length);
    for (const [key, e] of Object.entries(SmcReason)) assert.equal(e.name, `SMC_CLC_DECL_${key}`);
  });

  for (const [code, name, wire, short] of EXPECTED) {
    it(`${hex(code)} is ${name}, ${wire}, stats name ${short ?? '[unknown]'}`, () => {
      const e = reasonByCode(code);
      assert.ok(e);
      assert.equal(e.name, name);
      assert.equal(e.wire, wire);
      assert.equal(e.short, short);
      assert.equal(e.origin, ALIBABA.includes(code) ? 'alibaba' : 'upstream');
    });
  }

  it('every entry has a meaning, cause and remedy; every non-userspace entry says why', () => {
    for (const e of REASON_LIST) {
      for (const f of ['meaning', 'cause', 'remedy'] as const) {
        assert.ok(e[f].trim().length > 0, `${e.name}.${f}`);
        assert.ok(!e[f].includes('\n'), `${e.name}.${f} is one line`);
      }
      if (!e.userspace) assert.ok(e.userspaceNote && e.userspaceNote.length > 0, `${e.name}.userspaceNote`);
    }
  });

  it('marks SMC-D-only codes and unadopted Alibaba extensions as not produced by us', () => {
    for (const k of ['NOV2DEXT', 'NOSEID', 'NOSMCD2DEV', 'ISMVLANERR', 'MAX_DMB', 'VENDORERR', 'CREDITSERR', 'TIMEOUT_AL', 'IPSEC'] as const) {
      assert.equal(SmcReason[k].userspace, false, k);
    }
    for (const k of ['PEERNOSMC', 'NOSMCRDEV', 'TIMEOUT_CL', 'PEERDECL', 'SYNCERR', 'OPTUNSUPP'] as const) {
      assert.equal(SmcReason[k].userspace, true, k);
    }
    assert.ok(SmcReason.PEERNOSMC.wireNote.length > 0);
  });

  it('looks up signed 32-bit reads and rejects non-codes', () => {
    assert.equal(reasonByCode(0x09990000 | 0)?.name, 'SMC_CLC_DECL_INTERR');
    assert.equal(legacyReasonByCode(0x99990000 | 0)?.name, 'SMC_CLC_DECL_INTERR');
    for (const v of [0, 1, -1, 1.5, Number.NaN, 2 ** 32, 0x12345678]) assert.equal(reasonByCode(v), undefined);
  });
});

describe('reasons: legacy codes (spec 4.3)', () => {
  it('lists the pre-2018 values, distinct from today\'s except the reused 0x03030000', () => {
    assert.deepEqual(LEGACY_REASONS.map((e) => e.code), LEGACY_CODES);
    for (const e of LEGACY_REASONS) {
      assert.equal(legacyReasonByCode(e.code), e);
      assert.ok(e.meaning.length > 0 && e.today.length > 0);
      if (e.code !== 0x03030000) assert.equal(reasonByCode(e.code), undefined, hex(e.code));
    }
    assert.equal(legacyReasonByCode(0x03030000)?.name, 'SMC_CLC_DECL_IPSEC');
    assert.equal(reasonByCode(0x03030000)?.name, 'SMC_CLC_DECL_NOSMCDEV');
  });
});

describe('reasons: formatting', () => {
  it('describeReason names known, legacy and unknown codes', () => {
    assert.equal(describeReason(0x03030000), '0x03030000 SMC_CLC_DECL_NOSMCDEV (no usable SMC device)');
    assert.equal(describeReason(0x05000000), '0x05000000 SMC_CLC_DECL_PEERDECL (peer declined SMC)');
    assert.equal(describeReason(0x99990000), '0x99990000 SMC_CLC_DECL_INTERR (legacy: internal error (old value))');
    assert.equal(describeReason(0x02040000), '0x02040000 SMC_CLC_DECL_TCL (legacy: timeout waiting for the QP confirmation (old kernels))');
    assert.equal(describeReason(0x12345678), '0x12345678 unknown');
    assert.equal(describeReason(0), '0x00000000 unknown');
    assert.equal(describeReason(-1), '0xffffffff unknown');
  });

  it('describeReason never throws', () => {
    fc.assert(fc.property(fc.oneof(fc.integer(), fc.double(), fc.nat({ max: 0xffffffff })), (v) => {
      assert.equal(typeof describeReason(v), 'string');
    }));
    assert.equal(describeReason(Number.NaN), 'NaN unknown');
    assert.equal(describeReason(1.5), '1.5 unknown');
  });

  it('formatFallback prints smcss\'s Mode column', () => {
    assert.equal(formatFallback(0x05000000, 0x03030000), 'TCP 0x05000000/0x03030000');
    assert.equal(formatFallback(0x03010000), 'TCP 0x03010000');
    assert.equal(formatFallback(0x03010000, 0), 'TCP 0x03010000');
    assert.equal(formatFallback(0x0303000a), 'TCP 0x0303000a');
    assert.equal(formatFallback(0x05000000, 0x99990000), 'TCP 0x05000000/0x99990000');
  });
});

describe('reasons: isDeclineSendable', () => {
  it('allows sent codes and the PEERNOSMC exception, refuses local, legacy and unknown codes', () => {
    for (const [code, , wire] of EXPECTED) {
      assert.equal(isDeclineSendable(code), wire !== 'local' || code === 0x03010000, hex(code));
    }
    for (const c of [0x05000000, 0x03060000, 0x03010001, 0x02000000, 0x99990000, 0, 0x12345678]) {
      assert.equal(isDeclineSendable(c), false, hex(c));
    }
  });
});

describe('reasons: SmcReasonError', () => {
  it('a local fallback: code ERR_SMC_FALLBACK, decline by the registry', () => {
    const e = new SmcReasonError(SmcReason.NOSMCRDEV.code, { detail: 'no active RoCE port' });
    assert.ok(e instanceof SmcError && e instanceof Error);
    assert.equal(e.name, 'SmcReasonError');
    assert.equal(e.code, SmcReasonErrorCode.FALLBACK);
    assert.equal(e.code, 'ERR_SMC_FALLBACK');
    assert.equal(e.reason, 0x03030002);
    assert.equal(e.peerDiagnosis, undefined);
    assert.equal(e.decline, true);
    assert.equal(e.message, 'SMC not used: 0x03030002 SMC_CLC_DECL_NOSMCRDEV (no usable SMC-R (RoCE) device) [TCP 0x03030002]: no active RoCE port');
  });

  it('a peer Decline: code ERR_SMC_DECLINED, peer reason kept, no Decline back', () => {
    const e = new SmcReasonError(SmcReason.PEERDECL.code, { peerDiagnosis: 0x03030000 });
    assert.equal(e.code, 'ERR_SMC_DECLINED');
    assert.equal(e.peerDiagnosis, 0x03030000);
    assert.equal(e.decline, false);
    assert.equal(e.message, 'peer declined SMC: 0x03030000 SMC_CLC_DECL_NOSMCDEV (no usable SMC device) [TCP 0x05000000/0x03030000]');
  });

  it('local-only codes default to no Decline; the caller can ask for one; cause is kept', () => {
    const cause = new Error('boom');
    assert.equal(new SmcReasonError(0x03010000).decline, false);
    assert.equal(new SmcReasonError(0x03010000, { decline: true }).decline, true);
    assert.equal(new SmcReasonError(0x12345678).decline, false);
    assert.equal(new SmcReasonError(0x09990000, { cause }).cause, cause);
    assert.equal(new SmcReasonError(0x12345678).message, 'SMC not used: 0x12345678 unknown [TCP 0x12345678]');
  });
});

describe('reasons: docs cannot drift', () => {
  it('docs/reason-codes.md has every code\'s summary row (as in the registry) and details section, and every legacy code', () => {
    const md = readFileSync(docsPath('reason-codes.md'), 'utf8');
    for (const e of REASON_LIST) {
      const row = `| ${hex(e.code)} | \`${e.name}\` | ${e.short ?? '[unknown]'} | ${e.wire} | ${e.origin} | ${e.userspace ? 'yes' : 'no'} | ${e.meaning} |`;
      assert.ok(md.includes(row), `docs/reason-codes.md lacks the summary row:\n${row}`);
      assert.ok(md.includes(`### ${hex(e.code)} ${e.name.replace('SMC_CLC_DECL_', '')}\n`), `${hex(e.code)} has no details section`);
    }
    for (const e of LEGACY_REASONS) assert.ok(md.includes(hex(e.code)), `${hex(e.code)} missing`);
  });

  it('docs/errors.md lists every WireErrorCode and SmcReasonErrorCode string', () => {
    const md = readFileSync(docsPath('errors.md'), 'utf8');
    for (const c of [...Object.values(WireErrorCode), ...Object.values(SmcReasonErrorCode)]) {
      assert.ok(md.includes(`\`${c}\``), `${c} missing from docs/errors.md`);
    }
  });
});
