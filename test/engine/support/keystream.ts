/** Deterministic test payloads shared by the engine tests and their child-process agent. */
import { createCipheriv, createHash, type Cipher } from 'node:crypto';

/**
 * The deterministic byte stream of `seed`: an AES-256-CTR keystream (key = sha256(seed)), so both
 * processes regenerate the same bytes at memory speed without sending them out of band.
 */
export class Keystream {
  readonly #c: Cipher;
  #zero = Buffer.alloc(0);
  constructor(seed: number) {
    const key = createHash('sha256').update(`smc-r engine test ${seed}`).digest();
    this.#c = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  }

  next(n: number): Buffer {
    if (this.#zero.length < n) this.#zero = Buffer.alloc(n);
    return this.#c.update(this.#zero.subarray(0, n));
  }
}
