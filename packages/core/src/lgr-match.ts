/**
 * Link-group reuse during the CLC handshake (spec 5.3 rows "Reuse check (client)" / "(server)";
 * L-core `smc_conn_create`, `smcr_lgr_match`; L-af `smc_connect_rdma`). Pure: the driver owns the link
 * groups and hands read-only views of them in; the functions return the view that matches (the caller's
 * own object, so it can map it back), or undefined.
 */

/** Which side created the link group: the TCP client of its first connection is 'client' (spec 5.3 "Role"). */
export type LgrRole = 'client' | 'server';

/** What the matching needs to know about one link of a link group. */
export interface LinkView {
  /** Link state ACTIVE (spec 5.3 "Link states"); only active links are reused. */
  readonly active: boolean;
  /** Our RC QP number on this link (goes into Accept/Confirm byte 38). */
  readonly qpn: number;
  /** Our initial send PSN (Accept/Confirm byte 61). */
  readonly psn: number;
  /** Our GID and RoCE MAC for this link. */
  readonly gid: Buffer;
  readonly mac: Buffer;
  /** Our port's active MTU (IB MTU enum 1..5): `link->path_mtu`. */
  readonly pathMtu: number;
  /** The peer's QPN, GID, MAC and MTU, learnt from its CLC message when the link was created. */
  readonly peerQpn: number;
  readonly peerGid: Buffer;
  readonly peerMac: Buffer;
  readonly peerMtu: number;
}

/** What the matching needs to know about one link group. */
export interface LgrView {
  readonly role: LgrRole;
  /** The peer's system ID (all zero for a peer whose Proposal offered SMC-Rv2 only, spec 12 row 18). */
  readonly peerId: Buffer;
  /** VLAN of the TCP connection that created it (0 = none). */
  readonly vlanId: number;
  /** Marked out of sync (a SYNCERR Decline named it); never reused (spec 3.2 step 6). */
  readonly syncErr: boolean;
  /** Being torn down; never reused. */
  readonly terminating: boolean;
  /** Connections in the link group now, and the negotiated maximum (255 for v1 / v2.0). */
  readonly connsNum: number;
  readonly maxConns: number;
  /** All 255 rtoken slots are taken (`rtokens_used_mask` full). */
  readonly rtokensFull: boolean;
  /** Link slots (at most 3 in the kernel; we use one). */
  readonly links: readonly LinkView[];
}

/** The link type of a link-group view type. */
export type LinkOf<G extends LgrView> = G['links'][number];

/** A reusable link group and the link the new connection uses. */
export interface LgrMatch<G extends LgrView> {
  readonly lgr: G;
  readonly link: LinkOf<G>;
}

/** What the server knows about the client from its Proposal (spec 3.6.3 step 6). */
export interface ServerLgrQuery {
  /** Proposal byte 8: the client's system ID (zero when it offered no SMC-Rv1). */
  readonly peerId: Buffer;
  /** The client's GID for the chosen version: Proposal byte 16 (v1) or the v2 extension's RoCE GID (v2). */
  readonly peerGid: Buffer;
  /** Proposal byte 32: the client's MAC; compared only for SMC-Rv1. */
  readonly peerMac: Buffer;
  /** Version of the connection being set up. */
  readonly version: 1 | 2;
  /** VLAN of the new TCP connection. */
  readonly vlanId: number;
}

/** What the client knows about the server's link from the Accept (spec 3.6.2 steps 7-8). */
export interface ClientLgrQuery {
  /** Accept byte 8: the server's system ID. */
  readonly peerId: Buffer;
  /** Accept bytes 38, 16, 32: the server's QPN, GID and MAC for the link it picked. */
  readonly peerQpn: number;
  readonly peerGid: Buffer;
  readonly peerMac: Buffer;
  /** Version of the Accept; the MAC is compared only for version 1. */
  readonly version: 1 | 2;
  /** VLAN of the new TCP connection. */
  readonly vlanId: number;
}

/**
 * Link-group level checks common to both roles (`smc_conn_create`): same peer system ID and role, not
 * out of sync, not terminating, same VLAN. The kernel compares the VLAN unless an SMC-Dv2 device is in
 * play, which for an SMC-R-only stack means always.
 */
function lgrUsable(lgr: LgrView, role: LgrRole, peerId: Buffer, vlanId: number): boolean {
  return lgr.role === role && lgr.peerId.equals(peerId) && !lgr.syncErr && !lgr.terminating && lgr.vlanId === vlanId;
}

/**
 * Server reuse check (spec 5.3; `smcr_lgr_match` with role SERV): a usable link group with room for one
 * more connection (`conns_num < max_conns`, a free rtoken slot) and an active link whose peer GID is the
 * client's (and, for SMC-Rv1, whose peer MAC is the client's MAC). The QPN is not compared: the client
 * has not created a QP yet. Undefined means first contact: the server creates a new link group.
 */
export function findServerLgr<G extends LgrView>(lgrs: Iterable<G>, q: ServerLgrQuery): LgrMatch<G> | undefined {
  for (const lgr of lgrs) {
    if (!lgrUsable(lgr, 'server', q.peerId, q.vlanId)) continue;
    if (lgr.connsNum >= lgr.maxConns || lgr.rtokensFull) continue;
    for (const link of lgr.links) {
      if (link.active && link.peerGid.equals(q.peerGid) && (q.version === 2 || link.peerMac.equals(q.peerMac))) {
        return { lgr, link };
      }
    }
  }
  return undefined;
}

/**
 * Client reuse check (spec 5.3; `smcr_lgr_match` with role CLNT), only run when the Accept's first-contact
 * bit is clear: a usable link group with an active link whose peer QPN and peer GID (and, for version 1,
 * peer MAC) are those the Accept names. The client does not check the connection limit: the server decided.
 * Undefined means the server reuses a link group we do not have: SYNCERR with the out-of-sync bit.
 */
export function findClientLgr<G extends LgrView>(lgrs: Iterable<G>, q: ClientLgrQuery): G | undefined {
  for (const lgr of lgrs) {
    if (!lgrUsable(lgr, 'client', q.peerId, q.vlanId)) continue;
    if (lgr.links.some((l) => l.active && linkNamedBy(l, q))) return lgr;
  }
  return undefined;
}

function linkNamedBy(l: LinkView, q: ClientLgrQuery): boolean {
  return l.peerQpn === q.peerQpn && l.peerGid.equals(q.peerGid) && (q.version === 2 || l.peerMac.equals(q.peerMac));
}

/**
 * The link of `lgr` the server assigned to the connection (spec 3.6.2 step 8, `smc_connect_rdma`): any
 * slot whose peer QPN, GID (and, for version 1, MAC) are those of the Accept. Undefined means NOSRVLINK.
 * Right after {@link findClientLgr} it always finds one; the driver calls it again after any await
 * (buffer registration, CONFIRM_RKEY), when a link may have been deleted meanwhile.
 */
export function selectServerLink<G extends LgrView>(lgr: G, q: ClientLgrQuery): LinkOf<G> | undefined {
  return lgr.links.find((l) => linkNamedBy(l, q));
}
