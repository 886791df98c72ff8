/** Test assertions shared by the wire tests. */
import assert from 'node:assert/strict';
import { WireError } from '../errors.js';

/**
 * Runs `fn` and asserts it throws a WireError with `code` (and, when given, at `offset`).
 * Any other exception, or none, fails. Returns the error for further checks.
 */
export function throwsWire(fn: () => unknown, code: string, offset?: number): WireError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof WireError, `expected WireError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (offset !== undefined) assert.equal(caught.offset, offset, caught.message);
  return caught;
}
