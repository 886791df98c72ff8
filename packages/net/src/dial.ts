/**
 * One SMC connection from start to outcome, with the negotiator in the loop: resolve, plan (policy,
 * block list, option on the SYN), TCP connect, read the SYN-ACK's verdict, run the engine's
 * handshake, learn from how it went. The node:net-shaped API builds on these two functions.
 */
import { lookup } from 'node:dns/promises';
import { connect as tcpConnect, isIP, type Socket } from 'node:net';
import type { SmcEngine, SmcOutcome } from '@smc-r/core';
import { checkPort } from './address.js';
import type { ConnectPlan, Negotiator } from './negotiator.js';

export interface DialOptions {
  readonly engine: SmcEngine;
  readonly negotiator: Negotiator;
  /** Host name or address literal. */
  readonly host: string;
  readonly port: number;
  readonly localAddress?: string;
  /** 4 or 6 to restrict name resolution. */
  readonly family?: 4 | 6;
}

export interface Dialled {
  readonly outcome: SmcOutcome;
  readonly plan: ConnectPlan;
}

/** Connects to host:port and returns the engine's outcome (SMC-R or TCP with its reasons). */
export async function dial(o: DialOptions): Promise<Dialled> {
  checkPort(o.port);
  const address = isIP(o.host) !== 0 ? o.host : (await lookup(o.host, o.family !== undefined ? { family: o.family } : {})).address;
  const plan = o.negotiator.planConnect(address, o.port);
  let socket: Socket;
  try {
    socket = await tcpOpen(address, o.port, o.localAddress);
  } catch (e) {
    o.negotiator.abandon(plan);
    throw e;
  }
  const hs = o.negotiator.afterConnect(socket, plan);
  let outcome: SmcOutcome;
  try {
    outcome = await o.engine.connect(socket, hs);
  } catch (e) {
    o.negotiator.learn(plan, e);
    throw e;
  }
  o.negotiator.learn(plan, outcome);
  return { outcome, plan };
}

function tcpOpen(host: string, port: number, localAddress: string | undefined): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect({ host, port, ...(localAddress !== undefined ? { localAddress } : {}) });
    const onError = (e: Error): void => reject(e);
    s.once('error', onError);
    s.once('connect', () => {
      s.off('error', onError);
      resolve(s);
    });
  });
}

/** The server side for one accepted socket: the SYN's verdict, then the engine's handshake. */
export function answer(engine: SmcEngine, negotiator: Negotiator, socket: Socket): Promise<SmcOutcome> {
  return engine.accept(socket, negotiator.forAccepted(socket));
}
