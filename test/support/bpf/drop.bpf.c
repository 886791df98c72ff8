// SPDX-License-Identifier: GPL-2.0
/*
 * A random packet dropper for RoCEv2 loss tests: a tc cls_bpf program in direct-action mode that
 * drops IPv4/UDP packets to or from the RoCEv2 port with a fixed probability and passes
 * everything else (ARP, ICMP, other UDP) untouched.
 *
 * Built at test time (test/support/bpf/dropper.ts):
 *   clang -O2 -target bpf -c drop.bpf.c -o drop.o -DDROP_THRESHOLD=<u32> [-DROCE_PORT=4791]
 * and attached with
 *   tc qdisc add dev X clsact
 *   tc filter add dev X egress bpf da obj drop.o sec tc
 *
 * DROP_THRESHOLD is the probability scaled to 2^32: a packet is dropped when
 * bpf_get_prandom_u32() < DROP_THRESHOLD (0 never drops, 4294967295 drops all but 1 in 2^32).
 * Drops return TC_ACT_SHOT, which clsact counts in its qdisc "dropped" statistic.
 *
 * Only linux/bpf.h and linux/pkt_cls.h are included (UAPI), and the few header fields needed are
 * read at fixed offsets, so no libbpf headers are needed. Little-endian host assumed (checked).
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#ifndef DROP_THRESHOLD
#error "DROP_THRESHOLD (drop probability * 2^32) must be given with -D"
#endif
#ifndef ROCE_PORT
#define ROCE_PORT 4791
#endif

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "this program assumes a little-endian target"
#endif
#define BE16(x) ((__u16)__builtin_bswap16((__u16)(x)))

#define SEC(name) __attribute__((section(name), used))

/* The helper, called through its number as the kernel's BPF ABI defines. */
static __u32 (*bpf_get_prandom_u32)(void) = (void *)BPF_FUNC_get_prandom_u32;

#define ETH_HLEN 14
#define ETH_P_IPV4 0x0800
#define IPV4_HLEN 20
#define IPPROTO_UDP_NUM 17

SEC("tc")
int drop_roce(struct __sk_buff *skb)
{
	unsigned char *data = (unsigned char *)(long)skb->data;
	unsigned char *end = (unsigned char *)(long)skb->data_end;

	/* Ethernet + IPv4 (no options) + UDP header must be in the linear part. */
	if (data + ETH_HLEN + IPV4_HLEN + 8 > end)
		return TC_ACT_OK;
	__u16 proto = *(__u16 *)(data + 12);
	if (proto != BE16(ETH_P_IPV4))
		return TC_ACT_OK;
	unsigned char *ip = data + ETH_HLEN;
	if (ip[0] != 0x45) /* version 4, IHL 5: RoCEv2 senders use no IP options */
		return TC_ACT_OK;
	if (ip[9] != IPPROTO_UDP_NUM)
		return TC_ACT_OK;
	/* Fragments other than the first carry no UDP header: leave them alone. */
	__u16 frag = *(__u16 *)(ip + 6);
	if (frag & BE16(0x1fff))
		return TC_ACT_OK;
	unsigned char *udp = ip + IPV4_HLEN;
	__u16 sport = *(__u16 *)(udp + 0);
	__u16 dport = *(__u16 *)(udp + 2);
	if (sport != BE16(ROCE_PORT) && dport != BE16(ROCE_PORT))
		return TC_ACT_OK;
	if (bpf_get_prandom_u32() < (__u32)(DROP_THRESHOLD))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
