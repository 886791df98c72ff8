/**
 * Protocol timers and limits the engine follows, with the kernel's names (spec 3.1, 6.4, 5.3, 8).
 * Durations are in milliseconds. The engine reads them through EngineConfig so tests can shorten them.
 */
export const Timers = {
  /** CLC_WAIT_TIME: wait for Proposal / Accept / Confirm. */
  CLC_WAIT: 6000,
  /** CLC_WAIT_TIME_SHORT: wait for a Decline after an LLC timeout. */
  CLC_WAIT_SHORT: 1000,
  /** SMC_LLC_WAIT_TIME: any LLC response. */
  LLC_WAIT: 2000,
  /** Client's wait for the first CONFIRM_LINK request: twice the server's. */
  LLC_WAIT_FIRST_CLIENT: 4000,
  /** net.smc.smcr_testlink_time default: TEST_LINK after this much receive silence. */
  TEST_LINK_INTERVAL: 30_000,
  /** Idle link group teardown: server, client (10 s later to avoid a collision). */
  LGR_FREE_DELAY_SERVER: 600_000,
  LGR_FREE_DELAY_CLIENT: 610_000,
  /** SMC_TX_CORK_DELAY: corked data is flushed after this. */
  TX_CORK_DELAY: 250,
  /** SMC_MAX_STREAM_WAIT_TIMEOUT: how long close waits for queued data to drain. */
  MAX_STREAM_WAIT: 2000,
} as const;

export const Limits = {
  /** SMC_RMBS_PER_LGR_MAX: connections per link group (v1; v2.1 negotiates 16..255). */
  CONNS_PER_LGR_MAX: 255,
  CONNS_PER_LGR_MIN: 16,
  /** Links per link group we support: one (ADD_LINK is rejected as a single-link peer does, spec 6.5). */
  LINKS_PER_LGR: 1,
  /** SMC_BUF_MIN_SIZE. */
  BUF_MIN: 16 * 1024,
  /** Default socket buffer halves (net.smc.wmem / rmem upstream): RMB and send buffer 64 KiB. */
  BUF_DEFAULT: 64 * 1024,
  /** net.smc.autocorking_size. */
  AUTOCORK_SIZE: 64 * 1024,
  /** LLC v2 buffer (SMC_WR_BUF_V2_SIZE). */
  WR_BUF_V2_SIZE: 8192,
  /** Send and receive work-request slots per link (upstream smcr_max_send_wr / smcr_max_recv_wr). */
  SEND_WR: 16,
  RECV_WR: 48,
} as const;

/** QP attributes SMC sets (spec 5.1). */
export const QpDefaults = {
  timeout: 15,
  retryCnt: 7,
  rnrRetry: 7,
  minRnrTimer: 5,
  maxRdAtomic: 1,
  maxDestRdAtomic: 1,
} as const;
