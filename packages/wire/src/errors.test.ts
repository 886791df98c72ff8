import assert from 'node:assert/strict';
import { need, room, checkUint, WireError, WireErrorCode, SmcError } from './errors.js';

describe('wire errors', () => {
  it('need() throws TRUNCATED with the offset when bytes are missing', () => {
    assert.throws(() => need(10, 8, 4, 'cdc'), (e: unknown) => e instanceof WireError && e instanceof SmcError && e.code === WireErrorCode.TRUNCATED && e.offset === 8 && e.msgType === 'cdc');
    need(12, 8, 4, 'cdc');
  });
  it('room() throws BUFFER_TOO_SMALL', () => {
    assert.throws(() => room(Buffer.alloc(43), 0, 44, 'cdc'), { code: WireErrorCode.BUFFER_TOO_SMALL });
    assert.throws(() => room(Buffer.alloc(50), -1, 44, 'cdc'), { code: WireErrorCode.BUFFER_TOO_SMALL });
  });
  it('checkUint() rejects non-integers, negatives and too-large values', () => {
    for (const v of [-1, 1.5, 256, Number.NaN]) assert.throws(() => checkUint(v, 255, 'x', 'm', 3), { code: WireErrorCode.BAD_VALUE });
    checkUint(255, 255, 'x', 'm', 3);
  });
});
