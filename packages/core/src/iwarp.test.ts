import assert from 'node:assert/strict';
import { CM_PRIVATE_DATA_LEN, encodeCmPrivateData, matchesCmPrivateData } from './iwarp.js';

describe('iwarp: CM private data naming a link', () => {
  const id = Buffer.from('a1b2020000000001', 'hex');

  it('encodes the layout of iwarp.ts byte for byte', () => {
    assert.equal(encodeCmPrivateData(0x123456, 0xabcdef, id).toString('hex'),
      'e2d4c3d9' + '01000000' + '00123456' + '00abcdef' + 'a1b2020000000001');
    assert.equal(CM_PRIVATE_DATA_LEN, 24);
  });

  it('matches only the same server QPN, client QPN, system id and version', () => {
    const pd = encodeCmPrivateData(7, 9, id);
    assert.equal(matchesCmPrivateData(pd, 7, 9, id), true);
    assert.equal(matchesCmPrivateData(pd, 9, 7, id), false, 'QPNs swapped');
    assert.equal(matchesCmPrivateData(pd, 7, 10, id), false);
    assert.equal(matchesCmPrivateData(pd, 7, 9, Buffer.alloc(8)), false, 'another server');
    assert.equal(matchesCmPrivateData(pd.subarray(0, 23), 7, 9, id), false, 'truncated');
    const v2 = Buffer.from(pd);
    v2[4] = 2;
    assert.equal(matchesCmPrivateData(v2, 7, 9, id), false, 'unknown version');
    const bad = Buffer.from(pd);
    bad[0] = 0;
    assert.equal(matchesCmPrivateData(bad, 7, 9, id), false, 'no eyecatcher');
    // Longer private data (transports pad to their minimum) still matches on its first 24 bytes.
    assert.equal(matchesCmPrivateData(Buffer.concat([pd, Buffer.alloc(32)]), 7, 9, id), true);
  });
});
