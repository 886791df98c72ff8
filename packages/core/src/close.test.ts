import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CloseMachine, closeDrainTimeout, type CloseAction, type PeerConnFlags } from './close.js';
import { SmcState, type SmcStateName } from './states.js';
import { EngineErrorCode, StateError } from './errors.js';
import { Timers } from './constants.js';

// ---- vocabulary -------------------------------------------------------------------------------------

const flags = (dw: boolean, cl: boolean, ab: boolean): PeerConnFlags => ({
  peerDoneWriting: dw, peerConnClosed: cl, peerConnAbort: ab,
});
const NONE = flags(false, false, false);
const DW = flags(true, false, false);
const CL = flags(false, true, false);
const DWCL = flags(true, true, false);
const AB = flags(false, false, true);

/** Test events (the short names used in the tables below) and how each drives the machine. */
const EV = {
  listen: (m: CloseMachine) => m.listen(),
  connected: (m: CloseMachine) => m.connected(),
  close: (m: CloseMachine) => m.close(false, false),
  closeUnread: (m: CloseMachine) => m.close(false, true),
  shut: (m: CloseMachine) => m.shutdownWrite(false),
  end: (m: CloseMachine) => m.end(false),
  drained: (m: CloseMachine) => m.drained(false),
  peerDW: (m: CloseMachine) => m.peerCdc(DW),
  peerCL: (m: CloseMachine) => m.peerCdc(CL),
  peerDWCL: (m: CloseMachine) => m.peerCdc(DWCL),
  peerAB: (m: CloseMachine) => m.peerCdc(AB),
  localAbort: (m: CloseMachine) => m.localAbort(),
  abortDone: (m: CloseMachine) => m.abortDone(),
  destroy: (m: CloseMachine) => m.destroy(),
} as const;
type Ev = keyof typeof EV;

/** The method name a StateError reports for each test event. */
const METHOD: Record<Ev, string> = {
  listen: 'listen', connected: 'connected', close: 'close', closeUnread: 'close', shut: 'shutdownWrite',
  end: 'end', drained: 'drained', peerDW: 'peerCdc', peerCL: 'peerCdc', peerDWCL: 'peerCdc', peerAB: 'peerCdc',
  localAbort: 'localAbort', abortDone: 'abortDone', destroy: 'destroy',
};

function run(path: readonly Ev[]): CloseMachine {
  const m = new CloseMachine();
  for (const e of path) EV[e](m);
  return m;
}

/** The CDC an action asks for, as letters of its connection-state flags (W = done_writing, C = closed, A = abort). */
function cdcOf(a: Readonly<CloseAction>): string {
  if (!a.sendCdc) return '-';
  return (a.txDoneWriting ? 'W' : '') + (a.txConnClosed ? 'C' : '') + (a.txConnAbort ? 'A' : '');
}

function snapshot(m: CloseMachine): Record<string, unknown> {
  return {
    state: m.state, txDoneWriting: m.txDoneWriting, txConnClosed: m.txConnClosed, txConnAbort: m.txConnAbort,
    peerDoneWriting: m.peerDoneWriting, peerConnClosed: m.peerConnClosed, peerConnAbort: m.peerConnAbort,
    appClosed: m.appClosed, sendShutdown: m.sendShutdown, readerEof: m.readerEof, error: m.error,
    pending: m.pending, released: m.released, closeNotified: m.closeNotified,
  };
}

// ---- spec 9.2, written out (independently of close.ts) -----------------------------------------------

type Tcp = 'none' | 'fin' | 'rst';
type Err = 'ECONNRESET' | 'ECONNABORTED' | null;
/** [table, setup path, event, state before, state after, CDC sent, TCP action, reader EOF now, error now] */
type Row = readonly [string, readonly Ev[], Ev, SmcStateName, SmcStateName, string, Tcp, boolean, Err];

const ROWS: readonly Row[] = [
  // Opening: socket() -> INIT, listen() -> LISTEN, handshake/fallback -> ACTIVE, close() in INIT/LISTEN -> CLOSED.
  ['opening', [], 'listen', 'INIT', 'LISTEN', '-', 'none', false, null],
  ['opening', ['listen'], 'listen', 'LISTEN', 'LISTEN', '-', 'none', false, null],
  ['opening', [], 'connected', 'INIT', 'ACTIVE', '-', 'none', false, null],
  ['opening', ['peerDW'], 'connected', 'APPCLOSEWAIT1', 'APPCLOSEWAIT1', '-', 'none', false, null],
  ['opening', ['peerAB'], 'connected', 'PROCESSABORT', 'PROCESSABORT', '-', 'none', false, null],
  ['opening', [], 'close', 'INIT', 'CLOSED', '-', 'none', false, null],
  ['opening', ['listen'], 'close', 'LISTEN', 'CLOSED', '-', 'none', false, null],

  // Local actions.
  ['local', ['connected'], 'close', 'ACTIVE', 'PEERCLOSEWAIT1', 'C', 'fin', false, null],
  ['local', ['connected'], 'closeUnread', 'ACTIVE', 'PEERCLOSEWAIT1', 'A', 'fin', false, null],
  ['local', ['connected'], 'shut', 'ACTIVE', 'PEERCLOSEWAIT1', 'W', 'fin', false, null],
  ['local', ['connected', 'peerDW'], 'shut', 'APPCLOSEWAIT1', 'APPCLOSEWAIT2', 'W', 'fin', false, null],
  // APPCLOSEWAIT1/2 close(): CLOSED if the peer had sent closed/abort, else PEERFINCLOSEWAIT.
  ['local', ['connected', 'peerDW'], 'close', 'APPCLOSEWAIT1', 'PEERFINCLOSEWAIT', 'C', 'none', false, null],
  ['local', ['connected', 'peerCL'], 'close', 'APPCLOSEWAIT1', 'CLOSED', 'C', 'none', false, null],
  ['local', ['connected', 'peerCL'], 'closeUnread', 'APPCLOSEWAIT1', 'CLOSED', 'A', 'none', false, null],
  ['local', ['connected', 'peerDW', 'shut'], 'close', 'APPCLOSEWAIT2', 'PEERFINCLOSEWAIT', 'WC', 'none', false, null],
  ['local', ['connected', 'peerDW', 'shut', 'peerCL'], 'close', 'APPCLOSEWAIT2', 'CLOSED', 'WC', 'none', false, null],
  // APPFINCLOSEWAIT close(): closed, if not already sent.
  ['local', ['connected', 'shut', 'peerCL'], 'close', 'APPFINCLOSEWAIT', 'CLOSED', 'WC', 'none', false, null],
  // PEERCLOSEWAIT1/2 close() after an earlier shutdown(WR): closed (abort if unread), state unchanged.
  ['local', ['connected', 'shut'], 'close', 'PEERCLOSEWAIT1', 'PEERCLOSEWAIT1', 'WC', 'none', false, null],
  ['local', ['connected', 'shut'], 'closeUnread', 'PEERCLOSEWAIT1', 'PEERCLOSEWAIT1', 'WA', 'none', false, null],
  ['local', ['connected', 'shut', 'peerDW'], 'close', 'PEERCLOSEWAIT2', 'PEERCLOSEWAIT2', 'WC', 'none', false, null],
  ['local', ['connected', 'peerAB'], 'close', 'PROCESSABORT', 'CLOSED', 'A', 'none', false, null],
  ['local', ['connected', 'localAbort'], 'close', 'PEERABORTWAIT', 'CLOSED', '-', 'none', false, null],
  ['local', ['connected', 'peerDW', 'close'], 'close', 'PEERFINCLOSEWAIT', 'PEERFINCLOSEWAIT', '-', 'none', false, null],
  ['local', ['close'], 'close', 'CLOSED', 'CLOSED', '-', 'none', false, null],
  ['local', ['connected', 'localAbort', 'abortDone'], 'close', 'CLOSED', 'CLOSED', '-', 'none', false, null],

  // Events from the peer (done_writing / closed); the reader gets EOF with the first one.
  ['peer', [], 'peerDW', 'INIT', 'APPCLOSEWAIT1', '-', 'none', true, null],
  ['peer', [], 'peerCL', 'INIT', 'APPCLOSEWAIT1', '-', 'none', true, null],
  ['peer', ['connected'], 'peerDW', 'ACTIVE', 'APPCLOSEWAIT1', '-', 'none', true, null],
  ['peer', ['connected'], 'peerCL', 'ACTIVE', 'APPCLOSEWAIT1', '-', 'none', true, null],
  ['peer', ['connected'], 'peerDWCL', 'ACTIVE', 'APPCLOSEWAIT1', '-', 'none', true, null],
  ['peer', ['connected', 'shut'], 'peerDW', 'PEERCLOSEWAIT1', 'PEERCLOSEWAIT2', '-', 'none', true, null],
  ['peer', ['connected', 'close'], 'peerDW', 'PEERCLOSEWAIT1', 'PEERCLOSEWAIT2', '-', 'none', true, null],
  // PEERCLOSEWAIT1/2 + closed: CLOSED if we closed and sent our close, else APPFINCLOSEWAIT.
  ['peer', ['connected', 'close'], 'peerCL', 'PEERCLOSEWAIT1', 'CLOSED', '-', 'none', true, null],
  ['peer', ['connected', 'closeUnread'], 'peerCL', 'PEERCLOSEWAIT1', 'CLOSED', '-', 'none', true, null],
  ['peer', ['connected', 'shut'], 'peerCL', 'PEERCLOSEWAIT1', 'APPFINCLOSEWAIT', '-', 'none', true, null],
  ['peer', ['connected', 'shut'], 'peerDWCL', 'PEERCLOSEWAIT1', 'APPFINCLOSEWAIT', '-', 'none', true, null],
  ['peer', ['connected', 'shut', 'peerDW'], 'peerCL', 'PEERCLOSEWAIT2', 'APPFINCLOSEWAIT', '-', 'none', false, null],
  ['peer', ['connected', 'shut', 'peerDW', 'close'], 'peerCL', 'PEERCLOSEWAIT2', 'CLOSED', '-', 'none', false, null],
  ['peer', ['connected', 'peerDW', 'close'], 'peerCL', 'PEERFINCLOSEWAIT', 'CLOSED', '-', 'none', false, null],
  // APPCLOSEWAIT1/2, APPFINCLOSEWAIT, PEERABORTWAIT, PROCESSABORT, CLOSED + anything: unchanged.
  ['peer', ['connected', 'peerDW'], 'peerDW', 'APPCLOSEWAIT1', 'APPCLOSEWAIT1', '-', 'none', false, null],
  ['peer', ['connected', 'peerDW'], 'peerCL', 'APPCLOSEWAIT1', 'APPCLOSEWAIT1', '-', 'none', false, null],
  ['peer', ['connected', 'peerDW', 'shut'], 'peerDW', 'APPCLOSEWAIT2', 'APPCLOSEWAIT2', '-', 'none', false, null],
  ['peer', ['connected', 'peerDW', 'shut'], 'peerCL', 'APPCLOSEWAIT2', 'APPCLOSEWAIT2', '-', 'none', false, null],
  ['peer', ['connected', 'shut', 'peerCL'], 'peerDW', 'APPFINCLOSEWAIT', 'APPFINCLOSEWAIT', '-', 'none', false, null],
  ['peer', ['connected', 'shut', 'peerCL'], 'peerCL', 'APPFINCLOSEWAIT', 'APPFINCLOSEWAIT', '-', 'none', false, null],
  ['peer', ['connected', 'localAbort'], 'peerDW', 'PEERABORTWAIT', 'PEERABORTWAIT', '-', 'none', true, null],
  ['peer', ['connected', 'localAbort'], 'peerCL', 'PEERABORTWAIT', 'PEERABORTWAIT', '-', 'none', true, null],
  ['peer', ['connected', 'peerAB'], 'peerDW', 'PROCESSABORT', 'PROCESSABORT', '-', 'none', false, null],
  ['peer', ['connected', 'peerAB'], 'peerCL', 'PROCESSABORT', 'PROCESSABORT', '-', 'none', false, null],
  ['peer', ['close'], 'peerDW', 'CLOSED', 'CLOSED', '-', 'none', false, null],
  ['peer', ['close'], 'peerCL', 'CLOSED', 'CLOSED', '-', 'none', false, null],

  // Peer abort: ECONNRESET (while the application holds the socket), EOF with the first close flag.
  ['peer abort', [], 'peerAB', 'INIT', 'PROCESSABORT', '-', 'none', true, 'ECONNRESET'],
  ['peer abort', ['connected'], 'peerAB', 'ACTIVE', 'PROCESSABORT', '-', 'none', true, 'ECONNRESET'],
  ['peer abort', ['connected', 'peerDW'], 'peerAB', 'APPCLOSEWAIT1', 'PROCESSABORT', '-', 'none', false, 'ECONNRESET'],
  ['peer abort', ['connected', 'shut', 'peerCL'], 'peerAB', 'APPFINCLOSEWAIT', 'PROCESSABORT', '-', 'none', false, 'ECONNRESET'],
  // PEERCLOSEWAIT1/2: PROCESSABORT if we had only shut down writing, else CLOSED.
  ['peer abort', ['connected', 'shut'], 'peerAB', 'PEERCLOSEWAIT1', 'PROCESSABORT', '-', 'none', true, 'ECONNRESET'],
  ['peer abort', ['connected', 'shut', 'peerDW'], 'peerAB', 'PEERCLOSEWAIT2', 'PROCESSABORT', '-', 'none', false, 'ECONNRESET'],
  ['peer abort', ['connected', 'close'], 'peerAB', 'PEERCLOSEWAIT1', 'CLOSED', '-', 'none', true, null],
  ['peer abort', ['connected', 'shut', 'peerDW', 'close'], 'peerAB', 'PEERCLOSEWAIT2', 'CLOSED', '-', 'none', false, null],
  // APPCLOSEWAIT2: we sent no close flag yet and the peer waits for one: an abort goes out (see close.ts).
  ['peer abort', ['connected', 'peerDW', 'shut'], 'peerAB', 'APPCLOSEWAIT2', 'CLOSED', 'WA', 'none', false, 'ECONNRESET'],
  ['peer abort', ['connected', 'peerDW', 'close'], 'peerAB', 'PEERFINCLOSEWAIT', 'CLOSED', '-', 'none', false, null],
  ['peer abort', ['connected', 'localAbort'], 'peerAB', 'PEERABORTWAIT', 'CLOSED', '-', 'none', true, null],
  ['peer abort', ['connected', 'peerAB'], 'peerAB', 'PROCESSABORT', 'PROCESSABORT', '-', 'none', false, null],

  // Local abort: ECONNABORTED, TCP reset, best-effort abort CDC; PEERABORTWAIT, then CLOSED once work is cancelled.
  ['local abort', ['connected'], 'localAbort', 'ACTIVE', 'PEERABORTWAIT', 'A', 'rst', false, 'ECONNABORTED'],
  ['local abort', ['connected', 'peerDW'], 'localAbort', 'APPCLOSEWAIT1', 'PEERABORTWAIT', 'A', 'rst', false, 'ECONNABORTED'],
  ['local abort', ['connected', 'peerDW', 'shut'], 'localAbort', 'APPCLOSEWAIT2', 'PEERABORTWAIT', 'WA', 'rst', false, 'ECONNABORTED'],
  ['local abort', ['connected', 'shut'], 'localAbort', 'PEERCLOSEWAIT1', 'PEERABORTWAIT', 'WA', 'rst', false, 'ECONNABORTED'],
  ['local abort', ['connected', 'close'], 'localAbort', 'PEERCLOSEWAIT1', 'PEERABORTWAIT', 'CA', 'rst', false, null],
  ['local abort', ['connected', 'shut', 'peerDW'], 'localAbort', 'PEERCLOSEWAIT2', 'PEERABORTWAIT', 'WA', 'rst', false, 'ECONNABORTED'],
  ['local abort', ['connected', 'peerDW', 'close'], 'localAbort', 'PEERFINCLOSEWAIT', 'PEERABORTWAIT', 'CA', 'rst', false, null],
  ['local abort', ['connected', 'peerAB'], 'localAbort', 'PROCESSABORT', 'PEERABORTWAIT', 'A', 'rst', false, null],
  ['local abort', ['connected', 'shut', 'peerCL'], 'localAbort', 'APPFINCLOSEWAIT', 'PEERABORTWAIT', 'WA', 'rst', false, 'ECONNABORTED'],
  ['local abort', [], 'localAbort', 'INIT', 'INIT', '-', 'none', false, null],
  ['local abort', ['connected', 'localAbort'], 'localAbort', 'PEERABORTWAIT', 'PEERABORTWAIT', '-', 'none', false, null],
  ['local abort', ['close'], 'localAbort', 'CLOSED', 'CLOSED', '-', 'none', false, null],
  ['local abort', ['connected', 'localAbort'], 'abortDone', 'PEERABORTWAIT', 'CLOSED', '-', 'none', false, null],
  ['local abort', ['connected', 'localAbort', 'peerAB'], 'abortDone', 'CLOSED', 'CLOSED', '-', 'none', false, null],

  // node:net lifecycle (style guide 13): end() = shutdown(WR); destroy() = abort, CLOSED at once.
  ['node', ['connected'], 'end', 'ACTIVE', 'PEERCLOSEWAIT1', 'W', 'fin', false, null],
  ['node', ['connected', 'peerDW'], 'end', 'APPCLOSEWAIT1', 'APPCLOSEWAIT2', 'W', 'fin', false, null],
  ['node', [], 'destroy', 'INIT', 'CLOSED', '-', 'rst', false, null],
  ['node', ['listen'], 'destroy', 'LISTEN', 'CLOSED', '-', 'none', false, null],
  ['node', ['connected'], 'destroy', 'ACTIVE', 'CLOSED', 'A', 'rst', false, null],
  ['node', ['connected', 'close'], 'destroy', 'PEERCLOSEWAIT1', 'CLOSED', 'CA', 'rst', false, null],
  ['node', ['connected', 'shut', 'peerDW'], 'destroy', 'PEERCLOSEWAIT2', 'CLOSED', 'WA', 'rst', false, null],
  ['node', ['connected', 'peerDW'], 'destroy', 'APPCLOSEWAIT1', 'CLOSED', 'A', 'rst', false, null],
  ['node', ['connected', 'peerDW', 'shut'], 'destroy', 'APPCLOSEWAIT2', 'CLOSED', 'WA', 'rst', false, null],
  ['node', ['connected', 'shut', 'peerCL'], 'destroy', 'APPFINCLOSEWAIT', 'CLOSED', 'WA', 'rst', false, null],
  ['node', ['connected', 'peerDW', 'close'], 'destroy', 'PEERFINCLOSEWAIT', 'CLOSED', 'CA', 'rst', false, null],
  ['node', ['connected', 'peerAB'], 'destroy', 'PROCESSABORT', 'CLOSED', 'A', 'rst', false, null],
  ['node', ['connected', 'localAbort'], 'destroy', 'PEERABORTWAIT', 'CLOSED', '-', 'none', false, null],
  ['node', ['close'], 'destroy', 'CLOSED', 'CLOSED', '-', 'none', false, null],
];

describe('close: spec 9.2 transition tables, one test per row', () => {
  for (const [table, setup, ev, from, to, cdc, tcp, eof, error] of ROWS) {
    it(`${table}: ${from} [${setup.join(',')}] + ${ev} -> ${to}, cdc ${cdc}, tcp ${tcp}${eof ? ', EOF' : ''}${error ? `, ${error}` : ''}`, () => {
      const m = run(setup);
      assert.equal(m.state, from, 'setup reaches the row\'s state');
      const a = EV[ev](m);
      assert.equal(a.from, from);
      assert.equal(a.to, to);
      assert.equal(m.state, to);
      assert.equal(m.stateValue, SmcState[to].value);
      assert.equal(cdcOf(a), cdc, 'CDC sent');
      assert.equal(a.tcp, tcp, 'TCP action');
      assert.equal(a.readerEof, eof, 'reader EOF');
      assert.equal(a.error, error, 'socket error');
      assert.equal(a.drain, false);
      // Outgoing flags are sticky and reported on every action.
      assert.equal(a.txDoneWriting, m.txDoneWriting);
      assert.equal(a.txConnClosed, m.txConnClosed);
      assert.equal(a.txConnAbort, m.txConnAbort);
      if (ev === 'peerAB') assert.equal(a.txConnAbort, true, '7.6: a received abort marks our outgoing flags abort');
      // 'close' fires when CLOSED is first reached; release once the application is done too.
      assert.equal(a.closeEvent, to === 'CLOSED' && from !== 'CLOSED');
      if (to === 'CLOSED') assert.equal(m.released, m.appClosed);
    });
  }
});

// ---- every (state, event): the table's transition, a written-out no-op, or StateError -----------------

/** One way into each state. */
const PATH: Record<SmcStateName, readonly Ev[]> = {
  INIT: [],
  LISTEN: ['listen'],
  ACTIVE: ['connected'],
  CLOSED: ['close'],
  PEERCLOSEWAIT1: ['connected', 'close'],
  PEERCLOSEWAIT2: ['connected', 'shut', 'peerDW'],
  APPCLOSEWAIT1: ['connected', 'peerDW'],
  APPCLOSEWAIT2: ['connected', 'peerDW', 'shut'],
  APPFINCLOSEWAIT: ['connected', 'shut', 'peerCL'],
  PEERFINCLOSEWAIT: ['connected', 'peerDW', 'close'],
  PEERABORTWAIT: ['connected', 'localAbort'],
  PROCESSABORT: ['connected', 'peerAB'],
};

const MATRIX_EVENTS = [
  'listen', 'connected', 'close', 'shut', 'end', 'drained', 'peerDW', 'peerCL', 'peerAB', 'localAbort', 'abortDone', 'destroy',
] as const satisfies readonly Ev[];

/** T = throws StateError, N = written-out no-op, X = acts (a row of ROWS covers it). Columns as MATRIX_EVENTS. */
const MATRIX: Record<SmcStateName, string> = {
  //                listen conn close shut end drained pDW pCL pAB lAbort aDone destroy
  INIT: /*       */ 'X      X    X     T    T   T       X   X   X   N      T     X',
  LISTEN: /*     */ 'N      T    X     T    T   T       T   T   T   T      T     X',
  ACTIVE: /*     */ 'T      T    X     X    X   T       X   X   X   X      T     X',
  CLOSED: /*     */ 'T      N    N     T    N   T       N   N   N   N      N     N',
  PEERCLOSEWAIT1: 'T      T    N     N    N   T       X   X   X   X      T     X',
  PEERCLOSEWAIT2: 'T      T    X     N    N   T       N   X   X   X      T     X',
  APPCLOSEWAIT1: ' T      N    X     X    X   T       N   N   X   X      T     X',
  APPCLOSEWAIT2: ' T      T    X     N    N   T       N   N   X   X      T     X',
  APPFINCLOSEWAIT: 'T     T    X     N    N   T       N   N   X   X      T     X',
  PEERFINCLOSEWAIT: 'T    T    N     T    N   T       N   X   X   X      T     X',
  PEERABORTWAIT: ' T      T    X     T    N   T       N   N   X   N      X     X',
  PROCESSABORT: '  T      N    X     T    N   T       N   N   N   X      T     X',
};

/** Which MATRIX column a ROWS event belongs to. */
const FAMILY: Partial<Record<Ev, Ev>> = { closeUnread: 'close', peerDWCL: 'peerCL' };

describe('close: every state x every event', () => {
  const states = Object.keys(SmcState) as SmcStateName[];

  it('the canonical paths reach their states', () => {
    for (const s of states) assert.equal(run(PATH[s]).state, s, s);
  });

  for (const s of states) {
    const cells = MATRIX[s].trim().split(/\s+/);
    assert.equal(cells.length, MATRIX_EVENTS.length, `matrix row ${s}`);
    MATRIX_EVENTS.forEach((ev, i) => {
      const want = cells[i];
      it(`${s} + ${ev}: ${want === 'T' ? 'StateError' : want === 'N' ? 'no-op' : 'transition/action'}`, () => {
        const m = run(PATH[s]);
        const before = snapshot(m);
        if (want === 'T') {
          assert.throws(() => EV[ev](m), (e: unknown) => {
            assert.ok(e instanceof StateError, String(e));
            assert.equal(e.code, EngineErrorCode.STATE);
            assert.equal(e.state, s);
            assert.equal(e.event, METHOD[ev]);
            assert.match(e.message, new RegExp(`${METHOD[ev]}.*${s}`));
            return true;
          });
          assert.deepEqual(snapshot(m), before, 'a refused event changes nothing');
          return;
        }
        const a = EV[ev](m);
        if (want === 'N') {
          assert.equal(m.state, s);
          assert.equal(a.from, s);
          assert.equal(a.to, s);
          assert.equal(a.sendCdc, false);
          assert.equal(a.tcp, 'none');
          assert.equal(a.drain, false);
          assert.equal(a.cancelWork, false);
          assert.equal(a.release, false);
          assert.equal(a.closeEvent, false);
          assert.equal(a.error, null);
          return;
        }
        assert.equal(want, 'X');
        assert.ok(ROWS.some(([, setup, rev, from]) =>
          from === s && (FAMILY[rev] ?? rev) === ev && run(setup).state === s), `a table row covers ${s} + ${ev}`);
        const acted = a.from !== a.to || a.sendCdc || a.tcp !== 'none' || a.release || a.closeEvent || a.drain;
        assert.ok(acted, `${s} + ${ev} does something`);
      });
    });
  }

  it('a CDC without close flags changes nothing in any connected state', () => {
    for (const s of states) {
      if (s === 'LISTEN') continue;
      const m = run(PATH[s]);
      const before = snapshot(m);
      const a = m.peerCdc(NONE);
      assert.deepEqual(snapshot(m), before, s);
      assert.equal(a.readerEof || a.sendCdc || a.closeEvent || a.error !== null, false, s);
    }
  });
});

// ---- drain ("after flushing", 7.6) -----------------------------------------------------------------

describe('close: waiting for queued data (drain)', () => {
  it('close() with queued data drains first, then sends closed and shuts TCP down', () => {
    const m = run(['connected']);
    let a = m.close(true, false);
    assert.equal(a.drain, true);
    assert.equal(a.sendCdc, false);
    assert.equal(m.state, 'ACTIVE');
    assert.equal(m.pending, 'close');
    assert.equal(m.sendError(), 'EPIPE', 'no writes after close()');
    a = m.drained(false);
    assert.equal(cdcOf(a), 'C');
    assert.equal(a.tcp, 'fin');
    assert.equal(a.cancelWork, true);
    assert.equal(m.state, 'PEERCLOSEWAIT1');
    assert.equal(m.pending, 'none');
    assert.throws(() => m.drained(false), StateError);
  });

  it('unread data is judged when the drain ends (abort instead of closed)', () => {
    const m = run(['connected']);
    m.close(true, false);
    assert.equal(cdcOf(m.drained(true)), 'A');
  });

  it('a peer close during the drain: the close runs in APPCLOSEWAIT1 (goto again) and ends CLOSED', () => {
    const m = run(['connected']);
    m.close(true, false);
    const p = m.peerCdc(CL);
    assert.equal(p.to, 'APPCLOSEWAIT1');
    assert.equal(p.readerEof, true);
    assert.equal(m.pending, 'close', 'a graceful peer close does not cut the drain short');
    const a = m.drained(false);
    assert.equal(a.from, 'APPCLOSEWAIT1');
    assert.equal(a.to, 'CLOSED');
    assert.equal(cdcOf(a), 'C');
    assert.equal(a.release, true);
    assert.equal(a.closeEvent, true);
  });

  it('shutdown(WR) with queued data drains, then sends done_writing and a FIN', () => {
    const m = run(['connected']);
    assert.equal(m.shutdownWrite(true).drain, true);
    assert.equal(m.pending, 'shutdown');
    assert.equal(m.shutdownWrite(true).drain, false, 'repeated during the drain: no-op');
    const a = m.drained(false);
    assert.equal(cdcOf(a), 'W');
    assert.equal(a.tcp, 'fin');
    assert.equal(m.state, 'PEERCLOSEWAIT1');
  });

  it('close() during a shutdown drain takes it over: drained() sends closed', () => {
    const m = run(['connected']);
    m.shutdownWrite(true);
    const c = m.close(true, false);
    assert.equal(c.drain, false, 'the drain already runs');
    assert.equal(c.sendCdc, false);
    assert.equal(m.pending, 'close');
    const a = m.drained(false);
    assert.equal(cdcOf(a), 'C');
    assert.equal(a.tcp, 'fin');
    assert.equal(m.state, 'PEERCLOSEWAIT1');
  });

  it('APPCLOSEWAIT1: drains while the peer only shut down writing, not once it closed', () => {
    const a = run(['connected', 'peerDW']);
    assert.equal(a.close(true, false).drain, true);
    assert.equal(a.drained(false).to, 'PEERFINCLOSEWAIT');
    const b = run(['connected', 'peerCL']);
    const r = b.close(true, false);
    assert.equal(r.drain, false);
    assert.equal(r.to, 'CLOSED');
    const c = run(['connected', 'peerDW']);
    assert.equal(c.shutdownWrite(true).drain, true);
    assert.equal(cdcOf(c.drained(false)), 'W');
    assert.equal(c.state, 'APPCLOSEWAIT2');
    const d = run(['connected', 'peerCL']);
    assert.equal(d.shutdownWrite(true).to, 'APPCLOSEWAIT2');
  });

  it('a peer abort during a close drain ends it: abort sent, CLOSED, one state change', () => {
    const changes: string[] = [];
    const m = new CloseMachine({ onStateChange: (f, t) => changes.push(`${f}>${t}`) });
    m.connected();
    m.close(true, false);
    const a = m.peerCdc(AB);
    assert.equal(a.from, 'ACTIVE');
    assert.equal(a.to, 'CLOSED');
    assert.equal(cdcOf(a), 'A');
    assert.equal(a.cancelWork, true, 'stop the drain wait');
    assert.equal(a.error, null, 'the application closed already');
    assert.equal(a.release, true);
    assert.equal(a.closeEvent, true);
    assert.equal(a.hadError, false);
    assert.deepEqual(changes, ['INIT>ACTIVE', 'ACTIVE>CLOSED']);
    assert.throws(() => m.drained(false), StateError);
  });

  it('a peer abort during a shutdown drain: PROCESSABORT, drain cancelled', () => {
    const m = run(['connected']);
    m.shutdownWrite(true);
    const a = m.peerCdc(AB);
    assert.equal(a.to, 'PROCESSABORT');
    assert.equal(a.cancelWork, true);
    assert.equal(a.error, 'ECONNRESET');
    assert.equal(m.pending, 'none');
  });

  it('a local abort during a close drain: CLOSED at once (no abortDone needed)', () => {
    const m = run(['connected']);
    m.close(true, false);
    const a = m.localAbort();
    assert.equal(a.to, 'CLOSED');
    assert.equal(a.tcp, 'rst');
    assert.equal(a.cancelWork, true);
    assert.equal(a.release, true);
    assert.equal(m.abortDone().closeEvent, false, 'abortDone in CLOSED is a no-op');
  });

  it('destroy() during a drain ends it', () => {
    const m = run(['connected']);
    m.close(true, false);
    const a = m.destroy();
    assert.equal(a.to, 'CLOSED');
    assert.equal(cdcOf(a), 'A');
    assert.equal(a.cancelWork, true);
    assert.equal(m.pending, 'none');
    assert.throws(() => m.drained(false), StateError);
  });

  it('closeDrainTimeout: SO_LINGER time, else SMC_MAX_STREAM_WAIT_TIMEOUT', () => {
    assert.equal(closeDrainTimeout(), Timers.MAX_STREAM_WAIT);
    assert.equal(closeDrainTimeout(null), 2000);
    assert.equal(closeDrainTimeout(0), 0);
    assert.equal(closeDrainTimeout(5000), 5000);
  });
});

// ---- two machines wired back to back -----------------------------------------------------------------

interface Side {
  m: CloseMachine;
  changes: string[];
  closeEvents: boolean[];
  releases: number;
  errors: string[];
  eofs: number;
  tcp: Tcp[];
  /** destroy(err) was called before the close event. */
  destroyErr: boolean;
  /** The outgoing flags of the last action (they must never be cleared, 7.1). */
  tx: [boolean, boolean, boolean];
}

class Pair {
  readonly a: Side;
  readonly b: Side;
  /** CDCs in flight: toB carries a's, toA carries b's (RC: in order, none lost while the link is up). */
  readonly toB: PeerConnFlags[] = [];
  readonly toA: PeerConnFlags[] = [];

  constructor(connect = true) {
    this.a = Pair.side();
    this.b = Pair.side();
    if (connect) {
      this.a.m.connected();
      this.b.m.connected();
    }
  }

  static side(): Side {
    const s: Side = { m: undefined as unknown as CloseMachine, changes: [], closeEvents: [], releases: 0, errors: [], eofs: 0, tcp: [],
      destroyErr: false, tx: [false, false, false] };
    s.m = new CloseMachine({ onStateChange: (f, t) => s.changes.push(`${f}>${t}`) });
    return s;
  }

  /** Records what the driver would do with an action of `side`. */
  act(side: Side, a: Readonly<CloseAction>): Readonly<CloseAction> {
    if (a.sendCdc) (side === this.a ? this.toB : this.toA).push(flags(a.txDoneWriting, a.txConnClosed, a.txConnAbort));
    if (a.closeEvent) side.closeEvents.push(a.hadError);
    if (a.release) side.releases++;
    if (a.error) side.errors.push(a.error);
    if (a.readerEof) side.eofs++;
    if (a.tcp !== 'none') side.tcp.push(a.tcp);
    const now: [boolean, boolean, boolean] = [a.txDoneWriting, a.txConnClosed, a.txConnAbort];
    side.tx.forEach((was, i) => assert.ok(!was || now[i], 'outgoing flags are sticky'));
    side.tx = now;
    return a;
  }

  do(side: Side, f: (m: CloseMachine) => Readonly<CloseAction>): Readonly<CloseAction> {
    return this.act(side, f(side.m));
  }

  /** Delivers one CDC to `side`; false if none is in flight. */
  deliver(side: Side): boolean {
    const q = side === this.a ? this.toA : this.toB;
    const f = q.shift();
    if (f === undefined) return false;
    this.act(side, side.m.peerCdc(f));
    return true;
  }

  deliverAll(): void {
    while (this.deliver(this.a) || this.deliver(this.b)) { /* until both queues are empty */ }
  }

  /** The link fails: in-flight CDCs are lost, both ends abort locally, then finish their cancel. */
  linkDown(): void {
    this.toA.length = 0;
    this.toB.length = 0;
    for (const s of [this.a, this.b]) {
      const r = this.act(s, s.m.localAbort());
      this.toA.length = 0;
      this.toB.length = 0;
      if (r.to === 'PEERABORTWAIT') this.act(s, s.m.abortDone());
    }
  }
}

describe('close: full sequences between two machines', () => {
  it('active close by us, then by the peer', () => {
    const p = new Pair();
    const a1 = p.do(p.a, (m) => m.close(false, false));
    assert.equal(cdcOf(a1), 'C');
    assert.deepEqual(p.a.tcp, ['fin']);
    p.deliver(p.b);
    assert.equal(p.b.m.state, 'APPCLOSEWAIT1');
    assert.equal(p.b.eofs, 1);
    assert.equal(p.b.m.sendError(), 'ECONNRESET', 'writing to a closed peer');
    p.do(p.b, (m) => m.close(false, false));
    assert.equal(p.b.m.state, 'CLOSED');
    p.deliver(p.a);
    assert.equal(p.a.m.state, 'CLOSED');
    assert.deepEqual(p.a.changes, ['INIT>ACTIVE', 'ACTIVE>PEERCLOSEWAIT1', 'PEERCLOSEWAIT1>CLOSED']);
    assert.deepEqual(p.b.changes, ['INIT>ACTIVE', 'ACTIVE>APPCLOSEWAIT1', 'APPCLOSEWAIT1>CLOSED']);
    for (const s of [p.a, p.b]) {
      assert.deepEqual(s.closeEvents, [false]);
      assert.equal(s.releases, 1);
      assert.deepEqual(s.errors, []);
    }
  });

  it('simultaneous close', () => {
    const p = new Pair();
    p.do(p.a, (m) => m.close(false, false));
    p.do(p.b, (m) => m.close(false, false));
    assert.equal(p.a.m.state, 'PEERCLOSEWAIT1');
    assert.equal(p.b.m.state, 'PEERCLOSEWAIT1');
    p.deliverAll();
    for (const s of [p.a, p.b]) {
      assert.equal(s.m.state, 'CLOSED');
      assert.deepEqual(s.changes, ['INIT>ACTIVE', 'ACTIVE>PEERCLOSEWAIT1', 'PEERCLOSEWAIT1>CLOSED']);
      assert.deepEqual(s.closeEvents, [false]);
      assert.equal(s.releases, 1);
    }
  });

  it('half-close both ways, the side that shut down first closes first', () => {
    const p = new Pair();
    p.do(p.a, (m) => m.end(false));
    p.deliver(p.b);
    assert.equal(p.b.m.state, 'APPCLOSEWAIT1');
    assert.equal(p.b.m.sendError(), null, 'the peer may still write after our half-close');
    p.do(p.b, (m) => m.end(false));
    assert.equal(p.b.m.state, 'APPCLOSEWAIT2');
    p.deliver(p.a);
    assert.equal(p.a.m.state, 'PEERCLOSEWAIT2');
    assert.equal(p.a.eofs, 1);
    p.do(p.a, (m) => m.close(false, false));
    assert.equal(p.a.m.state, 'PEERCLOSEWAIT2');
    p.deliver(p.b);
    assert.equal(p.b.m.state, 'APPCLOSEWAIT2');
    p.do(p.b, (m) => m.close(false, false));
    assert.equal(p.b.m.state, 'CLOSED');
    p.deliver(p.a);
    assert.equal(p.a.m.state, 'CLOSED');
    assert.deepEqual(p.a.changes, ['INIT>ACTIVE', 'ACTIVE>PEERCLOSEWAIT1', 'PEERCLOSEWAIT1>PEERCLOSEWAIT2', 'PEERCLOSEWAIT2>CLOSED']);
    assert.deepEqual(p.b.changes, ['INIT>ACTIVE', 'ACTIVE>APPCLOSEWAIT1', 'APPCLOSEWAIT1>APPCLOSEWAIT2', 'APPCLOSEWAIT2>CLOSED']);
    assert.deepEqual(p.a.tcp, ['fin']);
    assert.deepEqual(p.b.tcp, ['fin']);
  });

  it('half-close both ways at once, the other side closes first (APPFINCLOSEWAIT, PEERFINCLOSEWAIT)', () => {
    const p = new Pair();
    p.do(p.a, (m) => m.end(false));
    p.do(p.b, (m) => m.end(false));
    p.deliverAll();
    assert.equal(p.a.m.state, 'PEERCLOSEWAIT2');
    assert.equal(p.b.m.state, 'PEERCLOSEWAIT2');
    p.do(p.a, (m) => m.close(false, false));
    p.deliver(p.b);
    assert.equal(p.b.m.state, 'APPFINCLOSEWAIT');
    const c = p.do(p.b, (m) => m.close(false, false));
    assert.equal(cdcOf(c), 'WC');
    assert.equal(p.b.m.state, 'CLOSED');
    p.deliver(p.a);
    assert.equal(p.a.m.state, 'CLOSED');
    for (const s of [p.a, p.b]) assert.deepEqual(s.closeEvents, [false]);
  });

  it('passive side closes after a half-close: PEERFINCLOSEWAIT until the peer closes', () => {
    const p = new Pair();
    p.do(p.a, (m) => m.end(false));
    p.deliver(p.b);
    p.do(p.b, (m) => m.close(false, false));
    assert.equal(p.b.m.state, 'PEERFINCLOSEWAIT');
    p.deliver(p.a);
    assert.equal(p.a.m.state, 'APPFINCLOSEWAIT');
    p.do(p.a, (m) => m.close(false, false));
    assert.equal(p.a.m.state, 'CLOSED');
    p.deliver(p.b);
    assert.equal(p.b.m.state, 'CLOSED');
    assert.deepEqual(p.b.changes, ['INIT>ACTIVE', 'ACTIVE>APPCLOSEWAIT1', 'APPCLOSEWAIT1>PEERFINCLOSEWAIT', 'PEERFINCLOSEWAIT>CLOSED']);
  });

  it('close with unread data sends abort: the peer gets ECONNRESET', () => {
    const p = new Pair();
    const c = p.do(p.a, (m) => m.close(false, true));
    assert.equal(cdcOf(c), 'A');
    assert.equal(c.tcp, 'fin');
    p.deliver(p.b);
    assert.equal(p.b.m.state, 'PROCESSABORT');
    assert.deepEqual(p.b.errors, ['ECONNRESET']);
    assert.equal(p.b.eofs, 1);
    assert.equal(p.b.m.txConnAbort, true);
    assert.equal(p.b.m.sendError(), 'EPIPE');
    const bc = p.do(p.b, (m) => m.close(false, false));
    assert.equal(cdcOf(bc), 'A', 'PROCESSABORT close() answers with abort');
    assert.deepEqual(p.b.closeEvents, [true]);
    p.deliver(p.a);
    assert.equal(p.a.m.state, 'CLOSED');
    assert.deepEqual(p.a.errors, [], 'a does not see an error after its own close()');
    assert.deepEqual(p.a.closeEvents, [false]);
  });

  it('peer abort mid-transfer (destroy on the other side)', () => {
    const p = new Pair();
    const d = p.do(p.a, (m) => m.destroy());
    assert.equal(d.to, 'CLOSED');
    assert.equal(cdcOf(d), 'A');
    assert.equal(d.tcp, 'rst');
    assert.deepEqual(p.a.closeEvents, [false]);
    assert.equal(p.a.releases, 1);
    p.deliver(p.b);
    assert.equal(p.b.m.state, 'PROCESSABORT');
    assert.deepEqual(p.b.errors, ['ECONNRESET']);
    assert.equal(p.b.m.sendError(), 'EPIPE');
    assert.equal(p.do(p.b, (m) => m.end(false)).sendCdc, false, 'end() after a reset does nothing');
    p.do(p.b, (m) => m.close(false, false));
    assert.equal(p.b.m.state, 'CLOSED');
    assert.deepEqual(p.b.closeEvents, [true]);
    p.deliver(p.a);
    assert.equal(p.a.m.state, 'CLOSED');
    assert.equal(p.a.releases, 1);
    assert.deepEqual(p.a.closeEvents, [false]);
  });

  it('link down: both ends ECONNABORTED, TCP reset, CLOSED; resources freed when the application closes', () => {
    const p = new Pair();
    p.do(p.a, (m) => m.close(false, false));
    p.linkDown();
    assert.equal(p.a.m.state, 'CLOSED');
    assert.equal(p.b.m.state, 'CLOSED');
    assert.deepEqual(p.a.changes, ['INIT>ACTIVE', 'ACTIVE>PEERCLOSEWAIT1', 'PEERCLOSEWAIT1>PEERABORTWAIT', 'PEERABORTWAIT>CLOSED']);
    assert.deepEqual(p.b.changes, ['INIT>ACTIVE', 'ACTIVE>PEERABORTWAIT', 'PEERABORTWAIT>CLOSED']);
    assert.deepEqual(p.a.errors, [], 'a had closed already');
    assert.deepEqual(p.b.errors, ['ECONNABORTED']);
    assert.deepEqual(p.a.tcp, ['fin', 'rst']);
    assert.deepEqual(p.b.tcp, ['rst']);
    assert.deepEqual(p.a.closeEvents, [false]);
    assert.deepEqual(p.b.closeEvents, [true]);
    assert.equal(p.a.releases, 1);
    assert.equal(p.b.releases, 0, 'b has not closed: unread data stays readable');
    assert.equal(p.b.m.sendError(), 'EPIPE');
    p.do(p.b, (m) => m.close(false, false));
    assert.equal(p.b.releases, 1);
    assert.deepEqual(p.b.closeEvents, [true], 'no second close event');
  });
});

// ---- idempotency, the close event, send errors ---------------------------------------------------------

describe('close: node:net lifecycle', () => {
  it('close() twice: the second does nothing', () => {
    const m = run(['connected']);
    m.close(false, false);
    const before = snapshot(m);
    const a = m.close(false, false);
    assert.deepEqual(snapshot(m), before);
    assert.equal(a.sendCdc || a.tcp !== 'none' || a.closeEvent, false);
  });

  it('end() twice, end() after close(), end() after destroy(): nothing more', () => {
    const m = run(['connected']);
    assert.equal(cdcOf(m.end(false)), 'W');
    for (const f of [() => m.end(false), () => m.end(true)]) {
      const a = f();
      assert.equal(a.sendCdc || a.drain || a.tcp !== 'none', false);
    }
    const n = run(['connected']);
    n.close(false, false);
    assert.equal(n.end(false).sendCdc, false);
    const d = run(['connected']);
    d.destroy();
    assert.equal(d.end(false).sendCdc, false);
  });

  it('end() before the connection exists is refused (the net layer defers it)', () => {
    assert.throws(() => new CloseMachine().end(false), StateError);
  });

  it('destroy() twice: one abort CDC, one release, one close event', () => {
    const p = new Pair();
    p.do(p.a, (m) => m.destroy(true));
    p.do(p.a, (m) => m.destroy(true));
    p.do(p.a, (m) => m.destroy());
    assert.equal(p.toB.length, 1);
    assert.equal(p.a.releases, 1);
    assert.deepEqual(p.a.closeEvents, [true], 'destroy(err): hadError');
    assert.equal(p.do(p.a, (m) => m.close(false, false)).release, false);
  });

  it('destroy() after a local abort sends nothing more; after a peer abort it answers with abort', () => {
    const m = run(['connected', 'localAbort']);
    assert.equal(m.destroy().sendCdc, false);
    const n = run(['connected', 'peerAB']);
    assert.equal(cdcOf(n.destroy()), 'A');
  });

  it('the close event fires exactly once, with hadError for errors seen by the application', () => {
    const seen: boolean[] = [];
    const m = run(['connected', 'peerAB']);
    for (const f of [() => m.close(false, false), () => m.close(false, false), () => m.destroy(), () => m.peerCdc(AB), () => m.localAbort()]) {
      const a = f();
      if (a.closeEvent) seen.push(a.hadError);
    }
    assert.deepEqual(seen, [true]);
    assert.equal(m.closeNotified, true);
  });

  it('sendError follows smc_sendmsg', () => {
    assert.equal(new CloseMachine().sendError(), 'ENOTCONN');
    assert.equal(run(['listen']).sendError(), 'EPIPE');
    assert.equal(run(['connected']).sendError(), null);
    assert.equal(run(['connected', 'peerDW']).sendError(), null);
    assert.equal(run(['connected', 'peerDW', 'peerCL']).sendError(), 'ECONNRESET');
    assert.equal(run(['connected', 'end']).sendError(), 'EPIPE');
    assert.equal(run(['connected', 'peerAB']).sendError(), 'EPIPE');
    assert.equal(run(['connected', 'localAbort']).sendError(), 'EPIPE');
    assert.equal(run(['connected', 'shut', 'peerDW']).sendError(), 'EPIPE');
    assert.equal(run(['close']).sendError(), 'EPIPE');
  });

  it('stateValue is the kernel enum smc_state value', () => {
    assert.equal(run(['connected']).stateValue, 1);
    assert.equal(new CloseMachine().stateValue, 2);
    assert.equal(run(['close']).stateValue, 7);
    assert.equal(run(['listen']).stateValue, 10);
    assert.equal(run(['connected', 'close']).stateValue, 20);
    assert.equal(run(['connected', 'peerAB']).stateValue, 27);
  });

  it('onStateChange is called once per changing event, never for no-ops', () => {
    const changes: string[] = [];
    const m = new CloseMachine({ onStateChange: (f, t) => changes.push(`${f}>${t}`) });
    m.connected();
    m.peerCdc(NONE);
    m.peerCdc(DW);
    m.peerCdc(DW);
    m.peerCdc(CL);
    m.close(false, false);
    m.close(false, false);
    assert.deepEqual(changes, ['INIT>ACTIVE', 'ACTIVE>APPCLOSEWAIT1', 'APPCLOSEWAIT1>CLOSED']);
  });

  it('returns one reused action object', () => {
    const m = run(['connected']);
    assert.equal(m.peerCdc(NONE), m.peerCdc(DW));
  });
});

// ---- property: random interleavings of both applications and the wire ------------------------------------

type Op =
  | { side: 0 | 1; op: 'close'; tx: boolean; unread: boolean }
  | { side: 0 | 1; op: 'end'; tx: boolean }
  | { side: 0 | 1; op: 'destroy'; err: boolean }
  | { side: 0 | 1; op: 'drained'; unread: boolean }
  | { side: 0 | 1; op: 'deliver' }
  | { side: 0 | 1; op: 'linkDown' };

const sideArb = fc.constantFrom<0 | 1>(0, 1);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ side: sideArb, op: fc.constant('close' as const), tx: fc.boolean(), unread: fc.boolean() }),
  fc.record({ side: sideArb, op: fc.constant('end' as const), tx: fc.boolean() }),
  fc.record({ side: sideArb, op: fc.constant('destroy' as const), err: fc.boolean() }),
  fc.record({ side: sideArb, op: fc.constant('drained' as const), unread: fc.boolean() }),
  { arbitrary: fc.record({ side: sideArb, op: fc.constant('deliver' as const) }), weight: 4 },
  { arbitrary: fc.record({ side: sideArb, op: fc.constant('linkDown' as const) }), weight: 1 },
);

describe('close: property (two machines, random interleavings)', () => {
  it('regression: end, close with unread data, peer half-closes then gets the abort: both reach CLOSED', () => {
    // The counterexample fast-check found (seed 1513612144): B ends, then closes with unread data
    // (abort); A, after its own end, receives B's done_writing and abort in APPCLOSEWAIT2.
    const p = new Pair();
    p.do(p.b, (m) => m.end(false));
    p.do(p.b, (m) => m.close(false, true));
    p.deliver(p.a);
    p.do(p.a, (m) => m.end(false));
    p.deliver(p.a);
    for (const s of [p.a, p.b]) p.do(s, (m) => m.close(false, false));
    p.deliverAll();
    assert.equal(p.a.m.state, 'CLOSED', p.a.changes.join(' '));
    assert.equal(p.b.m.state, 'CLOSED', p.b.changes.join(' '));
  });

  it('only StateError is ever thrown, refused events change nothing, and both ends always finish CLOSED with one close event and one release', () => {
    fc.assert(fc.property(fc.array(opArb, { maxLength: 30 }), (ops) => {
      const p = new Pair();
      const check = (a: Readonly<CloseAction>, startState: SmcStateName): void => {
        if (startState === 'CLOSED') assert.equal(a.sendCdc, false, 'no CDC from CLOSED');
        if (a.closeEvent) assert.equal(a.to, 'CLOSED');
      };
      const apply = (op: Op): void => {
        const s = op.side === 0 ? p.a : p.b;
        const start = s.m.state;
        const before = snapshot(s.m);
        try {
          let a: Readonly<CloseAction> | undefined;
          switch (op.op) {
            case 'close': a = p.do(s, (m) => m.close(op.tx, op.unread)); break;
            case 'end': a = p.do(s, (m) => m.end(op.tx)); break;
            case 'destroy':
              if (op.err && !s.m.closeNotified) s.destroyErr = true;
              a = p.do(s, (m) => m.destroy(op.err));
              break;
            case 'drained': a = p.do(s, (m) => m.drained(op.unread)); break;
            case 'deliver': p.deliver(s); break;
            case 'linkDown': p.linkDown(); break;
          }
          if (a) check(a, start);
        } catch (e) {
          assert.ok(e instanceof StateError, `unexpected ${String(e)}`);
          assert.deepEqual(snapshot(s.m), before);
        }
      };
      for (const op of ops) apply(op);
      // Both applications finish: drains end, sockets are closed, the wire delivers everything.
      for (const s of [p.a, p.b]) {
        if (s.m.pending !== 'none') p.do(s, (m) => m.drained(false));
        p.do(s, (m) => m.close(false, false));
      }
      p.deliverAll();
      for (const s of [p.a, p.b]) {
        assert.equal(s.m.state, 'CLOSED', `${s.changes.join(' ')}`);
        assert.equal(s.closeEvents.length, 1);
        assert.equal(s.closeEvents[0], s.errors.length > 0 || s.destroyErr, 'hadError');
        assert.equal(s.releases, 1);
        assert.ok(s.errors.length <= 1);
        assert.ok(s.eofs <= 1);
        for (const c of s.changes) {
          const [f, t] = c.split('>');
          assert.notEqual(f, t);
        }
      }
      for (const q of [p.toA, p.toB]) assert.equal(q.length, 0);
    }), { numRuns: 2000 });
  });

  it('graceful closes (no abort, no unread data, no link loss) never raise an error', () => {
    const graceful = fc.array(fc.oneof(
      fc.record({ side: sideArb, op: fc.constant('close' as const), tx: fc.boolean(), unread: fc.constant(false) }),
      fc.record({ side: sideArb, op: fc.constant('end' as const), tx: fc.boolean() }),
      fc.record({ side: sideArb, op: fc.constant('drained' as const), unread: fc.constant(false) }),
      fc.record({ side: sideArb, op: fc.constant('deliver' as const) }),
    ), { maxLength: 30 });
    fc.assert(fc.property(graceful, (ops) => {
      const p = new Pair();
      for (const op of ops) {
        const s = op.side === 0 ? p.a : p.b;
        try {
          if (op.op === 'close') p.do(s, (m) => m.close(op.tx, op.unread));
          else if (op.op === 'end') p.do(s, (m) => m.end(op.tx));
          else if (op.op === 'drained') p.do(s, (m) => m.drained(op.unread));
          else p.deliver(s);
        } catch (e) {
          assert.ok(e instanceof StateError);
        }
      }
      for (const s of [p.a, p.b]) {
        if (s.m.pending !== 'none') p.do(s, (m) => m.drained(false));
        p.do(s, (m) => m.close(false, false));
      }
      p.deliverAll();
      for (const s of [p.a, p.b]) {
        assert.equal(s.m.state, 'CLOSED');
        assert.deepEqual(s.errors, []);
        assert.deepEqual(s.closeEvents, [false]);
        assert.equal(s.m.txConnAbort, false, 'no abort flag on a graceful close');
        assert.ok(!s.tcp.includes('rst'));
      }
    }), { numRuns: 1000 });
  });
});
