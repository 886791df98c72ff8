/**
 * The CLC socket during the handshake (cf. smc_clc_wait_msg / smc_clc_send_*): reads CLC messages
 * from a connected TCP socket with a timeout, writes them, and afterwards gives the socket back with
 * every byte that was read but is not CLC put back in front of the stream, so a fallback loses nothing.
 */
import type { Socket } from 'node:net';
import { ClcReader, clcToBuffer, type ClcMessage } from '@smc-r/wire';

export type ClcWaitResult =
  | { readonly kind: 'message'; readonly msg: ClcMessage }
  | { readonly kind: 'timeout' }
  | { readonly kind: 'eof' }
  | { readonly kind: 'garbage'; readonly error: unknown };

export class ClcChannel {
  readonly socket: Socket;
  readonly #reader = new ClcReader();
  readonly #queue: ClcMessage[] = [];
  #error: unknown = null;
  #eof = false;
  #wake: (() => void) | null = null;
  #released = false;
  readonly #onData = (chunk: Buffer): void => {
    if (this.#error !== null) {
      // Nothing more is parsed after garbage; the reader keeps what it holds, later bytes queue behind.
      this.#extra.push(chunk);
    } else {
      try {
        for (const m of this.#reader.push(chunk)) this.#queue.push(m);
      } catch (e) {
        this.#error = e;
      }
    }
    this.#wake?.();
  };
  readonly #onEnd = (): void => {
    this.#eof = true;
    this.#wake?.();
  };
  /** Bytes that arrived after a parse error, behind what the reader holds. */
  readonly #extra: Buffer[] = [];

  constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('close', this.#onEnd);
  }

  /** The next CLC message, or why there is none within `timeoutMs`. */
  next(timeoutMs: number): Promise<ClcWaitResult> {
    return new Promise((resolve) => {
      const check = (): boolean => {
        const m = this.#queue.shift();
        if (m !== undefined) {
          resolve({ kind: 'message', msg: m });
          return true;
        }
        if (this.#error !== null) {
          resolve({ kind: 'garbage', error: this.#error });
          return true;
        }
        if (this.#eof) {
          resolve({ kind: 'eof' });
          return true;
        }
        return false;
      };
      if (check()) return;
      const timer = setTimeout(() => {
        this.#wake = null;
        resolve({ kind: 'timeout' });
      }, timeoutMs);
      this.#wake = () => {
        if (check()) {
          clearTimeout(timer);
          this.#wake = null;
        }
      };
    });
  }

  /**
   * Puts a message taken with next() back at the head of the queue, so a fallback hands its bytes to
   * the application (the echo defence: a reflected Proposal is TCP data, not a handshake step).
   */
  putBack(msg: ClcMessage): void {
    this.#queue.unshift(msg);
  }

  /** Writes one CLC message. */
  send(msg: ClcMessage): Promise<void> {
    const buf = clcToBuffer(msg);
    return new Promise((resolve, reject) => {
      if (this.socket.destroyed || !this.socket.writable) {
        reject(new Error('CLC socket is closed'));
        return;
      }
      this.socket.write(buf, (err) => (err ? reject(err) : resolve()));
    });
  }

  /**
   * Stops reading CLC. Messages parsed but not consumed and raw bytes not parsed are put back into
   * the socket's readable side (in order) for the application: the fallback path. Idempotent.
   */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.socket.off('data', this.#onData);
    this.socket.off('end', this.#onEnd);
    this.socket.off('close', this.#onEnd);
    this.socket.pause();
    const back: Buffer[] = [];
    for (const m of this.#queue.splice(0)) back.push(clcToBuffer(m));
    const rest = this.#reader.takeRemaining();
    if (rest.length > 0) back.push(rest);
    back.push(...this.#extra.splice(0));
    // unshift() puts data in front: push back in reverse order.
    for (let i = back.length - 1; i >= 0; i--) this.socket.unshift(back[i]!);
  }
}
