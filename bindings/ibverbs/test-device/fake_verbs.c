/*
 * fake_verbs.c: a test stand-in for libibverbs + a provider, compiled against the installed
 * <infiniband/verbs.h>, so that the @smc-r/ibverbs binding runs its real FFI call paths on a
 * machine without an RNIC.
 *
 * It exports the libibverbs entry points the binding calls, with the prototypes verbs.h declares
 * (where verbs.h wraps an exported symbol in a macro or an inline -- ibv_query_port, ibv_reg_mr,
 * ibv_get_device_list -- the macro is undefined here and the exported symbol is defined), and
 * fills struct ibv_context.ops with post_send / post_recv / poll_cq / req_notify_cq, which the
 * binding reads from the context exactly as verbs.h's static-inline wrappers do.
 *
 * The device: FAKE_VERBS_DEVICES (default 2) devices "fakeN", one RoCE port each, whose QPs reach
 * each other by (dgid, QPN) inside this process: a loopback RC transport in memory.
 *   - GID table as Linux builds it for a RoCE netdev with one IPv4 address: 0/1 fe80::ff:fe00:N+1
 *     RoCEv1/RoCEv2, 2/3 ::ffff:127.0.0.N+1 RoCEv1/RoCEv2, entries 2/3 dropped
 *     for the devices FAKE_VERBS_NO_IPV4 names ("fake1", "fake0,fake1": a port whose netdev has no
 *     IPv4 address; read at every ibv_get_device_list). FAKE_VERBS_DEVICES=0: ibv_get_device_list
 *     returns NULL with errno ENOSYS, as the real library does without /sys/class/infiniband_verbs.
 *   - A send WR executes inside post_send when its QP is in RTS (the data is in the target when
 *     the CQE exists); a WR that must wait (RNR, no answer from the peer) waits in the send queue
 *     and a worker thread retries it after the RNR delay / local ACK timeout, so RETRY_EXC_ERR and
 *     RNR_RETRY_EXC_ERR take the time the QP attributes say.
 *   - Responder checks in IBA order (route + PSN, QP access, receive present, length, R_Key and
 *     bounds, receive SGEs), errors as IBA class C (both QPs to ERR, outstanding WRs flushed).
 *   - Send-queue slots come back when the CQE of that WR or a later one is polled (as mlx5).
 *   - Completion channel: a pipe; an armed CQ that gets a CQE writes one event (the CQ pointer)
 *     and disarms; ibv_get_cq_event reads one event. Arming does not look at CQEs already queued
 *     (as rxe), so the binding must handle that itself.
 *   - Data-path ops return negative errno values (as erdma does); control verbs return positive
 *     errno values (as libibverbs' ibv_cmd_* do). The binding must accept both.
 *   - FAKE_VERBS_IWARP=1: every device presents itself as an iWARP RNIC like upstream erdma (node
 *     type RNIC, transport IWARP, vendor 0x1ded part 0x107f, one MAC-based GID of type IB, at most
 *     1 receive SGE), and ibv_modify_qp refuses RTR and RTS with EINVAL, as an iWARP provider does
 *     without a connected TCP stream: only the CM (fake_rdmacm.c, through fake_verbs_iwarp_*()
 *     below) brings such a QP to RTS.
 *
 * Not modelled: multiple ports, SRQ, UD, atomics, memory windows, async events, CQ overrun
 * handling beyond dropping the CQE, real packetisation (PSNs advance by ceil(len / MTU) per message).
 * One global lock serialises everything.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <infiniband/verbs.h>

#undef ibv_query_port
#undef ibv_reg_mr
#undef ibv_get_device_list

#define FAKE_MAX_DEVICES 8
#define FAKE_MAX_QP 4096
#define FAKE_MAX_MR 65536
#define FAKE_MAX_WR 16384
#define FAKE_MAX_SGE 32
#define FAKE_MAX_INLINE 256
#define FAKE_MAX_CQE 65535
#define FAKE_GIDS 4
#define FAKE_QPN_BASE 0x11

struct fake_dev {
	struct ibv_device dev; /* first: the binding reads transport_type, name through it */
	int index;
	int gid_count;
	union ibv_gid gids[FAKE_GIDS];
	int gid_types[FAKE_GIDS];
	uint64_t guid;
};

struct fake_ctx {
	struct ibv_context ctx; /* first: ops at ctx + 8 */
	struct fake_dev *dev;
};

struct fake_pd {
	struct ibv_pd pd;
	int nres; /* MRs + QPs */
};

struct fake_mr {
	struct ibv_mr mr;
	struct fake_pd *pd;
	struct fake_dev *dev;
	uint32_t key;
	int access;
};

struct fake_channel {
	struct ibv_comp_channel ch;
	int wfd;
	int ncq;
};

struct fake_cqe {
	struct ibv_wc wc;
	struct fake_qp *sq_owner; /* send CQE: frees send slots up to seq when polled */
	uint64_t seq;
};

struct fake_cq {
	struct ibv_cq cq;
	struct fake_channel *ch;
	struct fake_cqe *ring;
	int size, head, count;
	int armed;
	int nqp;
	unsigned events_got, events_acked;
	unsigned long dropped;
};

struct swqe {
	uint64_t wr_id;
	int opcode, flags, signaled, num_sge, inl;
	uint32_t imm, rkey, inl_len;
	uint64_t raddr;
	struct ibv_sge sge[FAKE_MAX_SGE];
	uint8_t data[FAKE_MAX_INLINE];
};

struct rwqe {
	uint64_t wr_id;
	int num_sge;
	struct ibv_sge sge[FAKE_MAX_SGE];
};

struct fake_qp {
	struct ibv_qp qp;
	struct fake_dev *dev;
	struct fake_pd *pd;
	struct fake_cq *scq, *rcq;
	struct ibv_qp_cap cap;
	int sq_sig_all;
	enum ibv_qp_state st;
	/* attributes */
	int access, port, pkey_index, path_mtu, min_rnr_timer, timeout, retry_cnt, rnr_retry;
	int max_rd_atomic, max_dest_rd_atomic, sgid_index, hop_limit;
	uint32_t dest_qpn, rq_psn, sq_psn;
	union ibv_gid dgid;
	/* send queue: [tail, exec) executed, waiting for their CQE to be polled; [exec, head) pending */
	struct swqe *sq;
	uint64_t sq_head, sq_exec, sq_tail;
	struct rwqe *rq;
	uint64_t rq_head, rq_tail;
	/* waiting head WR */
	uint64_t deadline_ns; /* 0: none */
	int wait_kind; /* 0 none, 1 ack timeout, 2 rnr (timed), 3 rnr (until a receive is posted) */
	int failed_attempts, rnr_naks;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond;
static int g_worker_started;
static struct fake_dev g_devs[FAKE_MAX_DEVICES];
static int g_ndevs;
static struct fake_qp *g_qps[FAKE_MAX_QP];
static struct fake_mr *g_mrs[FAKE_MAX_MR];
static uint32_t g_key_variant = 0x5a;
static int g_null_frees;

/* Test hooks: counters the test reads to prove the binding behaved. */
int fake_verbs_null_frees(void) { return g_null_frees; }

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int env_int(const char *name, int dflt)
{
	const char *v = getenv(name);
	return v && *v ? atoi(v) : dflt;
}

/* ---------------------------------------------------------------------------------------------
 * Devices */

static void build_devices(void)
{
	int n = env_int("FAKE_VERBS_DEVICES", 2);
	const char *no_ipv4_list = getenv("FAKE_VERBS_NO_IPV4");
	int iwarp = env_int("FAKE_VERBS_IWARP", 0);
	if (n > FAKE_MAX_DEVICES)
		n = FAKE_MAX_DEVICES;
	for (int i = 0; i < n; i++) {
		struct fake_dev *d = &g_devs[i];
		memset(d, 0, sizeof(*d));
		d->index = i;
		d->dev.node_type = IBV_NODE_CA;
		d->dev.transport_type = IBV_TRANSPORT_IB;
		snprintf(d->dev.name, sizeof(d->dev.name), "fake%d", i);
		int no_ipv4 = no_ipv4_list && strstr(no_ipv4_list, d->dev.name) != NULL;
		snprintf(d->dev.dev_name, sizeof(d->dev.dev_name), "uverbs%d", i);
		snprintf(d->dev.dev_path, sizeof(d->dev.dev_path), "/sys/class/infiniband_verbs/uverbs%d", i);
		snprintf(d->dev.ibdev_path, sizeof(d->dev.ibdev_path), "/sys/class/infiniband/fake%d", i);
		/* MAC 02:00:00:00:00:N+1 -> EUI-64 interface id */
		uint8_t mac[6] = { 0x02, 0, 0, 0, 0, (uint8_t)(i + 1) };
		uint8_t eui[8] = { mac[0] ^ 2, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5] };
		d->guid = 0;
		for (int k = 0; k < 8; k++)
			d->guid = (d->guid << 8) | eui[k];
		union ibv_gid ll;
		memset(&ll, 0, sizeof(ll));
		ll.raw[0] = 0xfe;
		ll.raw[1] = 0x80;
		memcpy(&ll.raw[8], eui, 8);
		union ibv_gid v4;
		memset(&v4, 0, sizeof(v4));
		v4.raw[10] = 0xff;
		v4.raw[11] = 0xff;
		v4.raw[12] = 127;
		v4.raw[15] = (uint8_t)(i + 1);
		d->gids[0] = ll;
		d->gid_types[0] = IBV_GID_TYPE_ROCE_V1;
		d->gids[1] = ll;
		d->gid_types[1] = IBV_GID_TYPE_ROCE_V2;
		d->gid_count = 2;
		if (iwarp) {
			/* iWARP (siw, erdma): one GID, the port's MAC in the first 6 bytes, type IB */
			d->dev.node_type = IBV_NODE_RNIC;
			d->dev.transport_type = IBV_TRANSPORT_IWARP;
			memset(&d->gids[0], 0, sizeof(d->gids[0]));
			memcpy(d->gids[0].raw, mac, 6);
			d->gid_types[0] = IBV_GID_TYPE_IB;
			d->gid_count = 1;
		} else if (!no_ipv4) {
			d->gids[2] = v4;
			d->gid_types[2] = IBV_GID_TYPE_ROCE_V1;
			d->gids[3] = v4;
			d->gid_types[3] = IBV_GID_TYPE_ROCE_V2;
			d->gid_count = 4;
		}
	}
	g_ndevs = n;
}

struct ibv_device **ibv_get_device_list(int *num_devices)
{
	pthread_mutex_lock(&g_lock);
	build_devices();
	int n = g_ndevs;
	pthread_mutex_unlock(&g_lock);
	if (n == 0) {
		if (num_devices)
			*num_devices = 0;
		errno = ENOSYS;
		return NULL;
	}
	struct ibv_device **list = calloc((size_t)n + 1, sizeof(*list));
	if (!list) {
		errno = ENOMEM;
		return NULL;
	}
	for (int i = 0; i < n; i++)
		list[i] = &g_devs[i].dev;
	if (num_devices)
		*num_devices = n;
	return list;
}

void ibv_free_device_list(struct ibv_device **list)
{
	if (!list) {
		/* rdma-core dereferences the list and crashes; count it instead so the test can fail. */
		g_null_frees++;
		return;
	}
	free(list);
}

const char *ibv_get_device_name(struct ibv_device *device) { return device->name; }

__be64 ibv_get_device_guid(struct ibv_device *device)
{
	struct fake_dev *d = (struct fake_dev *)device;
	uint64_t g = d->guid, be = 0;
	for (int k = 0; k < 8; k++)
		((uint8_t *)&be)[k] = (uint8_t)(g >> (56 - 8 * k));
	return be;
}

static int fake_poll_cq(struct ibv_cq *cq, int num_entries, struct ibv_wc *wc);
static int fake_req_notify_cq(struct ibv_cq *cq, int solicited_only);
static int fake_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad_wr);
static int fake_post_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad_wr);
static void *worker(void *arg);

struct ibv_context *ibv_open_device(struct ibv_device *device)
{
	struct fake_ctx *c = calloc(1, sizeof(*c));
	if (!c) {
		errno = ENOMEM;
		return NULL;
	}
	c->dev = (struct fake_dev *)device;
	c->ctx.device = device;
	c->ctx.cmd_fd = -1;
	c->ctx.async_fd = -1;
	c->ctx.num_comp_vectors = 1;
	pthread_mutex_init(&c->ctx.mutex, NULL);
	c->ctx.ops.poll_cq = fake_poll_cq;
	c->ctx.ops.req_notify_cq = fake_req_notify_cq;
	c->ctx.ops.post_send = fake_post_send;
	c->ctx.ops.post_recv = fake_post_recv;
	pthread_mutex_lock(&g_lock);
	if (!g_worker_started) {
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&g_cond, &ca);
		pthread_t t;
		if (pthread_create(&t, NULL, worker, NULL) == 0) {
			pthread_detach(t);
			g_worker_started = 1;
		}
	}
	pthread_mutex_unlock(&g_lock);
	return &c->ctx;
}

int ibv_close_device(struct ibv_context *context)
{
	free(context);
	return 0;
}

int ibv_query_device(struct ibv_context *context, struct ibv_device_attr *a)
{
	struct fake_dev *d = ((struct fake_ctx *)context)->dev;
	memset(a, 0, sizeof(*a));
	snprintf(a->fw_ver, sizeof(a->fw_ver), "fake-verbs 1.0");
	a->node_guid = ibv_get_device_guid(&d->dev);
	a->sys_image_guid = a->node_guid;
	a->max_mr_size = 1ull << 40;
	a->page_size_cap = 4096;
	int iwarp = d->dev.transport_type == IBV_TRANSPORT_IWARP;
	a->vendor_id = iwarp ? 0x1ded : 0; /* Alibaba, erdma */
	a->vendor_part_id = iwarp ? 0x107f : 0;
	a->max_qp = FAKE_MAX_QP;
	a->max_qp_wr = FAKE_MAX_WR;
	a->max_sge = FAKE_MAX_SGE;
	a->max_sge_rd = FAKE_MAX_SGE;
	a->max_cq = 4096;
	a->max_cqe = FAKE_MAX_CQE;
	a->max_mr = FAKE_MAX_MR;
	a->max_pd = 1024;
	a->max_qp_rd_atom = 16;
	a->max_qp_init_rd_atom = 16;
	a->phys_port_cnt = 1;
	return 0;
}

int ibv_query_port(struct ibv_context *context, uint8_t port_num, struct _compat_ibv_port_attr *out)
{
	struct fake_dev *d = ((struct fake_ctx *)context)->dev;
	if (port_num != 1)
		return EINVAL;
	/* The exported symbol fills the compat layout: struct ibv_port_attr up to port_cap_flags2. */
	struct ibv_port_attr a;
	memset(&a, 0, sizeof(a));
	a.state = IBV_PORT_ACTIVE;
	a.max_mtu = IBV_MTU_4096;
	a.active_mtu = IBV_MTU_4096;
	a.gid_tbl_len = d->gid_count;
	a.port_cap_flags = 0x04010000; /* IP-based GIDs, CM supported */
	a.max_msg_sz = 1u << 31;
	a.pkey_tbl_len = 1;
	a.active_width = 2;
	a.active_speed = 32;
	a.phys_state = 5;
	a.link_layer = IBV_LINK_LAYER_ETHERNET;
	memcpy(out, &a, offsetof(struct ibv_port_attr, port_cap_flags2));
	return 0;
}

int ibv_query_gid(struct ibv_context *context, uint8_t port_num, int index, union ibv_gid *gid)
{
	struct fake_dev *d = ((struct fake_ctx *)context)->dev;
	if (port_num != 1 || index < 0 || index >= d->gid_count) {
		errno = EINVAL;
		return -1;
	}
	*gid = d->gids[index];
	return 0;
}

int _ibv_query_gid_ex(struct ibv_context *context, uint32_t port_num, uint32_t gid_index,
		      struct ibv_gid_entry *entry, uint32_t flags, size_t entry_size)
{
	struct fake_dev *d = ((struct fake_ctx *)context)->dev;
	if (flags != 0 || entry_size < sizeof(*entry) || port_num != 1)
		return EINVAL;
	if (gid_index >= FAKE_GIDS)
		return EINVAL;
	if ((int)gid_index >= d->gid_count)
		return ENODATA;
	memset(entry, 0, sizeof(*entry));
	entry->gid = d->gids[gid_index];
	entry->gid_index = gid_index;
	entry->port_num = port_num;
	entry->gid_type = (uint32_t)d->gid_types[gid_index];
	entry->ndev_ifindex = 1; /* lo */
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * PD, MR */

struct ibv_pd *ibv_alloc_pd(struct ibv_context *context)
{
	struct fake_pd *p = calloc(1, sizeof(*p));
	if (!p) {
		errno = ENOMEM;
		return NULL;
	}
	p->pd.context = context;
	static uint32_t handle;
	p->pd.handle = ++handle;
	return &p->pd;
}

int ibv_dealloc_pd(struct ibv_pd *pd)
{
	struct fake_pd *p = (struct fake_pd *)pd;
	pthread_mutex_lock(&g_lock);
	int busy = p->nres > 0;
	pthread_mutex_unlock(&g_lock);
	if (busy)
		return EBUSY;
	free(p);
	return 0;
}

struct ibv_mr *ibv_reg_mr(struct ibv_pd *pd, void *addr, size_t length, int access)
{
	/* IBA 10.6.3.1 / ib_check_mr_access: remote write needs local write. */
	if ((access & IBV_ACCESS_REMOTE_WRITE) && !(access & IBV_ACCESS_LOCAL_WRITE)) {
		errno = EINVAL;
		return NULL;
	}
	if (length == 0 || addr == NULL) {
		errno = EINVAL;
		return NULL;
	}
	struct fake_mr *m = calloc(1, sizeof(*m));
	if (!m) {
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_lock(&g_lock);
	int idx = -1;
	for (int i = 1; i < FAKE_MAX_MR; i++)
		if (!g_mrs[i]) {
			idx = i;
			break;
		}
	if (idx < 0) {
		pthread_mutex_unlock(&g_lock);
		free(m);
		errno = ENOMEM;
		return NULL;
	}
	g_key_variant = (g_key_variant + 0x3b) & 0xff;
	m->key = ((uint32_t)idx << 8) | g_key_variant;
	m->pd = (struct fake_pd *)pd;
	m->dev = ((struct fake_ctx *)pd->context)->dev;
	m->access = access;
	m->mr.context = pd->context;
	m->mr.pd = pd;
	m->mr.addr = addr;
	m->mr.length = length;
	m->mr.handle = (uint32_t)idx;
	m->mr.lkey = m->key;
	m->mr.rkey = m->key;
	g_mrs[idx] = m;
	m->pd->nres++;
	pthread_mutex_unlock(&g_lock);
	return &m->mr;
}

int ibv_dereg_mr(struct ibv_mr *mr)
{
	struct fake_mr *m = (struct fake_mr *)mr;
	pthread_mutex_lock(&g_lock);
	g_mrs[m->key >> 8] = NULL;
	m->pd->nres--;
	pthread_mutex_unlock(&g_lock);
	free(m);
	return 0;
}

static struct fake_mr *mr_by_key(uint32_t key)
{
	struct fake_mr *m = g_mrs[(key >> 8) % FAKE_MAX_MR];
	return m && m->key == key ? m : NULL;
}

/* [addr, addr+len) inside the MR. */
static int mr_covers(struct fake_mr *m, uint64_t addr, uint64_t len)
{
	uint64_t lo = (uint64_t)(uintptr_t)m->mr.addr;
	return addr >= lo && len <= m->mr.length && addr - lo <= m->mr.length - len;
}

/* ---------------------------------------------------------------------------------------------
 * Completion channel and CQ */

struct ibv_comp_channel *ibv_create_comp_channel(struct ibv_context *context)
{
	struct fake_channel *c = calloc(1, sizeof(*c));
	int fds[2];
	if (!c || pipe2(fds, O_CLOEXEC) != 0) {
		free(c);
		errno = ENOMEM;
		return NULL;
	}
	/* The write side never blocks the transport; the read side is blocking, as the uverbs fd. */
	fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK);
	c->ch.context = context;
	c->ch.fd = fds[0];
	c->wfd = fds[1];
	return &c->ch;
}

int ibv_destroy_comp_channel(struct ibv_comp_channel *channel)
{
	struct fake_channel *c = (struct fake_channel *)channel;
	pthread_mutex_lock(&g_lock);
	int busy = c->ncq > 0;
	pthread_mutex_unlock(&g_lock);
	if (busy)
		return EBUSY;
	close(c->ch.fd);
	close(c->wfd);
	free(c);
	return 0;
}

struct ibv_cq *ibv_create_cq(struct ibv_context *context, int cqe, void *cq_context,
			     struct ibv_comp_channel *channel, int comp_vector)
{
	if (cqe < 1 || cqe > FAKE_MAX_CQE || comp_vector != 0) {
		errno = EINVAL;
		return NULL;
	}
	struct fake_cq *q = calloc(1, sizeof(*q));
	if (!q || !(q->ring = calloc((size_t)cqe, sizeof(*q->ring)))) {
		free(q);
		errno = ENOMEM;
		return NULL;
	}
	q->size = cqe;
	q->cq.context = context;
	q->cq.channel = channel;
	q->cq.cq_context = cq_context;
	q->cq.cqe = cqe;
	q->ch = (struct fake_channel *)channel;
	pthread_mutex_lock(&g_lock);
	if (q->ch)
		q->ch->ncq++;
	pthread_mutex_unlock(&g_lock);
	return &q->cq;
}

int ibv_destroy_cq(struct ibv_cq *cq)
{
	struct fake_cq *q = (struct fake_cq *)cq;
	pthread_mutex_lock(&g_lock);
	/* rdma-core blocks until every event is acked; fail loudly instead of hanging the test. */
	if (q->nqp > 0 || q->events_got != q->events_acked) {
		pthread_mutex_unlock(&g_lock);
		return EBUSY;
	}
	if (q->ch)
		q->ch->ncq--;
	pthread_mutex_unlock(&g_lock);
	free(q->ring);
	free(q);
	return 0;
}

int ibv_get_cq_event(struct ibv_comp_channel *channel, struct ibv_cq **cq, void **cq_context)
{
	struct fake_cq *q;
	ssize_t n = read(channel->fd, &q, sizeof(q));
	if (n != (ssize_t)sizeof(q)) {
		if (n >= 0)
			errno = EIO;
		return -1;
	}
	pthread_mutex_lock(&g_lock);
	q->events_got++;
	pthread_mutex_unlock(&g_lock);
	*cq = &q->cq;
	*cq_context = q->cq.cq_context;
	return 0;
}

void ibv_ack_cq_events(struct ibv_cq *cq, unsigned int nevents)
{
	struct fake_cq *q = (struct fake_cq *)cq;
	pthread_mutex_lock(&g_lock);
	q->events_acked += nevents;
	pthread_mutex_unlock(&g_lock);
}

/* Adds a CQE (lock held); raises the channel event when armed. */
static void cq_push(struct fake_cq *q, const struct ibv_wc *wc, struct fake_qp *sq_owner, uint64_t seq)
{
	if (q->count == q->size) {
		q->dropped++;
		return;
	}
	struct fake_cqe *e = &q->ring[(q->head + q->count) % q->size];
	e->wc = *wc;
	e->sq_owner = sq_owner;
	e->seq = seq;
	q->count++;
	if (q->armed && q->ch) {
		q->armed = 0;
		struct fake_cq *self = q;
		if (write(q->ch->wfd, &self, sizeof(self)) != (ssize_t)sizeof(self))
			q->dropped++;
	}
}

static int fake_poll_cq(struct ibv_cq *cq, int num_entries, struct ibv_wc *wc)
{
	struct fake_cq *q = (struct fake_cq *)cq;
	int n = 0;
	pthread_mutex_lock(&g_lock);
	while (n < num_entries && q->count > 0) {
		struct fake_cqe *e = &q->ring[q->head];
		wc[n++] = e->wc;
		if (e->sq_owner && e->sq_owner->sq_tail <= e->seq)
			e->sq_owner->sq_tail = e->seq + 1;
		q->head = (q->head + 1) % q->size;
		q->count--;
	}
	pthread_mutex_unlock(&g_lock);
	return n;
}

static int fake_req_notify_cq(struct ibv_cq *cq, int solicited_only)
{
	(void)solicited_only;
	pthread_mutex_lock(&g_lock);
	((struct fake_cq *)cq)->armed = 1;
	pthread_mutex_unlock(&g_lock);
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * QP */

struct ibv_qp *ibv_create_qp(struct ibv_pd *pd, struct ibv_qp_init_attr *init)
{
	struct ibv_qp_cap *c = &init->cap;
	if (init->qp_type != IBV_QPT_RC || init->srq) {
		errno = EOPNOTSUPP;
		return NULL;
	}
	if (!init->send_cq || !init->recv_cq || c->max_send_wr == 0 || c->max_recv_wr == 0 ||
	    c->max_send_wr > FAKE_MAX_WR || c->max_recv_wr > FAKE_MAX_WR || c->max_send_sge > FAKE_MAX_SGE ||
	    c->max_recv_sge > FAKE_MAX_SGE || c->max_inline_data > FAKE_MAX_INLINE) {
		errno = EINVAL;
		return NULL;
	}
	/* erdma takes one receive SGE */
	if (pd->context->device->transport_type == IBV_TRANSPORT_IWARP && c->max_recv_sge > 1) {
		errno = EINVAL;
		return NULL;
	}
	struct fake_qp *q = calloc(1, sizeof(*q));
	if (!q) {
		errno = ENOMEM;
		return NULL;
	}
	q->sq = calloc(c->max_send_wr, sizeof(*q->sq));
	q->rq = calloc(c->max_recv_wr, sizeof(*q->rq));
	if (!q->sq || !q->rq) {
		free(q->sq);
		free(q->rq);
		free(q);
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_lock(&g_lock);
	int idx = -1;
	for (int i = 0; i < FAKE_MAX_QP; i++)
		if (!g_qps[i]) {
			idx = i;
			break;
		}
	if (idx < 0) {
		pthread_mutex_unlock(&g_lock);
		free(q->sq);
		free(q->rq);
		free(q);
		errno = ENOMEM;
		return NULL;
	}
	q->dev = ((struct fake_ctx *)pd->context)->dev;
	q->pd = (struct fake_pd *)pd;
	q->scq = (struct fake_cq *)init->send_cq;
	q->rcq = (struct fake_cq *)init->recv_cq;
	q->cap = *c;
	q->sq_sig_all = init->sq_sig_all;
	q->st = IBV_QPS_RESET;
	q->qp.context = pd->context;
	q->qp.qp_context = init->qp_context;
	q->qp.pd = pd;
	q->qp.send_cq = init->send_cq;
	q->qp.recv_cq = init->recv_cq;
	q->qp.handle = (uint32_t)idx;
	q->qp.qp_num = FAKE_QPN_BASE + (uint32_t)idx;
	q->qp.state = IBV_QPS_RESET;
	q->qp.qp_type = IBV_QPT_RC;
	g_qps[idx] = q;
	q->pd->nres++;
	q->scq->nqp++;
	q->rcq->nqp++;
	pthread_mutex_unlock(&g_lock);
	return &q->qp;
}

static void set_state(struct fake_qp *q, enum ibv_qp_state s)
{
	q->st = s;
	q->qp.state = s;
}

static void send_cqe(struct fake_qp *q, struct swqe *w, uint64_t seq, int status, uint32_t byte_len)
{
	struct ibv_wc wc;
	memset(&wc, 0, sizeof(wc));
	wc.wr_id = w->wr_id;
	wc.status = status;
	wc.opcode = w->opcode == IBV_WR_SEND || w->opcode == IBV_WR_SEND_WITH_IMM ? IBV_WC_SEND
		: w->opcode == IBV_WR_RDMA_READ ? IBV_WC_RDMA_READ : IBV_WC_RDMA_WRITE;
	wc.byte_len = byte_len;
	wc.qp_num = q->qp.qp_num;
	cq_push(q->scq, &wc, q, seq);
}

static void recv_cqe(struct fake_qp *q, struct rwqe *r, int status, int opcode, uint32_t byte_len,
		     int with_imm, uint32_t imm, uint32_t src_qp)
{
	struct ibv_wc wc;
	memset(&wc, 0, sizeof(wc));
	wc.wr_id = r->wr_id;
	wc.status = status;
	wc.opcode = opcode;
	wc.byte_len = byte_len;
	wc.qp_num = q->qp.qp_num;
	wc.src_qp = src_qp;
	if (with_imm) {
		wc.wc_flags = IBV_WC_WITH_IMM;
		wc.imm_data = imm;
	}
	cq_push(q->rcq, &wc, NULL, 0);
}

/* ERR: every pending send WR and every receive completes with WR_FLUSH_ERR, in post order. */
static void flush_all(struct fake_qp *q)
{
	while (q->sq_exec < q->sq_head) {
		uint64_t seq = q->sq_exec++;
		send_cqe(q, &q->sq[seq % q->cap.max_send_wr], seq, IBV_WC_WR_FLUSH_ERR, 0);
	}
	while (q->rq_tail < q->rq_head) {
		struct rwqe *r = &q->rq[q->rq_tail++ % q->cap.max_recv_wr];
		recv_cqe(q, r, IBV_WC_WR_FLUSH_ERR, IBV_WC_RECV, 0, 0, 0, 0);
	}
	q->deadline_ns = 0;
	q->wait_kind = 0;
}

static void to_error(struct fake_qp *q)
{
	set_state(q, IBV_QPS_ERR);
	flush_all(q);
}

static uint32_t mtu_bytes(int mtu) { return 128u << mtu; }

static uint64_t rnr_delay_ns(int t)
{
	/* IBA table 45 (min RNR NAK timer field), in microseconds x100 */
	static const uint32_t us100[32] = { 65536, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192,
					     256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192,
					     12288, 16384, 24576, 32768, 49152 };
	return (uint64_t)us100[t & 31] * 10000ull;
}

/* The responder QP for q's path, or NULL when nothing would answer. */
static struct fake_qp *route(struct fake_qp *q)
{
	struct fake_dev *d = q->dev;
	if (q->sgid_index >= d->gid_count)
		return NULL;
	for (int i = 0; i < FAKE_MAX_QP; i++) {
		struct fake_qp *r = g_qps[i];
		if (!r || r->qp.qp_num != q->dest_qpn)
			continue;
		struct fake_dev *rd = r->dev;
		if (r->st != IBV_QPS_RTR && r->st != IBV_QPS_RTS)
			return NULL;
		if (r->sgid_index >= rd->gid_count)
			return NULL;
		/* the packet reaches r's GID, r expects it from q, and both speak the same GID type */
		if (memcmp(&rd->gids[r->sgid_index], &q->dgid, 16) != 0 ||
		    memcmp(&d->gids[q->sgid_index], &r->dgid, 16) != 0 ||
		    d->gid_types[q->sgid_index] != rd->gid_types[r->sgid_index] || r->dest_qpn != q->qp.qp_num)
			return NULL;
		return r;
	}
	return NULL;
}

/* Walks a scatter/gather list: a cursor over (addr, len) pairs. */
struct sgcur {
	const struct ibv_sge *sge;
	int n, i;
	uint32_t off;
};

static void sg_copy(struct sgcur *dst, struct sgcur *src, uint64_t len)
{
	while (len > 0) {
		while (dst->i < dst->n && dst->off == dst->sge[dst->i].length) { dst->i++; dst->off = 0; }
		while (src->i < src->n && src->off == src->sge[src->i].length) { src->i++; src->off = 0; }
		uint64_t a = dst->sge[dst->i].length - dst->off, b = src->sge[src->i].length - src->off;
		uint64_t k = a < b ? a : b;
		if (k > len)
			k = len;
		memmove((void *)(uintptr_t)(dst->sge[dst->i].addr + dst->off),
			(const void *)(uintptr_t)(src->sge[src->i].addr + src->off), k);
		dst->off += (uint32_t)k;
		src->off += (uint32_t)k;
		len -= k;
	}
}

enum { X_DONE, X_WAIT, X_FAILED };

static int fail_both(struct fake_qp *q, struct swqe *w, uint64_t seq, int status, struct fake_qp *r)
{
	send_cqe(q, w, seq, status, 0);
	q->sq_exec = seq + 1;
	to_error(q);
	if (r)
		to_error(r);
	return X_FAILED;
}

static void wait_for_answer(struct fake_qp *q)
{
	q->failed_attempts++;
	if (q->timeout == 0) {
		q->wait_kind = 0; /* infinite: never retried, never fails */
		q->deadline_ns = UINT64_MAX;
		return;
	}
	q->wait_kind = 1;
	q->deadline_ns = now_ns() + (uint64_t)(4096.0 * (double)(1ull << q->timeout));
	pthread_cond_signal(&g_cond);
}

/* Executes the send WR at sq_exec. */
static int execute(struct fake_qp *q)
{
	uint64_t seq = q->sq_exec;
	struct swqe *w = &q->sq[seq % q->cap.max_send_wr];
	int op = w->opcode;
	int is_read = op == IBV_WR_RDMA_READ;
	int is_send = op == IBV_WR_SEND || op == IBV_WR_SEND_WITH_IMM;
	int has_imm = op == IBV_WR_SEND_WITH_IMM || op == IBV_WR_RDMA_WRITE_WITH_IMM;
	uint64_t len = 0;
	struct ibv_sge inl_sge;
	struct sgcur local;

	/* requester: local SGEs */
	if (w->inl) {
		inl_sge.addr = (uintptr_t)w->data;
		inl_sge.length = w->inl_len;
		inl_sge.lkey = 0;
		local = (struct sgcur){ &inl_sge, 1, 0, 0 };
		len = w->inl_len;
	} else {
		for (int i = 0; i < w->num_sge; i++) {
			struct ibv_sge *s = &w->sge[i];
			len += s->length;
			if (s->length == 0)
				continue;
			struct fake_mr *m = mr_by_key(s->lkey);
			if (!m || m->pd != q->pd || !mr_covers(m, s->addr, s->length) ||
			    (is_read && !(m->access & IBV_ACCESS_LOCAL_WRITE)))
				return fail_both(q, w, seq, IBV_WC_LOC_PROT_ERR, NULL);
		}
		local = (struct sgcur){ w->sge, w->num_sge, 0, 0 };
	}

	/* transport: does anything answer, with the PSN it expects? */
	struct fake_qp *r = route(q);
	if (!r || r->rq_psn != q->sq_psn) {
		wait_for_answer(q);
		return X_WAIT;
	}
	q->failed_attempts = 0;

	/* responder: QP access */
	if ((is_read && (!(r->access & IBV_ACCESS_REMOTE_READ) || r->max_dest_rd_atomic == 0)) ||
	    (!is_read && !is_send && !(r->access & IBV_ACCESS_REMOTE_WRITE)))
		return fail_both(q, w, seq, IBV_WC_REM_INV_REQ_ERR, r);

	/* responder: a receive for SEND and WRITE_WITH_IMM */
	struct rwqe *rw = NULL;
	if (is_send || has_imm) {
		if (r->rq_tail == r->rq_head) {
			if (q->rnr_retry == 0)
				return fail_both(q, w, seq, IBV_WC_RNR_RETRY_EXC_ERR, NULL);
			if (q->rnr_retry < 7 && q->rnr_naks++ >= q->rnr_retry)
				return fail_both(q, w, seq, IBV_WC_RNR_RETRY_EXC_ERR, NULL);
			if (q->rnr_retry == 7) {
				q->wait_kind = 3;
				q->deadline_ns = UINT64_MAX;
			} else {
				q->wait_kind = 2;
				q->deadline_ns = now_ns() + rnr_delay_ns(r->min_rnr_timer);
				pthread_cond_signal(&g_cond);
			}
			return X_WAIT;
		}
		rw = &r->rq[r->rq_tail % r->cap.max_recv_wr];
	}
	q->rnr_naks = 0;

	uint32_t src_qp = q->qp.qp_num;
	if (is_send) {
		uint64_t room = 0;
		for (int i = 0; i < rw->num_sge; i++)
			room += rw->sge[i].length;
		if (len > room) {
			r->rq_tail++;
			recv_cqe(r, rw, IBV_WC_LOC_LEN_ERR, IBV_WC_RECV, 0, 0, 0, src_qp);
			return fail_both(q, w, seq, IBV_WC_REM_INV_REQ_ERR, r);
		}
		uint64_t need = len;
		for (int i = 0; i < rw->num_sge && need > 0; i++) {
			struct ibv_sge *s = &rw->sge[i];
			uint64_t part = s->length < need ? s->length : need;
			need -= part;
			struct fake_mr *m = mr_by_key(s->lkey);
			if (!m || m->pd != r->pd || !(m->access & IBV_ACCESS_LOCAL_WRITE) || !mr_covers(m, s->addr, s->length)) {
				r->rq_tail++;
				recv_cqe(r, rw, IBV_WC_LOC_PROT_ERR, IBV_WC_RECV, 0, 0, 0, src_qp);
				return fail_both(q, w, seq, IBV_WC_REM_OP_ERR, r);
			}
		}
		struct sgcur dst = { rw->sge, rw->num_sge, 0, 0 };
		sg_copy(&dst, &local, len);
	} else if (len > 0) {
		struct fake_mr *m = mr_by_key(w->rkey);
		int need_access = is_read ? IBV_ACCESS_REMOTE_READ : IBV_ACCESS_REMOTE_WRITE;
		if (!m || m->dev != r->dev || m->pd != r->pd || !(m->access & need_access) || !mr_covers(m, w->raddr, len))
			return fail_both(q, w, seq, IBV_WC_REM_ACCESS_ERR, r);
		struct ibv_sge remote = { w->raddr, (uint32_t)len, w->rkey };
		struct sgcur rc = { &remote, 1, 0, 0 };
		if (is_read)
			sg_copy(&local, &rc, len);
		else
			sg_copy(&rc, &local, len);
	}

	uint32_t pkts = (uint32_t)((len + mtu_bytes(q->path_mtu) - 1) / mtu_bytes(q->path_mtu));
	if (pkts == 0)
		pkts = 1;
	q->sq_psn = (q->sq_psn + pkts) & 0xffffff;
	r->rq_psn = (r->rq_psn + pkts) & 0xffffff;
	if (rw) {
		r->rq_tail++;
		recv_cqe(r, rw, IBV_WC_SUCCESS, is_send ? IBV_WC_RECV : IBV_WC_RECV_RDMA_WITH_IMM, (uint32_t)len,
			 has_imm, w->imm, src_qp);
	}
	q->sq_exec = seq + 1;
	if (w->signaled)
		send_cqe(q, w, seq, IBV_WC_SUCCESS, is_read ? (uint32_t)len : 0);
	return X_DONE;
}

/* Runs q's send queue as far as it goes (lock held). */
static void progress(struct fake_qp *q)
{
	if (q->st == IBV_QPS_ERR) {
		flush_all(q);
		return;
	}
	while (q->st == IBV_QPS_RTS && q->wait_kind == 0 && q->deadline_ns == 0 && q->sq_exec < q->sq_head) {
		if (execute(q) != X_DONE)
			return;
	}
}

static void *worker(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&g_lock);
	for (;;) {
		uint64_t next = UINT64_MAX, now = now_ns();
		for (int i = 0; i < FAKE_MAX_QP; i++) {
			struct fake_qp *q = g_qps[i];
			if (!q || q->deadline_ns == 0 || q->deadline_ns == UINT64_MAX)
				continue;
			if (q->deadline_ns <= now) {
				int kind = q->wait_kind;
				q->deadline_ns = 0;
				q->wait_kind = 0;
				if (q->st != IBV_QPS_RTS)
					continue;
				if (kind == 1 && q->failed_attempts > q->retry_cnt) {
					uint64_t seq = q->sq_exec;
					q->failed_attempts = 0;
					fail_both(q, &q->sq[seq % q->cap.max_send_wr], seq, IBV_WC_RETRY_EXC_ERR, NULL);
					continue;
				}
				progress(q);
			}
			if (q->deadline_ns != 0 && q->deadline_ns < next)
				next = q->deadline_ns;
		}
		if (next == UINT64_MAX) {
			pthread_cond_wait(&g_cond, &g_lock);
		} else {
			struct timespec ts = { (time_t)(next / 1000000000ull), (long)(next % 1000000000ull) };
			pthread_cond_timedwait(&g_cond, &g_lock, &ts);
		}
	}
	return NULL;
}

static int fake_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr, struct ibv_send_wr **bad_wr)
{
	struct fake_qp *q = (struct fake_qp *)qp;
	int err = 0;
	pthread_mutex_lock(&g_lock);
	for (; wr; wr = wr->next) {
		if (q->st != IBV_QPS_RTS && q->st != IBV_QPS_ERR) { err = EINVAL; break; }
		if (wr->num_sge < 0 || (uint32_t)wr->num_sge > q->cap.max_send_sge) { err = EINVAL; break; }
		if (wr->opcode > IBV_WR_RDMA_READ) { err = EINVAL; break; }
		if (q->sq_head - q->sq_tail >= q->cap.max_send_wr) { err = ENOMEM; break; }
		struct swqe *w = &q->sq[q->sq_head % q->cap.max_send_wr];
		w->inl = (wr->send_flags & IBV_SEND_INLINE) != 0;
		if (w->inl) {
			uint32_t n = 0;
			for (int i = 0; i < wr->num_sge; i++)
				n += wr->sg_list[i].length;
			if (n > q->cap.max_inline_data || wr->opcode == IBV_WR_RDMA_READ) { err = EINVAL; break; }
			n = 0;
			for (int i = 0; i < wr->num_sge; i++) {
				memcpy(w->data + n, (void *)(uintptr_t)wr->sg_list[i].addr, wr->sg_list[i].length);
				n += wr->sg_list[i].length;
			}
			w->inl_len = n;
		}
		w->wr_id = wr->wr_id;
		w->opcode = wr->opcode;
		w->flags = (int)wr->send_flags;
		w->signaled = q->sq_sig_all || (wr->send_flags & IBV_SEND_SIGNALED);
		w->num_sge = wr->num_sge;
		memcpy(w->sge, wr->sg_list, sizeof(struct ibv_sge) * (size_t)wr->num_sge);
		w->imm = wr->imm_data;
		w->raddr = wr->wr.rdma.remote_addr;
		w->rkey = wr->wr.rdma.rkey;
		q->sq_head++;
	}
	if (err && bad_wr)
		*bad_wr = wr;
	progress(q);
	pthread_mutex_unlock(&g_lock);
	return -err; /* erdma style: negative errno */
}

static int fake_post_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad_wr)
{
	struct fake_qp *q = (struct fake_qp *)qp;
	int err = 0;
	pthread_mutex_lock(&g_lock);
	for (; wr; wr = wr->next) {
		if (q->st == IBV_QPS_RESET) { err = EINVAL; break; }
		if (wr->num_sge < 0 || (uint32_t)wr->num_sge > q->cap.max_recv_sge) { err = EINVAL; break; }
		if (q->rq_head - q->rq_tail >= q->cap.max_recv_wr) { err = ENOMEM; break; }
		struct rwqe *r = &q->rq[q->rq_head++ % q->cap.max_recv_wr];
		r->wr_id = wr->wr_id;
		r->num_sge = wr->num_sge;
		memcpy(r->sge, wr->sg_list, sizeof(struct ibv_sge) * (size_t)wr->num_sge);
	}
	if (err && bad_wr)
		*bad_wr = wr;
	if (q->st == IBV_QPS_ERR) {
		flush_all(q);
	} else {
		/* a receive ends an RNR wait of whoever sends to this QP */
		for (int i = 0; i < FAKE_MAX_QP; i++) {
			struct fake_qp *s = g_qps[i];
			if (s && s->wait_kind >= 2 && s->dest_qpn == q->qp.qp_num) {
				s->wait_kind = 0;
				s->deadline_ns = 0;
				progress(s);
			}
		}
	}
	pthread_mutex_unlock(&g_lock);
	return -err;
}

static int bad_gid(const union ibv_gid *g)
{
	static const union ibv_gid zero;
	return memcmp(g, &zero, sizeof(zero)) == 0;
}

/* ib_modify_qp_is_ok, reduced to RC and the attributes this device has. */
static int transition_ok(int cur, int next, int mask)
{
	int req = 0, opt = 0;
	mask &= ~IBV_QP_STATE;
	if (next == IBV_QPS_RESET || next == IBV_QPS_ERR)
		return mask == 0 || (mask & ~IBV_QP_CUR_STATE) == 0;
	switch (cur * 8 + next) {
	case IBV_QPS_RESET * 8 + IBV_QPS_INIT:
		req = IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS;
		break;
	case IBV_QPS_INIT * 8 + IBV_QPS_INIT:
		opt = IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS;
		break;
	case IBV_QPS_INIT * 8 + IBV_QPS_RTR:
		req = IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC |
		      IBV_QP_MIN_RNR_TIMER;
		opt = IBV_QP_ACCESS_FLAGS | IBV_QP_PKEY_INDEX;
		break;
	case IBV_QPS_RTR * 8 + IBV_QPS_RTS:
		req = IBV_QP_SQ_PSN | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_MAX_QP_RD_ATOMIC;
		opt = IBV_QP_CUR_STATE | IBV_QP_ACCESS_FLAGS | IBV_QP_MIN_RNR_TIMER;
		break;
	case IBV_QPS_RTS * 8 + IBV_QPS_RTS:
		opt = IBV_QP_CUR_STATE | IBV_QP_ACCESS_FLAGS | IBV_QP_MIN_RNR_TIMER;
		break;
	default:
		return 0;
	}
	return (mask & req) == req && (mask & ~(req | opt)) == 0;
}

int ibv_modify_qp(struct ibv_qp *qp, struct ibv_qp_attr *a, int mask)
{
	struct fake_qp *q = (struct fake_qp *)qp;
	int rc = 0;
	pthread_mutex_lock(&g_lock);
	int cur = (mask & IBV_QP_CUR_STATE) ? (int)a->cur_qp_state : (int)q->st;
	int next = (mask & IBV_QP_STATE) ? (int)a->qp_state : cur;
	if (cur != (int)q->st || !transition_ok(cur, next, mask)) { rc = EINVAL; goto out; }
	/* iWARP: RTR/RTS need the TCP stream the CM sets up; no attribute set from userspace makes one */
	if (q->dev->dev.transport_type == IBV_TRANSPORT_IWARP && (next == IBV_QPS_RTR || next == IBV_QPS_RTS)) { rc = EINVAL; goto out; }
	if ((mask & IBV_QP_PORT) && a->port_num != 1) { rc = EINVAL; goto out; }
	if ((mask & IBV_QP_PKEY_INDEX) && a->pkey_index != 0) { rc = EINVAL; goto out; }
	if ((mask & IBV_QP_PATH_MTU) && (a->path_mtu < IBV_MTU_256 || a->path_mtu > IBV_MTU_4096)) { rc = EINVAL; goto out; }
	if ((mask & IBV_QP_AV) && (!a->ah_attr.is_global || a->ah_attr.grh.sgid_index >= q->dev->gid_count ||
				   bad_gid(&a->ah_attr.grh.dgid) || a->ah_attr.port_num != 1)) { rc = EINVAL; goto out; }
	if ((mask & IBV_QP_RQ_PSN) && a->rq_psn > 0xffffff) { rc = EINVAL; goto out; }
	if ((mask & IBV_QP_SQ_PSN) && a->sq_psn > 0xffffff) { rc = EINVAL; goto out; }
	if ((mask & IBV_QP_RETRY_CNT) && a->retry_cnt > 7) { rc = EINVAL; goto out; }
	if ((mask & IBV_QP_RNR_RETRY) && a->rnr_retry > 7) { rc = EINVAL; goto out; }
	if ((mask & IBV_QP_TIMEOUT) && a->timeout > 31) { rc = EINVAL; goto out; }
	if ((mask & IBV_QP_MIN_RNR_TIMER) && a->min_rnr_timer > 31) { rc = EINVAL; goto out; }

	if (mask & IBV_QP_ACCESS_FLAGS) q->access = (int)a->qp_access_flags;
	if (mask & IBV_QP_PORT) q->port = a->port_num;
	if (mask & IBV_QP_PKEY_INDEX) q->pkey_index = a->pkey_index;
	if (mask & IBV_QP_PATH_MTU) q->path_mtu = a->path_mtu;
	if (mask & IBV_QP_AV) {
		q->dgid = a->ah_attr.grh.dgid;
		q->sgid_index = a->ah_attr.grh.sgid_index;
		q->hop_limit = a->ah_attr.grh.hop_limit;
	}
	if (mask & IBV_QP_DEST_QPN) q->dest_qpn = a->dest_qp_num;
	if (mask & IBV_QP_RQ_PSN) q->rq_psn = a->rq_psn;
	if (mask & IBV_QP_SQ_PSN) q->sq_psn = a->sq_psn;
	if (mask & IBV_QP_MAX_DEST_RD_ATOMIC) q->max_dest_rd_atomic = a->max_dest_rd_atomic;
	if (mask & IBV_QP_MAX_QP_RD_ATOMIC) q->max_rd_atomic = a->max_rd_atomic;
	if (mask & IBV_QP_MIN_RNR_TIMER) q->min_rnr_timer = a->min_rnr_timer;
	if (mask & IBV_QP_TIMEOUT) q->timeout = a->timeout;
	if (mask & IBV_QP_RETRY_CNT) q->retry_cnt = a->retry_cnt;
	if (mask & IBV_QP_RNR_RETRY) q->rnr_retry = a->rnr_retry;

	if (next == IBV_QPS_RESET) {
		/* queues emptied without completions */
		q->sq_head = q->sq_exec = q->sq_tail = 0;
		q->rq_head = q->rq_tail = 0;
		q->deadline_ns = 0;
		q->wait_kind = 0;
		q->failed_attempts = q->rnr_naks = 0;
		set_state(q, IBV_QPS_RESET);
	} else if (next == IBV_QPS_ERR) {
		to_error(q);
	} else {
		set_state(q, (enum ibv_qp_state)next);
		if (next == IBV_QPS_RTS)
			progress(q);
	}
out:
	pthread_mutex_unlock(&g_lock);
	return rc;
}

int ibv_query_qp(struct ibv_qp *qp, struct ibv_qp_attr *a, int mask, struct ibv_qp_init_attr *init)
{
	struct fake_qp *q = (struct fake_qp *)qp;
	(void)mask;
	pthread_mutex_lock(&g_lock);
	memset(a, 0, sizeof(*a));
	a->qp_state = q->st;
	a->cur_qp_state = q->st;
	a->path_mtu = q->path_mtu;
	a->rq_psn = q->rq_psn;
	a->sq_psn = q->sq_psn;
	a->dest_qp_num = q->dest_qpn;
	a->qp_access_flags = (unsigned)q->access;
	a->cap = q->cap;
	a->ah_attr.is_global = 1;
	a->ah_attr.grh.dgid = q->dgid;
	a->ah_attr.grh.sgid_index = (uint8_t)q->sgid_index;
	a->ah_attr.grh.hop_limit = (uint8_t)q->hop_limit;
	a->ah_attr.port_num = (uint8_t)q->port;
	a->pkey_index = (uint16_t)q->pkey_index;
	a->max_rd_atomic = (uint8_t)q->max_rd_atomic;
	a->max_dest_rd_atomic = (uint8_t)q->max_dest_rd_atomic;
	a->min_rnr_timer = (uint8_t)q->min_rnr_timer;
	a->port_num = (uint8_t)q->port;
	a->timeout = (uint8_t)q->timeout;
	a->retry_cnt = (uint8_t)q->retry_cnt;
	a->rnr_retry = (uint8_t)q->rnr_retry;
	if (init) {
		memset(init, 0, sizeof(*init));
		init->qp_context = q->qp.qp_context;
		init->send_cq = q->qp.send_cq;
		init->recv_cq = q->qp.recv_cq;
		init->cap = q->cap;
		init->qp_type = IBV_QPT_RC;
		init->sq_sig_all = q->sq_sig_all;
	}
	pthread_mutex_unlock(&g_lock);
	return 0;
}

int ibv_destroy_qp(struct ibv_qp *qp)
{
	struct fake_qp *q = (struct fake_qp *)qp;
	pthread_mutex_lock(&g_lock);
	g_qps[q->qp.handle] = NULL;
	/* CQEs already in the CQs stay; they just no longer free slots of this QP */
	struct fake_cq *cqs[2] = { q->scq, q->rcq };
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < cqs[k]->count; i++) {
			struct fake_cqe *e = &cqs[k]->ring[(cqs[k]->head + i) % cqs[k]->size];
			if (e->sq_owner == q)
				e->sq_owner = NULL;
		}
	q->scq->nqp--;
	q->rcq->nqp--;
	q->pd->nres--;
	pthread_mutex_unlock(&g_lock);
	free(q->sq);
	free(q->rq);
	free(q);
	return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The iWARP CM's side door (fake_rdmacm.c): what the kernel's iw_cm and an iWARP provider do
 * with a QP found by number (iw_get_qp). Hidden: not part of the library's ABI. */

#define FAKE_HIDDEN __attribute__((visibility("hidden")))

/* The QP numbered qpn on dev, or NULL (lock held). */
static struct fake_qp *qp_on(const struct ibv_device *dev, uint32_t qpn)
{
	for (int i = 0; i < FAKE_MAX_QP; i++) {
		struct fake_qp *q = g_qps[i];
		if (q && q->qp.qp_num == qpn && &q->dev->dev == dev)
			return q;
	}
	return NULL;
}

/* 0 when dev has a QP numbered qpn that a connection can take (INIT), else EINVAL. */
FAKE_HIDDEN int fake_verbs_iwarp_qp_ready(const struct ibv_device *dev, uint32_t qpn)
{
	pthread_mutex_lock(&g_lock);
	struct fake_qp *q = qp_on(dev, qpn);
	int rc = q && q->st == IBV_QPS_INIT ? 0 : EINVAL;
	pthread_mutex_unlock(&g_lock);
	return rc;
}

/* The stream is up (MPA done): both QPs point at each other and go to RTS. iWARP has no RNR
 * NAK (a SEND without a posted receive is a DDP error that terminates the stream), so rnr_retry
 * is 0: such a SEND fails at once. PSNs stand for the TCP sequence numbers: equal on both ends. */
FAKE_HIDDEN int fake_verbs_iwarp_connect(const struct ibv_device *da, uint32_t qa, const struct ibv_device *db, uint32_t qb)
{
	pthread_mutex_lock(&g_lock);
	struct fake_qp *a = qp_on(da, qa), *b = qp_on(db, qb);
	int rc = 0;
	if (!a || !b || a->st != IBV_QPS_INIT || b->st != IBV_QPS_INIT) {
		rc = EINVAL;
	} else {
		struct fake_qp *pair[2][2] = { { a, b }, { b, a } };
		for (int k = 0; k < 2; k++) {
			struct fake_qp *q = pair[k][0], *r = pair[k][1];
			q->dest_qpn = r->qp.qp_num;
			q->dgid = r->dev->gids[0];
			q->sgid_index = 0;
			q->hop_limit = 64;
			q->path_mtu = IBV_MTU_1024;
			q->sq_psn = 0;
			q->rq_psn = 0;
			q->timeout = 14;
			q->retry_cnt = 7;
			q->rnr_retry = 0;
			q->min_rnr_timer = 0;
			q->max_rd_atomic = 1;
			q->max_dest_rd_atomic = 1;
		}
		set_state(a, IBV_QPS_RTS);
		set_state(b, IBV_QPS_RTS);
		progress(a);
		progress(b);
	}
	pthread_mutex_unlock(&g_lock);
	return rc;
}

/* The stream closed: the QP leaves RTS for ERR and flushes (iWARP goes CLOSING -> IDLE/ERR). */
FAKE_HIDDEN void fake_verbs_iwarp_close(const struct ibv_device *dev, uint32_t qpn)
{
	pthread_mutex_lock(&g_lock);
	struct fake_qp *q = qp_on(dev, qpn);
	if (q && q->st != IBV_QPS_RESET && q->st != IBV_QPS_ERR)
		to_error(q);
	pthread_mutex_unlock(&g_lock);
}
