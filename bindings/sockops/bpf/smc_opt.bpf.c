// SPDX-License-Identifier: MIT OR GPL-2.0
/*
 * smc_opt.bpf.c: the cgroup sock_ops program that signals SMC capability in the TCP handshake.
 *
 * SMC announces itself with the RFC 6994 experimental option kind 254, length 6, ExID E2 D4 C3 D9
 * ("SMCR" in EBCDIC) in the SYN and the SYN-ACK (spec section 2). A userspace process cannot add
 * TCP options, so this program does it for the sockets of the cgroup it is attached to:
 *
 *  - active side: a SYN carries the option only when (remote address, remote port) is in the
 *    smcr_offer map (opt-in per destination, filled by userspace);
 *  - passive side: a SYN-ACK carries it only when the SYN carried it AND the local port is in
 *    smcr_listen, checked when the SYN-ACK is built (so a port added after listen() counts), and
 *    never on a syncookie SYN-ACK (no SYN is saved then, so the server could not record it);
 *  - the result is recorded per socket in the SK_STORAGE map smcr_sk_state, which userspace reads
 *    by the socket's fd; counters go to smcr_stats.
 *
 * Findings this design rests on (shared/reference/bpf-eval.md 1.4): PARSE_HDR_OPT_CB never sees
 * the SYN or SYN-ACK, so the established callbacks read them (the SYN-ACK is skops->skb in
 * ACTIVE_ESTABLISHED; the SYN comes from the saved SYN with BPF_LOAD_HDR_OPT_TCP_SYN); the
 * PARSE_UNKNOWN flag is never set (it fires spuriously later); WRITE_HDR_OPT is cleared once the
 * connection is established so later segments cost no callback.
 *
 * No libbpf headers: the helpers are declared from linux/bpf.h's enum, and every function is
 * inlined, so the object has one code section whose only relocations are map references. The
 * loader in ../scripts/build-bpf.mjs relies on that and refuses anything else. Map definitions
 * follow libbpf's BTF convention only so that the build script can read them from the BTF.
 */
#include <linux/bpf.h>
#include <linux/types.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define INLINE static inline __attribute__((always_inline))

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define smcr_htonl(x) __builtin_bswap32(x)
#else
#define smcr_htonl(x) (x)
#endif

#define SMCR_AF_INET 2
#define SMCR_AF_INET6 10
#define SMCR_SOL_TCP 6
#define SMCR_TCP_SAVE_SYN 27
#define SMCR_TCPHDR_SYN 0x02
#define SMCR_TCPHDR_ACK 0x10

/* Kind, length, ExID: the option as it appears on the wire (the kernel pads it with NOPs). */
#define SMCR_OPT_LEN 6

static void *(*const bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*const bpf_setsockopt)(void *ctx, int level, int optname, void *optval, int optlen) =
	(void *)BPF_FUNC_setsockopt;
static long (*const bpf_sock_ops_cb_flags_set)(struct bpf_sock_ops *skops, int flags) =
	(void *)BPF_FUNC_sock_ops_cb_flags_set;
static void *(*const bpf_sk_storage_get)(void *map, void *sk, void *value, __u64 flags) =
	(void *)BPF_FUNC_sk_storage_get;
static long (*const bpf_load_hdr_opt)(struct bpf_sock_ops *skops, void *searchby_res, __u32 len, __u64 flags) =
	(void *)BPF_FUNC_load_hdr_opt;
static long (*const bpf_store_hdr_opt)(struct bpf_sock_ops *skops, const void *from, __u32 len, __u64 flags) =
	(void *)BPF_FUNC_store_hdr_opt;
static long (*const bpf_reserve_hdr_opt)(struct bpf_sock_ops *skops, __u32 len, __u64 flags) =
	(void *)BPF_FUNC_reserve_hdr_opt;

/* Indexes of smcr_stats. The build script exports these names, so userspace never hard-codes them. */
enum smcr_stat {
	SMCR_STAT_CONNECT_OFFERED,      /* connect() to an offered destination */
	SMCR_STAT_SYN_WRITTEN,          /* option stored in a SYN (retransmits count again) */
	SMCR_STAT_SYN_ENOSPC,           /* no room for it in a SYN (MD5, MPTCP, TCP-AO...) */
	SMCR_STAT_SYNACK_WRITTEN,       /* option stored in a SYN-ACK */
	SMCR_STAT_SYNACK_ENOSPC,        /* no room for it in a SYN-ACK */
	SMCR_STAT_SYNACK_COOKIE_SKIPPED,/* SYN-ACK left plain because it was a syncookie */
	SMCR_STAT_STORE_FAILED,         /* bpf_store_hdr_opt failed after a reservation */
	SMCR_STAT_ACTIVE_PEER_SMC,      /* SYN-ACK of an offered connection carried the option */
	SMCR_STAT_ACTIVE_PEER_PLAIN,    /* it did not */
	SMCR_STAT_PASSIVE_PEER_SMC,     /* SYN on a listened port carried the option */
	SMCR_STAT_PASSIVE_PEER_PLAIN,   /* it did not (or was not saved: syncookie) */
	SMCR_STAT_LISTEN,               /* listen() seen in the cgroup */
	SMCR_STAT_SAVE_SYN_FAILED,      /* TCP_SAVE_SYN refused on a listener */
	SMCR_STAT_CB_FLAGS_FAILED,      /* bpf_sock_ops_cb_flags_set refused */
	SMCR_STAT_STORAGE_FAILED,       /* no SK_STORAGE could be created (memory) */
	SMCR_STAT__COUNT,
};

enum smcr_role {
	SMCR_ROLE_ACTIVE = 1,
	SMCR_ROLE_PASSIVE = 2,
};

/* What userspace reads per socket. */
struct smcr_sk_state {
	__u8 peer_smc;  /* the peer's SYN (passive) or SYN-ACK (active) carried the option */
	__u8 sent_smc;  /* ours did (passive: derived, the SYN-ACK is built on a request sock) */
	__u8 role;      /* enum smcr_role */
	__u8 reserved;
	__s32 load_ret; /* bpf_load_hdr_opt's result: 6 found, -ENOMSG absent, -ENOENT no saved SYN */
};

/* An offered destination. IPv4 is stored v4-mapped (::ffff:a.b.c.d), as an AF_INET6 socket sees it. */
struct smcr_peer_key {
	__u32 addr[4]; /* network byte order */
	__u16 port;    /* host byte order */
	__u16 reserved;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct smcr_sk_state);
} smcr_sk_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct smcr_peer_key);
	__type(value, __u32);
} smcr_offer SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32); /* local port, host byte order */
	__type(value, __u32);
} smcr_listen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SMCR_STAT__COUNT);
	__type(key, enum smcr_stat);
	__type(value, __u64);
} smcr_stats SEC(".maps");

INLINE void count(enum smcr_stat stat)
{
	__u32 key = stat;
	__u64 *v = bpf_map_lookup_elem(&smcr_stats, &key);

	if (v)
		__sync_fetch_and_add(v, 1);
}

INLINE void set_write_flag(struct bpf_sock_ops *skops, int on)
{
	__u32 flags = skops->bpf_sock_ops_cb_flags;
	__u32 want = on ? (flags | BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG) : (flags & ~BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);

	if (want == flags)
		return;
	if (bpf_sock_ops_cb_flags_set(skops, want))
		count(SMCR_STAT_CB_FLAGS_FAILED);
}

/* Looks for the SMC option in the SYN-ACK being handled (flags 0) or the client's SYN. */
INLINE long find_smc_option(struct bpf_sock_ops *skops, __u64 flags)
{
	__u8 opt[8] = { 254, SMCR_OPT_LEN, 0xe2, 0xd4, 0xc3, 0xd9, 0, 0 };

	return bpf_load_hdr_opt(skops, opt, SMCR_OPT_LEN, flags);
}

INLINE int port_listened(struct bpf_sock_ops *skops)
{
	__u32 port = skops->local_port;

	return bpf_map_lookup_elem(&smcr_listen, &port) != 0;
}

INLINE void on_connect(struct bpf_sock_ops *skops)
{
	struct smcr_peer_key key = {};
	struct smcr_sk_state *st;
	struct bpf_sock *sk;
	/* Every field is read before branching on the family: clang would otherwise share one
	 * ctx-pointer addition between the branches, and the verifier refuses a ctx access through a
	 * modified pointer. The empty asm keeps the loads where they are. */
	__u32 family = skops->family;
	__u32 rport = skops->remote_port;
	__u32 ip4 = skops->remote_ip4;
	__u32 ip6_0 = skops->remote_ip6[0];
	__u32 ip6_1 = skops->remote_ip6[1];
	__u32 ip6_2 = skops->remote_ip6[2];
	__u32 ip6_3 = skops->remote_ip6[3];

	asm volatile("" ::: "memory");
	if (family == SMCR_AF_INET) {
		key.addr[2] = smcr_htonl(0xffff);
		key.addr[3] = ip4;
	} else if (family == SMCR_AF_INET6) {
		key.addr[0] = ip6_0;
		key.addr[1] = ip6_1;
		key.addr[2] = ip6_2;
		key.addr[3] = ip6_3;
	} else {
		return;
	}
	key.port = (__u16)smcr_htonl(rport);
	if (!bpf_map_lookup_elem(&smcr_offer, &key))
		return;
	count(SMCR_STAT_CONNECT_OFFERED);
	sk = skops->sk;
	if (!sk)
		return;
	/* Without a record userspace could not learn the outcome: then do not offer at all. */
	st = bpf_sk_storage_get(&smcr_sk_state, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		count(SMCR_STAT_STORAGE_FAILED);
		return;
	}
	st->peer_smc = 0;
	st->sent_smc = 0;
	st->role = SMCR_ROLE_ACTIVE;
	st->load_ret = 0;
	set_write_flag(skops, 1);
}

INLINE void on_listen(struct bpf_sock_ops *skops)
{
	int one = 1;

	count(SMCR_STAT_LISTEN);
	/* The saved SYN is how PASSIVE_ESTABLISHED learns what the client offered. */
	if (bpf_setsockopt(skops, SMCR_SOL_TCP, SMCR_TCP_SAVE_SYN, &one, sizeof(one)))
		count(SMCR_STAT_SAVE_SYN_FAILED);
	set_write_flag(skops, 1);
}

/* HDR_OPT_LEN_CB (write == 0) reserves, WRITE_HDR_OPT_CB (write == 1) stores; same decision in both. */
INLINE void on_hdr_opt(struct bpf_sock_ops *skops, int write)
{
	__u8 opt[8] = { 254, SMCR_OPT_LEN, 0xe2, 0xd4, 0xc3, 0xd9, 0, 0 };
	__u32 tcp_flags = skops->skb_tcp_flags;
	int synack = (tcp_flags & SMCR_TCPHDR_ACK) != 0;
	struct smcr_sk_state *st;
	struct bpf_sock *sk;

	if (!(tcp_flags & SMCR_TCPHDR_SYN))
		return;
	if (synack) {
		if (skops->args[0] & BPF_WRITE_HDR_TCP_SYNACK_COOKIE) {
			if (!write)
				count(SMCR_STAT_SYNACK_COOKIE_SKIPPED);
			return;
		}
		if (!port_listened(skops))
			return;
		if (find_smc_option(skops, BPF_LOAD_HDR_OPT_TCP_SYN) != SMCR_OPT_LEN)
			return;
	}
	/* A bare SYN reaches here only from a socket on_connect() opted in. */
	if (!write) {
		if (bpf_reserve_hdr_opt(skops, SMCR_OPT_LEN, 0))
			count(synack ? SMCR_STAT_SYNACK_ENOSPC : SMCR_STAT_SYN_ENOSPC);
		return;
	}
	if (bpf_store_hdr_opt(skops, opt, SMCR_OPT_LEN, 0)) {
		count(SMCR_STAT_STORE_FAILED);
		return;
	}
	count(synack ? SMCR_STAT_SYNACK_WRITTEN : SMCR_STAT_SYN_WRITTEN);
	if (synack)
		return;
	sk = skops->sk;
	if (!sk)
		return;
	st = bpf_sk_storage_get(&smcr_sk_state, sk, 0, 0);
	if (st)
		st->sent_smc = 1;
}

INLINE void on_active_established(struct bpf_sock_ops *skops)
{
	struct smcr_sk_state *st;
	struct bpf_sock *sk;
	long ret;

	set_write_flag(skops, 0);
	sk = skops->sk;
	if (!sk)
		return;
	st = bpf_sk_storage_get(&smcr_sk_state, sk, 0, 0);
	if (!st)
		return; /* not offered */
	ret = find_smc_option(skops, 0); /* skops->skb is the SYN-ACK here */
	st->peer_smc = ret == SMCR_OPT_LEN;
	st->load_ret = (__s32)ret;
	count(ret == SMCR_OPT_LEN ? SMCR_STAT_ACTIVE_PEER_SMC : SMCR_STAT_ACTIVE_PEER_PLAIN);
}

INLINE void on_passive_established(struct bpf_sock_ops *skops)
{
	struct smcr_sk_state *st;
	struct bpf_sock *sk;
	long ret;

	set_write_flag(skops, 0);
	if (!port_listened(skops))
		return;
	sk = skops->sk;
	if (!sk)
		return;
	st = bpf_sk_storage_get(&smcr_sk_state, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		count(SMCR_STAT_STORAGE_FAILED);
		return;
	}
	ret = find_smc_option(skops, BPF_LOAD_HDR_OPT_TCP_SYN);
	st->role = SMCR_ROLE_PASSIVE;
	st->peer_smc = ret == SMCR_OPT_LEN;
	/* The SYN-ACK echoed the option exactly when the SYN had it and no cookie was used (a cookie
	 * leaves no saved SYN, so ret is -ENOENT then). */
	st->sent_smc = st->peer_smc;
	st->load_ret = (__s32)ret;
	count(ret == SMCR_OPT_LEN ? SMCR_STAT_PASSIVE_PEER_SMC : SMCR_STAT_PASSIVE_PEER_PLAIN);
}

SEC("sockops")
int smcr_sockops(struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		on_connect(skops);
		break;
	case BPF_SOCK_OPS_TCP_LISTEN_CB:
		on_listen(skops);
		break;
	case BPF_SOCK_OPS_HDR_OPT_LEN_CB:
		on_hdr_opt(skops, 0);
		break;
	case BPF_SOCK_OPS_WRITE_HDR_OPT_CB:
		on_hdr_opt(skops, 1);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		on_active_established(skops);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		on_passive_established(skops);
		break;
	default:
		break;
	}
	return 1;
}

char _license[] SEC("license") = "Dual MIT/GPL";
