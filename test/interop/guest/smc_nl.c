/*
 * smc_nl: sets the kernel SMC configuration the interop guest needs, over generic netlink with no
 * libnl (smc-tools, which has `smcr ueid` and `smc_pnet`, is not packaged for amd64).
 *
 *   smc_nl ueid-add <UEID>                      family SMC_GEN_NETLINK, SMC_NETLINK_ADD_UEID
 *   smc_nl ueid-flush                           SMC_NETLINK_FLUSH_UEID
 *   smc_nl pnet-add <PNETID> <eth> <ib> <port>  family SMC_PNETID, SMC_PNETID_ADD
 *   smc_nl pnet-flush                           SMC_PNETID_FLUSH (every entry)
 *   smc_nl rxe-add <ibdev> <netdev>             NETLINK_RDMA RDMA_NLDEV_CMD_NEWLINK, link type "rxe"
 *                                               (what `rdma link add ... type rxe` does: rdma_rxe 6.1
 *                                               has no add= module parameter any more)
 *
 * Why both: SMC-Rv2 is only proposed or accepted with a UEID in the table, and 6.1 maps eth0 to
 * rxe0 only through a pnet entry, because rxe has no get_netdev op (qemu-eval.md 5, items 2-3).
 * Prints "OK <command>" or "ERR <command> <errno name>"; exit status 0 / 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/smc.h>
#include <rdma/rdma_netlink.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct req {
	struct nlmsghdr nlh;
	struct genlmsghdr genl;
	uint8_t attrs[512];
};

static void put_attr(struct req *r, uint16_t type, const void *data, size_t len)
{
	struct nlattr *a = (struct nlattr *)((uint8_t *)r + NLMSG_ALIGN(r->nlh.nlmsg_len));
	a->nla_type = type;
	a->nla_len = (uint16_t)(NLA_HDRLEN + len);
	memcpy((uint8_t *)a + NLA_HDRLEN, data, len);
	r->nlh.nlmsg_len = NLMSG_ALIGN(r->nlh.nlmsg_len) + NLA_ALIGN(a->nla_len);
}

static void start(struct req *r, uint16_t family, uint8_t cmd, uint8_t version)
{
	memset(r, 0, sizeof *r);
	r->nlh.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
	r->nlh.nlmsg_type = family;
	r->nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	r->genl.cmd = cmd;
	r->genl.version = version;
}

/* Sends r and reads the answer: 0, a negative errno, or for GETFAMILY the family id (> 0). */
static int transact(int fd, struct req *r, int want_family)
{
	static uint8_t buf[8192];
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	int result = -EIO;

	if (sendto(fd, r, r->nlh.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0)
		return -errno;
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		struct nlmsghdr *h;
		if (n < 0)
			return -errno;
		for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(h);
				/* The ACK (error 0) follows the GETFAMILY answer. */
				return want_family && result > 0 && e->error == 0 ? result : e->error;
			}
			if (want_family && h->nlmsg_type == GENL_ID_CTRL) {
				struct genlmsghdr *g = NLMSG_DATA(h);
				struct nlattr *a = (struct nlattr *)((uint8_t *)g + GENL_HDRLEN);
				int len = (int)h->nlmsg_len - (int)NLMSG_LENGTH(GENL_HDRLEN);
				while (len >= (int)NLA_HDRLEN && a->nla_len >= NLA_HDRLEN && a->nla_len <= len) {
					if (a->nla_type == CTRL_ATTR_FAMILY_ID)
						result = *(uint16_t *)((uint8_t *)a + NLA_HDRLEN);
					len -= NLA_ALIGN(a->nla_len);
					a = (struct nlattr *)((uint8_t *)a + NLA_ALIGN(a->nla_len));
				}
			}
		}
	}
}

static int family_id(int fd, const char *name)
{
	struct req r;

	start(&r, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1);
	put_attr(&r, CTRL_ATTR_FAMILY_NAME, name, strlen(name) + 1);
	return transact(fd, &r, 1);
}

static int report(const char *what, int rc)
{
	if (rc < 0) {
		printf("ERR %s %s\n", what, strerrorname_np(-rc));
		return 1;
	}
	printf("OK %s\n", what);
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_nl local = { .nl_family = AF_NETLINK };
	struct req r;
	int fd, fam;

	if (argc < 2)
		goto usage;
	if (strcmp(argv[1], "rxe-add") == 0 && argc == 4) {
		fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_RDMA);
		if (fd < 0 || bind(fd, (struct sockaddr *)&local, sizeof local) != 0) {
			perror("smc_nl: rdma netlink socket");
			return 1;
		}
		/* RDMA netlink has no genl header: the attributes follow the nlmsghdr directly. */
		memset(&r, 0, sizeof r);
		r.nlh.nlmsg_len = NLMSG_LENGTH(0);
		r.nlh.nlmsg_type = RDMA_NL_GET_TYPE(RDMA_NL_NLDEV, RDMA_NLDEV_CMD_NEWLINK);
		r.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
		put_attr(&r, RDMA_NLDEV_ATTR_DEV_NAME, argv[2], strlen(argv[2]) + 1);
		put_attr(&r, RDMA_NLDEV_ATTR_LINK_TYPE, "rxe", 4);
		put_attr(&r, RDMA_NLDEV_ATTR_NDEV_NAME, argv[3], strlen(argv[3]) + 1);
		return report("rxe-add", transact(fd, &r, 0));
	}
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	if (fd < 0 || bind(fd, (struct sockaddr *)&local, sizeof local) != 0) {
		perror("smc_nl: netlink socket");
		return 1;
	}
	if (strncmp(argv[1], "ueid-", 5) == 0) {
		fam = family_id(fd, SMC_GENL_FAMILY_NAME);
		if (fam <= 0)
			return report("family " SMC_GENL_FAMILY_NAME, fam ? fam : -ENOENT);
		if (strcmp(argv[1], "ueid-add") == 0 && argc == 3) {
			/* The table entry is exactly SMC_MAX_EID_LEN blank-padded characters plus a NUL. */
			char eid[SMC_MAX_EID_LEN + 1];
			size_t n = strlen(argv[2]);
			if (n == 0 || n > SMC_MAX_EID_LEN)
				goto usage;
			memset(eid, ' ', SMC_MAX_EID_LEN);
			memcpy(eid, argv[2], n);
			eid[SMC_MAX_EID_LEN] = 0;
			start(&r, (uint16_t)fam, SMC_NETLINK_ADD_UEID, SMC_GENL_FAMILY_VERSION);
			put_attr(&r, SMC_NLA_EID_TABLE_ENTRY, eid, sizeof eid);
			return report("ueid-add", transact(fd, &r, 0));
		}
		if (strcmp(argv[1], "ueid-flush") == 0) {
			start(&r, (uint16_t)fam, SMC_NETLINK_FLUSH_UEID, SMC_GENL_FAMILY_VERSION);
			return report("ueid-flush", transact(fd, &r, 0));
		}
		goto usage;
	}
	if (strncmp(argv[1], "pnet-", 5) == 0) {
		fam = family_id(fd, SMCR_GENL_FAMILY_NAME);
		if (fam <= 0)
			return report("family " SMCR_GENL_FAMILY_NAME, fam ? fam : -ENOENT);
		if (strcmp(argv[1], "pnet-add") == 0 && argc == 6) {
			uint8_t port = (uint8_t)atoi(argv[5]);
			start(&r, (uint16_t)fam, SMC_PNETID_ADD, SMCR_GENL_FAMILY_VERSION);
			put_attr(&r, SMC_PNETID_NAME, argv[2], strlen(argv[2]) + 1);
			put_attr(&r, SMC_PNETID_ETHNAME, argv[3], strlen(argv[3]) + 1);
			put_attr(&r, SMC_PNETID_IBNAME, argv[4], strlen(argv[4]) + 1);
			put_attr(&r, SMC_PNETID_IBPORT, &port, 1);
			return report("pnet-add", transact(fd, &r, 0));
		}
		if (strcmp(argv[1], "pnet-flush") == 0) {
			start(&r, (uint16_t)fam, SMC_PNETID_FLUSH, SMCR_GENL_FAMILY_VERSION);
			return report("pnet-flush", transact(fd, &r, 0));
		}
	}
usage:
	fprintf(stderr, "usage: smc_nl ueid-add <UEID> | ueid-flush | pnet-add <PNETID> <eth> <ib> <port> | pnet-flush | rxe-add <ibdev> <netdev>\n");
	return 2;
}
