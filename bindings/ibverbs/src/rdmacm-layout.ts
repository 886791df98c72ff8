/**
 * Every struct offset, size and constant the librdmacm binding (rdmacm.ts) relies on (x86_64,
 * rdma-core 44 headers), with the C expression that yields it. test/ibverbs/rdmacm-layout.test.ts
 * compiles `CM_LAYOUT_C` against the installed <rdma/rdma_cma.h> and compares it with `CM_OFF`/`CM`.
 */

export const CM_OFF = {
  // struct rdma_event_channel
  channel_fd: 0,
  // struct rdma_cm_id
  id_verbs: 0,
  id_qp: 24,
  id_src_addr: 32,
  id_dst_addr: 160,
  id_ps: 344,
  id_port_num: 348,
  // struct ibv_context -> struct ibv_device (where id->verbs leads)
  ctx_device: 0,
  device_node_type: 16,
  // struct rdma_cm_event
  event_id: 0,
  event_listen_id: 8,
  event_event: 16,
  event_status: 20,
  event_private_data: 24,
  event_private_data_len: 32,
  event_responder_resources: 33,
  event_initiator_depth: 34,
  event_qp_num: 40,
  // struct rdma_conn_param
  conn_param_size: 24,
  cp_private_data: 0,
  cp_private_data_len: 8,
  cp_responder_resources: 9,
  cp_initiator_depth: 10,
  cp_flow_control: 11,
  cp_retry_count: 12,
  cp_rnr_retry_count: 13,
  cp_srq: 14,
  cp_qp_num: 16,
  // struct sockaddr_in / sockaddr_in6 / sockaddr_storage
  sockaddr_storage_size: 128,
  sin_size: 16,
  sin_family: 0,
  sin_port: 2,
  sin_addr: 4,
  sin6_size: 28,
  sin6_port: 2,
  sin6_addr: 8,
} as const;

/** Constants passed to or read from librdmacm unchanged. */
export const CM = {
  PS_TCP: 0x0106,
  AF_INET: 2,
  AF_INET6: 10,
  MAX_RESP_RES: 0xff,
  MAX_INIT_DEPTH: 0xff,
  EVENT_ADDR_RESOLVED: 0,
  EVENT_ADDR_ERROR: 1,
  EVENT_ROUTE_RESOLVED: 2,
  EVENT_ROUTE_ERROR: 3,
  EVENT_CONNECT_REQUEST: 4,
  EVENT_CONNECT_RESPONSE: 5,
  EVENT_CONNECT_ERROR: 6,
  EVENT_UNREACHABLE: 7,
  EVENT_REJECTED: 8,
  EVENT_ESTABLISHED: 9,
  EVENT_DISCONNECTED: 10,
  EVENT_DEVICE_REMOVAL: 11,
  EVENT_MULTICAST_JOIN: 12,
  EVENT_MULTICAST_ERROR: 13,
  EVENT_ADDR_CHANGE: 14,
  EVENT_TIMEWAIT_EXIT: 15,
  NODE_RNIC: 4,
} as const;

/** Event names by value (rdma_event_str without a native call). */
export const CM_EVENT_NAME: readonly string[] = [
  'ADDR_RESOLVED', 'ADDR_ERROR', 'ROUTE_RESOLVED', 'ROUTE_ERROR', 'CONNECT_REQUEST', 'CONNECT_RESPONSE',
  'CONNECT_ERROR', 'UNREACHABLE', 'REJECTED', 'ESTABLISHED', 'DISCONNECTED', 'DEVICE_REMOVAL',
  'MULTICAST_JOIN', 'MULTICAST_ERROR', 'ADDR_CHANGE', 'TIMEWAIT_EXIT',
];

const S = (t: string): string => `sizeof(${t})`;
const O = (t: string, f: string): string => `offsetof(${t}, ${f})`;
const ID = 'struct rdma_cm_id';
const EV = 'struct rdma_cm_event';
const CP = 'struct rdma_conn_param';

/** The C expression behind every entry of CM_OFF and CM (checked by the layout test). */
export const CM_LAYOUT_C: Record<keyof typeof CM_OFF | `CM_${keyof typeof CM}`, string> = {
  channel_fd: O('struct rdma_event_channel', 'fd'),
  id_verbs: O(ID, 'verbs'),
  id_qp: O(ID, 'qp'),
  id_src_addr: O(ID, 'route.addr.src_addr'),
  id_dst_addr: O(ID, 'route.addr.dst_addr'),
  id_ps: O(ID, 'ps'),
  id_port_num: O(ID, 'port_num'),
  ctx_device: O('struct ibv_context', 'device'),
  device_node_type: O('struct ibv_device', 'node_type'),
  event_id: O(EV, 'id'),
  event_listen_id: O(EV, 'listen_id'),
  event_event: O(EV, 'event'),
  event_status: O(EV, 'status'),
  event_private_data: O(EV, 'param.conn.private_data'),
  event_private_data_len: O(EV, 'param.conn.private_data_len'),
  event_responder_resources: O(EV, 'param.conn.responder_resources'),
  event_initiator_depth: O(EV, 'param.conn.initiator_depth'),
  event_qp_num: O(EV, 'param.conn.qp_num'),
  conn_param_size: S(CP),
  cp_private_data: O(CP, 'private_data'),
  cp_private_data_len: O(CP, 'private_data_len'),
  cp_responder_resources: O(CP, 'responder_resources'),
  cp_initiator_depth: O(CP, 'initiator_depth'),
  cp_flow_control: O(CP, 'flow_control'),
  cp_retry_count: O(CP, 'retry_count'),
  cp_rnr_retry_count: O(CP, 'rnr_retry_count'),
  cp_srq: O(CP, 'srq'),
  cp_qp_num: O(CP, 'qp_num'),
  sockaddr_storage_size: S('struct sockaddr_storage'),
  sin_size: S('struct sockaddr_in'),
  sin_family: O('struct sockaddr_in', 'sin_family'),
  sin_port: O('struct sockaddr_in', 'sin_port'),
  sin_addr: O('struct sockaddr_in', 'sin_addr'),
  sin6_size: S('struct sockaddr_in6'),
  sin6_port: O('struct sockaddr_in6', 'sin6_port'),
  sin6_addr: O('struct sockaddr_in6', 'sin6_addr'),
  CM_PS_TCP: 'RDMA_PS_TCP',
  CM_AF_INET: 'AF_INET',
  CM_AF_INET6: 'AF_INET6',
  CM_MAX_RESP_RES: 'RDMA_MAX_RESP_RES',
  CM_MAX_INIT_DEPTH: 'RDMA_MAX_INIT_DEPTH',
  CM_EVENT_ADDR_RESOLVED: 'RDMA_CM_EVENT_ADDR_RESOLVED',
  CM_EVENT_ADDR_ERROR: 'RDMA_CM_EVENT_ADDR_ERROR',
  CM_EVENT_ROUTE_RESOLVED: 'RDMA_CM_EVENT_ROUTE_RESOLVED',
  CM_EVENT_ROUTE_ERROR: 'RDMA_CM_EVENT_ROUTE_ERROR',
  CM_EVENT_CONNECT_REQUEST: 'RDMA_CM_EVENT_CONNECT_REQUEST',
  CM_EVENT_CONNECT_RESPONSE: 'RDMA_CM_EVENT_CONNECT_RESPONSE',
  CM_EVENT_CONNECT_ERROR: 'RDMA_CM_EVENT_CONNECT_ERROR',
  CM_EVENT_UNREACHABLE: 'RDMA_CM_EVENT_UNREACHABLE',
  CM_EVENT_REJECTED: 'RDMA_CM_EVENT_REJECTED',
  CM_EVENT_ESTABLISHED: 'RDMA_CM_EVENT_ESTABLISHED',
  CM_EVENT_DISCONNECTED: 'RDMA_CM_EVENT_DISCONNECTED',
  CM_EVENT_DEVICE_REMOVAL: 'RDMA_CM_EVENT_DEVICE_REMOVAL',
  CM_EVENT_MULTICAST_JOIN: 'RDMA_CM_EVENT_MULTICAST_JOIN',
  CM_EVENT_MULTICAST_ERROR: 'RDMA_CM_EVENT_MULTICAST_ERROR',
  CM_EVENT_ADDR_CHANGE: 'RDMA_CM_EVENT_ADDR_CHANGE',
  CM_EVENT_TIMEWAIT_EXIT: 'RDMA_CM_EVENT_TIMEWAIT_EXIT',
  CM_NODE_RNIC: 'IBV_NODE_RNIC',
};

/** CM_OFF and CM as one flat name -> value table, keyed like CM_LAYOUT_C. */
export function cmLayoutValues(): Record<keyof typeof CM_LAYOUT_C, number> {
  const out: Record<string, number> = { ...CM_OFF };
  for (const [k, v] of Object.entries(CM)) out[`CM_${k}`] = v;
  return out as Record<keyof typeof CM_LAYOUT_C, number>;
}
