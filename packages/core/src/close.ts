/**
 * The SMC socket state machine: opening and, mostly, closing (spec 9.1, 9.2, 7.6; cf. smc_close.c).
 *
 * One {@link CloseMachine} per SMC socket. Like smc_close.c, every event has its own method
 * (`close` = smc_close_active, `shutdownWrite` = smc_close_shutdown_write, `peerCdc` =
 * smc_close_passive_work / smc_close_passive_abort_received, `localAbort` = smc_close_active_abort),
 * each a switch over ALL states with the no-ops written out and a `never` check; an event a state
 * does not allow throws {@link StateError} (naming the state and the event) before anything
 * changes; the state is set once per event and a change is reported once, at the end (kernel:
 * `if (old_state != sk->sk_state) sk->sk_state_change(sk)`).
 *
 * The machine is pure: no I/O, no timers. Every method returns the same {@link CloseAction} object
 * (overwritten by the next call; no allocation per call) that tells the driver what to do:
 *
 *   a = m.close(txPending, unreadData)      // or end(), destroy(), peerCdc(cdc), localAbort(), ...
 *   copy a.txDoneWriting / txConnClosed / txConnAbort into ConnState.localDoneWriting / ... (always)
 *   a.drain:      flush the send buffer; when it is empty, or after closeDrainTimeout(), or on an
 *                 error, call m.drained(unreadData) and act on ITS action ("after flushing", 7.6)
 *   a.sendCdc:    post one CDC now (ConnState.fillCdc carries the flags above)
 *   a.tcp:        'fin' = shutdown the internal TCP socket (peer sees FIN), 'rst' = abort it (RST)
 *   a.readerEof:  the reader reached EOF (RCV_SHUTDOWN): wake readers, 'end' once the RMBE is read
 *   a.error:      a socket error was raised (ECONNRESET / ECONNABORTED): wake everybody
 *   a.cancelWork: stop the drain wait, deferred sends and the handshake of this socket; if the state
 *                 is now PEERABORTWAIT, call m.abortDone() once that is done
 *   a.release:    free the connection (alert token, RMB and sndbuf back to the link group's cache,
 *                 smc_conn_free) and release the internal TCP socket (smc_clcsock_release)
 *   a.closeEvent: the socket is closed: emit node's 'close' (exactly once) with a.hadError
 *
 * Fallback sockets (TCP after a Decline) do not use this machine: their state follows TCP (9.3).
 */
import { Timers } from './constants.js';
import { SmcState, type SmcStateName, type SmcStateValue } from './states.js';
import { StateError } from './errors.js';

/** What to do with the internal TCP socket (the CLC socket). */
export type CloseTcp =
  /** Nothing. */
  | 'none'
  /** Shut down its write side (kernel_sock_shutdown): the peer sees a TCP FIN (7.6, 9.3). */
  | 'fin'
  /** Abort it (tcp_abort): the peer sees a TCP RST (7.6 local abort; destroy()). */
  | 'rst';

/** Socket errors the close machine raises (sk_err). */
export type CloseErrno = 'ECONNRESET' | 'ECONNABORTED';

/** Why send() must fail now (smc_sendmsg / smc_tx_sendmsg), or null if it may proceed. */
export type SendErrno = 'ENOTCONN' | 'EPIPE' | 'ECONNRESET';

/** The connection-state flags of a received CDC (spec 7.1 byte 25); a decoded CdcFields fits. */
export interface PeerConnFlags {
  readonly peerDoneWriting: boolean;
  readonly peerConnClosed: boolean;
  readonly peerConnAbort: boolean;
}

/** A drain in progress: the local operation that waits for the send buffer to empty. */
export type PendingClose = 'none' | 'shutdown' | 'close';

/** The events, with the names StateError reports. */
export type CloseEventName =
  | 'listen' | 'connected' | 'close' | 'shutdownWrite' | 'end' | 'drained'
  | 'peerCdc' | 'localAbort' | 'abortDone' | 'destroy';

/** The driver's instructions after one event; see the module comment for how to act on each field. */
export interface CloseAction {
  /** Flush queued send data, then call drained() (close/shutdown wait "after flushing", 7.6). */
  drain: boolean;
  /** Post one CDC now, carrying the tx* flags below. */
  sendCdc: boolean;
  /**
   * Our connection-state flags (`local_tx_ctrl.conn_state_flags`), sticky: every CDC we send from
   * now on carries them. Copy them into ConnState after every event, not only when sendCdc is set
   * (a received abort marks txConnAbort without sending, 7.6).
   */
  txDoneWriting: boolean;
  txConnClosed: boolean;
  txConnAbort: boolean;
  tcp: CloseTcp;
  /** The reader got EOF now (first close flag from the peer: RCV_SHUTDOWN, 7.6). */
  readerEof: boolean;
  /** The socket error raised now (the first one only, as node emits one 'error'). */
  error: CloseErrno | null;
  /** Cancel the drain wait, deferred sends, the handshake; after localAbort call abortDone(). */
  cancelWork: boolean;
  /** Free the connection and release the internal TCP socket (once per socket). */
  release: boolean;
  /** The socket reached CLOSED for the first time: emit 'close' (once per socket). */
  closeEvent: boolean;
  /** With closeEvent: a socket error was raised (or destroy(err) was called) before the close. */
  hadError: boolean;
  /** The state before and after this event. */
  from: SmcStateName;
  to: SmcStateName;
}

export interface CloseMachineOptions {
  /** Called once per event whose state differs at its end (the kernel's sk_state_change). */
  readonly onStateChange?: (from: SmcStateName, to: SmcStateName) => void;
}

/**
 * How long a close or shutdown waits for queued data (smc_close_active / smc_close_shutdown_write):
 * the SO_LINGER time if set (0 = no wait), else SMC_MAX_STREAM_WAIT_TIMEOUT (2 s, spec 7.6).
 */
export function closeDrainTimeout(lingerMs?: number | null): number {
  return lingerMs === undefined || lingerMs === null ? Timers.MAX_STREAM_WAIT : lingerMs;
}

function unreachable(x: never): never {
  throw new TypeError(`unknown state ${String(x)}`);
}

export class CloseMachine {
  #state: SmcStateName = 'INIT';
  /** State at the start of the current event. */
  #from: SmcStateName = 'INIT';
  readonly #onStateChange: ((from: SmcStateName, to: SmcStateName) => void) | undefined;
  readonly #a: CloseAction;

  // local_tx_ctrl.conn_state_flags: what our CDCs carry (set before the CDC is requested).
  #txDoneWriting = false;
  #txConnClosed = false;
  #txConnAbort = false;
  /** A CDC carrying peer_conn_abort was requested (so destroy/localAbort need not send another). */
  #abortSent = false;
  // local_rx_ctrl.conn_state_flags: what the peer told us, sticky.
  #peerDoneWriting = false;
  #peerConnClosed = false;
  #peerConnAbort = false;

  /** The application has closed the socket (close() or destroy(): SOCK_DEAD). */
  #appClosed = false;
  /** The application shut down writing (end/shutdownWrite/close/destroy: SEND_SHUTDOWN). */
  #sendShutdown = false;
  #pending: PendingClose = 'none';
  #eof = false;
  #errno: CloseErrno | null = null;
  #destroyError = false;
  #released = false;
  #closeNotified = false;

  constructor(opts: CloseMachineOptions = {}) {
    this.#onStateChange = opts.onStateChange;
    this.#a = {
      drain: false, sendCdc: false, txDoneWriting: false, txConnClosed: false, txConnAbort: false,
      tcp: 'none', readerEof: false, error: null, cancelWork: false, release: false,
      closeEvent: false, hadError: false, from: 'INIT', to: 'INIT',
    };
  }

  // ---- observers --------------------------------------------------------------------------------

  get state(): SmcStateName {
    return this.#state;
  }
  /** The kernel's numeric `enum smc_state` value (what smc_diag reports, 9.1). */
  get stateValue(): SmcStateValue {
    return SmcState[this.#state].value;
  }
  get txDoneWriting(): boolean {
    return this.#txDoneWriting;
  }
  get txConnClosed(): boolean {
    return this.#txConnClosed;
  }
  get txConnAbort(): boolean {
    return this.#txConnAbort;
  }
  get peerDoneWriting(): boolean {
    return this.#peerDoneWriting;
  }
  get peerConnClosed(): boolean {
    return this.#peerConnClosed;
  }
  get peerConnAbort(): boolean {
    return this.#peerConnAbort;
  }
  /** The peer sent peer_conn_closed or peer_conn_abort (`smc_cdc_rxed_any_close`). */
  get rxedAnyClose(): boolean {
    return this.#peerConnClosed || this.#peerConnAbort;
  }
  /** We set peer_conn_closed or peer_conn_abort (`smc_close_sent_any_close`). */
  get sentAnyClose(): boolean {
    return this.#txConnClosed || this.#txConnAbort;
  }
  get appClosed(): boolean {
    return this.#appClosed;
  }
  /** Writes are refused from now on (SEND_SHUTDOWN). */
  get sendShutdown(): boolean {
    return this.#sendShutdown;
  }
  /** The peer will send no more data (RCV_SHUTDOWN). */
  get readerEof(): boolean {
    return this.#eof;
  }
  /** The socket error (sk_err), the first one raised. */
  get error(): CloseErrno | null {
    return this.#errno;
  }
  get pending(): PendingClose {
    return this.#pending;
  }
  get released(): boolean {
    return this.#released;
  }
  get closeNotified(): boolean {
    return this.#closeNotified;
  }

  /**
   * Whether send() may proceed, else its error (smc_sendmsg, smc_tx_sendmsg): data is accepted
   * only in ACTIVE and APPCLOSEWAIT1 (the peer shut down only its write side); after our own
   * shutdown or an error: EPIPE; before the connection is up: ENOTCONN; after the peer closed or
   * aborted: ECONNRESET.
   */
  sendError(): SendErrno | null {
    const s = this.#state;
    switch (s) {
      case 'INIT':
      case 'ACTIVE':
      case 'APPCLOSEWAIT1':
        if (this.#errno !== null || this.#sendShutdown) return 'EPIPE';
        if (s === 'INIT') return 'ENOTCONN';
        if (this.#txConnAbort) return 'EPIPE';
        if (this.rxedAnyClose) return 'ECONNRESET';
        return null;
      case 'LISTEN':
      case 'CLOSED':
      case 'PEERCLOSEWAIT1':
      case 'PEERCLOSEWAIT2':
      case 'APPCLOSEWAIT2':
      case 'APPFINCLOSEWAIT':
      case 'PEERFINCLOSEWAIT':
      case 'PEERABORTWAIT':
      case 'PROCESSABORT':
        return 'EPIPE';
      default:
        return unreachable(s);
    }
  }

  // ---- opening (spec 9.2 "Opening") ---------------------------------------------------------------

  /** listen(): INIT -> LISTEN; again in LISTEN a no-op (the kernel only updates the backlog). */
  listen(): Readonly<CloseAction> {
    const a = this.#begin();
    const s = this.#state;
    switch (s) {
      case 'INIT':
        this.#state = 'LISTEN';
        break;
      case 'LISTEN':
        break;
      case 'ACTIVE':
      case 'CLOSED':
      case 'PEERCLOSEWAIT1':
      case 'PEERCLOSEWAIT2':
      case 'APPCLOSEWAIT1':
      case 'APPCLOSEWAIT2':
      case 'APPFINCLOSEWAIT':
      case 'PEERFINCLOSEWAIT':
      case 'PEERABORTWAIT':
      case 'PROCESSABORT':
        throw new StateError(s, 'listen');
      default:
        return unreachable(s);
    }
    return this.#finish(a);
  }

  /**
   * The handshake succeeded or fell back (connect() done, or an accepted child is queued for
   * accept()): INIT -> ACTIVE. Close flags the peer sent while we were still in INIT already moved
   * the socket on (9.2: INIT + done_writing/closed -> APPCLOSEWAIT1, INIT + abort -> PROCESSABORT),
   * and the kernel then keeps that state (it only turns INIT into ACTIVE); a close() during the
   * handshake left CLOSED: both no-ops.
   */
  connected(): Readonly<CloseAction> {
    const a = this.#begin();
    const s = this.#state;
    switch (s) {
      case 'INIT':
        this.#state = 'ACTIVE';
        break;
      case 'APPCLOSEWAIT1':
      case 'PROCESSABORT':
      case 'CLOSED':
        break;
      case 'ACTIVE':
      case 'LISTEN':
      case 'PEERCLOSEWAIT1':
      case 'PEERCLOSEWAIT2':
      case 'APPCLOSEWAIT2':
      case 'APPFINCLOSEWAIT':
      case 'PEERFINCLOSEWAIT':
      case 'PEERABORTWAIT':
        throw new StateError(s, 'connected');
      default:
        return unreachable(s);
    }
    return this.#finish(a);
  }

  // ---- local actions (spec 9.2 "Local actions", 7.6) --------------------------------------------

  /**
   * The application closes the socket (close(), or shutdown(SHUT_RDWR)); smc_close_active.
   * `txPending`: data is queued in the send buffer and not yet sent (smc_tx_prepared_sends; pass
   * false when the linger time is 0). `unreadData`: received bytes remain unread (bytes_to_rcv):
   * our close flag is then peer_conn_abort instead of peer_conn_closed (7.6).
   * A second close() is a no-op (idempotent).
   */
  close(txPending: boolean, unreadData: boolean): Readonly<CloseAction> {
    const a = this.#begin();
    if (this.#appClosed) return this.#finish(a);
    this.#appClosed = true;
    this.#sendShutdown = true;
    if (this.#pending !== 'none') {
      // A shutdown is draining: its drained() performs the close instead (close implies it).
      this.#pending = 'close';
      return this.#finish(a);
    }
    this.#closeActive(a, txPending, unreadData);
    return this.#finish(a);
  }

  /**
   * shutdown(SHUT_WR) (smc_shutdown + smc_close_shutdown_write): after queued data is sent, a CDC
   * with peer_done_writing and a TCP FIN (7.6). `txPending` as for close(). The kernel refuses it
   * with ENOTCONN in INIT, LISTEN, CLOSED, PEERFINCLOSEWAIT, PEERABORTWAIT and PROCESSABORT: here a
   * StateError. Repeated (or during a drain) it is a no-op.
   */
  shutdownWrite(txPending: boolean): Readonly<CloseAction> {
    const a = this.#begin();
    const s = this.#state;
    switch (s) {
      case 'INIT':
      case 'LISTEN':
      case 'CLOSED':
      case 'PEERFINCLOSEWAIT':
      case 'PEERABORTWAIT':
      case 'PROCESSABORT':
        throw new StateError(s, 'shutdownWrite');
      case 'ACTIVE':
      case 'APPCLOSEWAIT1':
      case 'APPCLOSEWAIT2':
      case 'PEERCLOSEWAIT1':
      case 'PEERCLOSEWAIT2':
      case 'APPFINCLOSEWAIT':
        break;
      default:
        return unreachable(s);
    }
    this.#sendShutdown = true;
    if (this.#pending === 'none') this.#shutdownWr(a, txPending);
    return this.#finish(a);
  }

  /**
   * node's socket.end(): half-close, i.e. shutdownWrite(), but idempotent and quiet: after an
   * earlier end()/close()/destroy(), or once the connection is gone (CLOSED, PEERFINCLOSEWAIT,
   * PEERABORTWAIT, PROCESSABORT), it does nothing. Before the connection exists (INIT, LISTEN) it
   * throws: the net layer defers an early end() until connected (as node does).
   */
  end(txPending: boolean): Readonly<CloseAction> {
    const s = this.#state;
    switch (s) {
      case 'INIT':
      case 'LISTEN':
        throw new StateError(s, 'end');
      case 'ACTIVE':
      case 'APPCLOSEWAIT1':
        if (!this.#sendShutdown) return this.shutdownWrite(txPending);
        break;
      case 'APPCLOSEWAIT2':
      case 'PEERCLOSEWAIT1':
      case 'PEERCLOSEWAIT2':
      case 'APPFINCLOSEWAIT':
      case 'CLOSED':
      case 'PEERFINCLOSEWAIT':
      case 'PEERABORTWAIT':
      case 'PROCESSABORT':
        break;
      default:
        return unreachable(s);
    }
    const a = this.#begin();
    this.#sendShutdown = true;
    return this.#finish(a);
  }

  /**
   * The drain asked for by close() or shutdownWrite() is over (the send buffer is empty, or the
   * wait timed out). The pending operation runs now in whatever state peer events have meanwhile
   * led to (the kernel re-evaluates: "goto again"). `unreadData` as for close(). Without a drain
   * in progress: StateError.
   */
  drained(unreadData: boolean): Readonly<CloseAction> {
    if (this.#pending === 'none') throw new StateError(this.#state, 'drained');
    const a = this.#begin();
    this.#runPending(a, unreadData);
    return this.#finish(a);
  }

  /**
   * node's socket.destroy([err]): abort (style guide 13). Sends a CDC with peer_conn_abort unless
   * one went out already, resets the TCP socket, and closes at once (-> CLOSED) from every state.
   * `withError`: destroy(err) with an error, reported as hadError. Idempotent.
   */
  destroy(withError = false): Readonly<CloseAction> {
    const a = this.#begin();
    if (this.#appClosed && this.#state === 'CLOSED') return this.#finish(a);
    this.#appClosed = true;
    this.#sendShutdown = true;
    if (withError && !this.#closeNotified) this.#destroyError = true;
    this.#pending = 'none';
    const s = this.#state;
    switch (s) {
      case 'INIT':
        // Abandon the handshake and its TCP connection.
        a.cancelWork = true;
        a.tcp = 'rst';
        this.#state = 'CLOSED';
        break;
      case 'LISTEN':
        // release closes the listening socket; the driver closes non-accepted children.
        a.cancelWork = true;
        this.#state = 'CLOSED';
        break;
      case 'ACTIVE':
      case 'APPCLOSEWAIT1':
      case 'APPCLOSEWAIT2':
      case 'PEERCLOSEWAIT1':
      case 'PEERCLOSEWAIT2':
      case 'APPFINCLOSEWAIT':
      case 'PEERFINCLOSEWAIT':
      case 'PROCESSABORT':
        // The peer must stop writing into our RMBE: tell it (7.6 abort), then drop everything.
        a.cancelWork = true;
        if (!this.#abortSent) this.#sendAbort(a);
        else this.#txConnAbort = true;
        a.tcp = 'rst';
        this.#state = 'CLOSED';
        break;
      case 'PEERABORTWAIT':
        // The link is gone and the TCP socket already reset by localAbort.
        a.cancelWork = true;
        this.#state = 'CLOSED';
        break;
      case 'CLOSED':
        // Reached through an abort before the application closed: only release is left.
        break;
      default:
        return unreachable(s);
    }
    return this.#finish(a);
  }

  // ---- events from the peer (spec 9.2 "Events from the peer", "Peer abort"; 7.6) ------------------

  /**
   * A CDC from the peer was accepted: hand over its connection-state flags (smc_cdc_msg_recv_action
   * + smc_close_passive_work). A CDC without close flags changes nothing. The flags are sticky
   * (a Linux peer never clears them), so repeats are harmless. Allocation-free: call it per CDC.
   */
  peerCdc(flags: PeerConnFlags): Readonly<CloseAction> {
    const s0 = this.#state;
    if (s0 === 'LISTEN') throw new StateError(s0, 'peerCdc');
    const a = this.#begin();
    const dw = flags.peerDoneWriting;
    const cl = flags.peerConnClosed;
    const ab = flags.peerConnAbort;
    if (!dw && !cl && !ab) return this.#finish(a);
    // What we had sent BEFORE this CDC decides the abort transition of PEERCLOSEWAIT1/2 (9.2).
    const onlyShutdownSent = this.#txDoneWriting && !this.sentAnyClose;
    if (dw) this.#peerDoneWriting = true;
    if (cl) this.#peerConnClosed = true;
    // Any close flag means EOF for the reader (RCV_SHUTDOWN, 7.6).
    if (!this.#eof) {
      this.#eof = true;
      if (s0 !== 'CLOSED') a.readerEof = true;
    }
    if (ab && !this.#peerConnAbort) {
      this.#peerConnAbort = true;
      // 7.6: ECONNRESET on the socket, and our outgoing flags are marked abort too.
      if (s0 !== 'CLOSED') this.#raise(a, 'ECONNRESET');
      this.#txConnAbort = true;
    }
    if (this.#peerConnAbort) this.#passiveAbortReceived(a, onlyShutdownSent);
    else this.#passive();
    return this.#finish(a);
  }

  // ---- local abort (spec 9.2 "Local abort", 7.6) ---------------------------------------------------

  /**
   * The connection can no longer use RDMA: link group terminated, link down without failover, or
   * the connection killed (smc_conn_kill + smc_close_active_abort). Socket error ECONNABORTED, the
   * internal TCP socket is reset, state PEERABORTWAIT: cancel this socket's work, then call
   * abortDone() (-> CLOSED). The kernel also tries to send a CDC with peer_conn_abort
   * (smc_close_abort in smc_conn_kill): sendCdc is set for it; post it only if the link can still
   * send, and ignore a failure. INIT (the handshake fails by itself), PEERABORTWAIT and CLOSED:
   * no-op.
   */
  localAbort(): Readonly<CloseAction> {
    const s = this.#state;
    if (s === 'LISTEN') throw new StateError(s, 'localAbort');
    const a = this.#begin();
    switch (s) {
      case 'ACTIVE':
      case 'APPCLOSEWAIT1':
      case 'APPCLOSEWAIT2':
      case 'PEERCLOSEWAIT1':
      case 'PEERCLOSEWAIT2':
      case 'PEERFINCLOSEWAIT':
      case 'PROCESSABORT':
      case 'APPFINCLOSEWAIT':
        this.#raise(a, 'ECONNABORTED');
        if (!this.#abortSent) this.#sendAbort(a);
        else this.#txConnAbort = true;
        a.tcp = 'rst';
        a.cancelWork = true;
        this.#state = 'PEERABORTWAIT';
        break;
      case 'INIT':
      case 'PEERABORTWAIT':
      case 'CLOSED':
        break;
      // LISTEN threw above (a listening socket has no connection to abort).
      default:
        return unreachable(s);
    }
    // A close() waiting for its drain wakes up on the error and finds PEERABORTWAIT: -> CLOSED.
    if (this.#pending !== 'none') this.#runPending(a, false);
    return this.#finish(a);
  }

  /** The work of an aborted socket is cancelled: PEERABORTWAIT -> CLOSED (CLOSED: no-op). */
  abortDone(): Readonly<CloseAction> {
    const a = this.#begin();
    const s = this.#state;
    switch (s) {
      case 'PEERABORTWAIT':
        this.#state = 'CLOSED';
        break;
      case 'CLOSED':
        break;
      case 'INIT':
      case 'ACTIVE':
      case 'LISTEN':
      case 'PEERCLOSEWAIT1':
      case 'PEERCLOSEWAIT2':
      case 'APPCLOSEWAIT1':
      case 'APPCLOSEWAIT2':
      case 'APPFINCLOSEWAIT':
      case 'PEERFINCLOSEWAIT':
      case 'PROCESSABORT':
        throw new StateError(s, 'abortDone');
      default:
        return unreachable(s);
    }
    return this.#finish(a);
  }

  // ---- the kernel's switches ---------------------------------------------------------------------

  /** smc_close_active: close() in each state (9.2 "Local actions"). */
  #closeActive(a: CloseAction, txPending: boolean, unreadData: boolean): void {
    const s = this.#state;
    switch (s) {
      case 'INIT':
        // Abandon the handshake; release closes the TCP socket.
        a.cancelWork = true;
        this.#state = 'CLOSED';
        break;
      case 'LISTEN':
        // release closes the listening socket; the driver closes non-accepted children.
        a.cancelWork = true;
        this.#state = 'CLOSED';
        break;
      case 'ACTIVE':
        if (txPending) {
          this.#startDrain(a, 'close');
          break;
        }
        this.#sendFinal(a, unreadData);
        // Shut the TCP socket down first, so the passive side avoids TIME_WAIT (7.6).
        a.tcp = 'fin';
        this.#state = 'PEERCLOSEWAIT1';
        break;
      case 'APPFINCLOSEWAIT':
        // We only shut down writing so far: now the close flag, if not sent yet.
        if (this.#txDoneWriting && !this.sentAnyClose) this.#sendFinal(a, unreadData);
        this.#state = 'CLOSED';
        break;
      case 'APPCLOSEWAIT1':
      case 'APPCLOSEWAIT2':
        // Drain only while the peer still reads (it did no more than shutdown(WR)).
        if (!this.rxedAnyClose && txPending) {
          this.#startDrain(a, 'close');
          break;
        }
        this.#sendFinal(a, unreadData);
        // Peer closed already: done. Peer only shut down writing: wait for its close.
        this.#state = this.rxedAnyClose ? 'CLOSED' : 'PEERFINCLOSEWAIT';
        break;
      case 'PEERCLOSEWAIT1':
      case 'PEERCLOSEWAIT2':
        // After our shutdown(WR): send the close flag now; the peer's close ends the wait.
        if (this.#txDoneWriting && !this.sentAnyClose) this.#sendFinal(a, unreadData);
        break;
      case 'PEERFINCLOSEWAIT':
        // The peer's close ends the wait.
        break;
      case 'PROCESSABORT':
        this.#sendAbort(a);
        this.#state = 'CLOSED';
        break;
      case 'PEERABORTWAIT':
        this.#state = 'CLOSED';
        break;
      case 'CLOSED':
        break;
      default:
        unreachable(s);
    }
  }

  /** smc_close_shutdown_write: shutdown(SHUT_WR) in each state (9.2 "Local actions"). */
  #shutdownWr(a: CloseAction, txPending: boolean): void {
    const s = this.#state;
    switch (s) {
      case 'ACTIVE':
        if (txPending) {
          this.#startDrain(a, 'shutdown');
          break;
        }
        this.#sendDoneWriting(a);
        this.#state = 'PEERCLOSEWAIT1';
        break;
      case 'APPCLOSEWAIT1':
        if (!this.rxedAnyClose && txPending) {
          this.#startDrain(a, 'shutdown');
          break;
        }
        this.#sendDoneWriting(a);
        this.#state = 'APPCLOSEWAIT2';
        break;
      case 'APPCLOSEWAIT2':
      case 'PEERCLOSEWAIT1':
      case 'PEERCLOSEWAIT2':
      case 'APPFINCLOSEWAIT':
      case 'PEERFINCLOSEWAIT':
      case 'PROCESSABORT':
      case 'PEERABORTWAIT':
      case 'INIT':
      case 'LISTEN':
      case 'CLOSED':
        // Already shut down, or nothing left to shut down (a drain that ended after an abort).
        break;
      default:
        unreachable(s);
    }
  }

  /** smc_close_passive_work without abort: done_writing / closed received (9.2 "Events from the peer"). */
  #passive(): void {
    const s = this.#state;
    switch (s) {
      case 'INIT':
      case 'ACTIVE':
        this.#state = 'APPCLOSEWAIT1';
        break;
      case 'PEERCLOSEWAIT1':
      case 'PEERCLOSEWAIT2': {
        let next: SmcStateName = this.#peerDoneWriting ? 'PEERCLOSEWAIT2' : s;
        if (this.rxedAnyClose) {
          // Closed locally (and our close sent): done. Only shut down locally: wait for close().
          next = this.#appClosed && this.sentAnyClose ? 'CLOSED' : 'APPFINCLOSEWAIT';
        }
        this.#state = next;
        break;
      }
      case 'PEERFINCLOSEWAIT':
        if (this.rxedAnyClose) this.#state = 'CLOSED';
        break;
      case 'APPCLOSEWAIT1':
      case 'APPCLOSEWAIT2':
      case 'APPFINCLOSEWAIT':
      case 'PEERABORTWAIT':
      case 'PROCESSABORT':
      case 'CLOSED':
        break;
      case 'LISTEN':
        throw new StateError(s, 'peerCdc');
      default:
        unreachable(s);
    }
  }

  /** smc_close_passive_abort_received (9.2 "Peer abort"). */
  #passiveAbortReceived(a: CloseAction, onlyShutdownSent: boolean): void {
    const s = this.#state;
    switch (s) {
      case 'INIT':
      case 'ACTIVE':
      case 'APPCLOSEWAIT1':
      case 'APPFINCLOSEWAIT':
        this.#state = 'PROCESSABORT';
        break;
      case 'PEERCLOSEWAIT1':
      case 'PEERCLOSEWAIT2':
        // Only shut down writing: the application still has to close(). Closed: done.
        this.#state = onlyShutdownSent ? 'PROCESSABORT' : 'CLOSED';
        break;
      case 'APPCLOSEWAIT2':
        // We only shut down writing, so the peer (which aborted from PEERCLOSEWAIT1/2 by closing with
        // unread data) still waits for a close flag from us, and our application's close() will find
        // CLOSED and send none: send the abort now, or the peer never leaves PEERCLOSEWAIT (found by the
        // two-machine property test; the kernel's smc_close_passive_abort_received sends nothing here).
        if (onlyShutdownSent) this.#sendAbort(a);
        this.#state = 'CLOSED';
        break;
      case 'PEERFINCLOSEWAIT':
      case 'PEERABORTWAIT':
        this.#state = 'CLOSED';
        break;
      case 'PROCESSABORT':
      case 'CLOSED':
        break;
      case 'LISTEN':
        throw new StateError(s, 'peerCdc');
      default:
        unreachable(s);
    }
    if (this.#state !== s) a.cancelWork = true;
    // A close()/shutdown() waiting for its drain wakes up on ECONNRESET and runs in the new state.
    if (this.#pending !== 'none') this.#runPending(a, false);
  }

  // ---- helpers -----------------------------------------------------------------------------------

  #startDrain(a: CloseAction, op: 'shutdown' | 'close'): void {
    this.#pending = op;
    a.drain = true;
  }

  #runPending(a: CloseAction, unreadData: boolean): void {
    const op = this.#pending;
    this.#pending = 'none';
    a.cancelWork = true;
    // The drain is over: do not wait again ("after flushing" happened, or was cut short).
    if (op === 'close') this.#closeActive(a, false, unreadData);
    else if (op === 'shutdown') this.#shutdownWr(a, false);
  }

  /** smc_close_wr: peer_done_writing, and the TCP FIN of shutdown(SHUT_WR). */
  #sendDoneWriting(a: CloseAction): void {
    this.#txDoneWriting = true;
    this.#requestCdc(a);
    a.tcp = 'fin';
  }

  /** smc_close_final: peer_conn_closed, or peer_conn_abort if unread data remains (7.6). */
  #sendFinal(a: CloseAction, unreadData: boolean): void {
    if (unreadData) this.#txConnAbort = true;
    else this.#txConnClosed = true;
    this.#requestCdc(a);
  }

  /** smc_close_abort. */
  #sendAbort(a: CloseAction): void {
    this.#txConnAbort = true;
    this.#requestCdc(a);
  }

  #requestCdc(a: CloseAction): void {
    a.sendCdc = true;
    if (this.#txConnAbort) this.#abortSent = true;
  }

  /**
   * Raises the socket error: only the first one, and only while the application still holds the
   * socket (after close()/destroy() nobody can see it; node emits no 'error' after destroy).
   */
  #raise(a: CloseAction, e: CloseErrno): void {
    if (this.#errno !== null || this.#appClosed) return;
    this.#errno = e;
    a.error = e;
  }

  #begin(): CloseAction {
    const a = this.#a;
    a.drain = false;
    a.sendCdc = false;
    a.tcp = 'none';
    a.readerEof = false;
    a.error = null;
    a.cancelWork = false;
    a.release = false;
    a.closeEvent = false;
    a.hadError = false;
    this.#from = this.#state;
    return a;
  }

  /** The end of every event: the one setState() (notified once), close and release bookkeeping. */
  #finish(a: CloseAction): CloseAction {
    const from = this.#from;
    const to = this.#state;
    if (to === 'CLOSED') {
      this.#pending = 'none';
      if (!this.#closeNotified) {
        this.#closeNotified = true;
        a.closeEvent = true;
        a.hadError = this.#errno !== null || this.#destroyError;
      }
      // Free only once the application is done with the socket: unread data stays readable.
      if (this.#appClosed && !this.#released) {
        this.#released = true;
        a.release = true;
      }
    }
    a.txDoneWriting = this.#txDoneWriting;
    a.txConnClosed = this.#txConnClosed;
    a.txConnAbort = this.#txConnAbort;
    a.from = from;
    a.to = to;
    if (from !== to && this.#onStateChange !== undefined) this.#onStateChange(from, to);
    return a;
  }
}
