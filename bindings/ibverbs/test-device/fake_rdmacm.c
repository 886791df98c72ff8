/*
 * fake_rdmacm.c: a test stand-in for librdmacm over the fake verbs devices (fake_verbs.c, linked
 * into the same library), compiled against the installed <rdma/rdma_cma.h>, so that the binding's
 * rdma_* calls, struct offsets and event handling run on a machine without an RNIC or rdma_cm.
 *
 * It models the iWARP connection manager as the kernel's cma + iw_cm + an iWARP provider present
 * it to librdmacm users who create their QPs themselves (conn_param.qp_num, no QP on the id):
 *   - Addresses: device fakeN owns 127.0.0.N+1. rdma_bind_addr to another address is ENODEV;
 *     rdma_resolve_addr to an address no device owns raises ADDR_ERROR (-EHOSTUNREACH). The id's
 *     `verbs` is a context this library opened itself, as librdmacm does: not the caller's.
 *   - rdma_connect looks the QP up by number on the id's device (iw_get_qp): unknown, or not in
 *     INIT, is EINVAL. No listener on the port: REJECTED with status -ECONNREFUSED (the TCP RST
 *     iw_cm maps to REJECTED). Otherwise CONNECT_REQUEST on the listener's channel, with the
 *     private data; param.conn.qp_num is 0 there, since MPA carries no QP number.
 *   - rdma_accept with qp_num: both QPs go to RTS (fake_verbs_iwarp_connect), ESTABLISHED on
 *     both ids, the active one with the accept's private data (the MPA reply).
 *   - rdma_reject, or destroying an unanswered request id: REJECTED (-ECONNREFUSED) on the active id.
 *   - rdma_disconnect, or destroying a connected id: both QPs to ERR (flushed), DISCONNECTED on
 *     both ids.
 *   - Only RDMA_PS_TCP, AF_INET and iWARP devices (rdma_connect on a RoCE fake device is
 *     EOPNOTSUPP: the IB CM's CONNECT_RESPONSE / rdma_establish path is not modelled).
 *   - Event channel: a pipe holding one byte while events are queued (poll()able); the read
 *     side follows the fd's O_NONBLOCK (EAGAIN when empty) as the rdma_cm fd does.
 *   - rdma_destroy_id with delivered, unacked events fails with EBUSY (librdmacm blocks forever);
 *     events still queued for it are dropped, as the kernel does.
 *   - fake_rdmacm_live_ids() / fake_rdmacm_live_channels(): counters for leak checks.
 * Not modelled: timeouts of resolve/connect (everything answers at once), IPv6, AF_IB, UD,
 * multicast, MPA versions / peer-to-peer RTR, TIMEWAIT, device removal.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <rdma/rdma_cma.h>

#undef ibv_get_device_list

/* fake_verbs.c's side door */
int fake_verbs_iwarp_qp_ready(const struct ibv_device *dev, uint32_t qpn);
int fake_verbs_iwarp_connect(const struct ibv_device *da, uint32_t qa, const struct ibv_device *db, uint32_t qb);
void fake_verbs_iwarp_close(const struct ibv_device *dev, uint32_t qpn);

#define CM_MAX_IDS 1024
#define CM_MAX_DEVS 8
#define CM_PDATA 256

enum cm_state { S_IDLE, S_BOUND, S_LISTEN, S_ADDR, S_ROUTE, S_CONNECTING, S_REQUEST, S_CONNECTED, S_CLOSED };

struct cm_chan;

struct cm_id {
	struct rdma_cm_id id; /* first: the caller sees this */
	struct cm_chan *chan;
	enum cm_state st;
	int dev; /* device index, -1 unbound */
	uint32_t ip, peer_ip; /* host order */
	uint16_t port, peer_port;
	uint32_t qpn;
	struct cm_id *peer; /* the other end of a connection (request or connected) */
	int unacked;
	uint8_t pdata[CM_PDATA];
	uint8_t pdata_len;
};

struct cm_event {
	struct rdma_cm_event ev; /* first */
	uint8_t pdata[CM_PDATA];
	struct cm_id *owner; /* whose unacked count the ack releases */
	struct cm_event *next;
};

struct cm_chan {
	struct rdma_event_channel ch; /* first */
	int wfd;
	int signalled; /* the pipe holds its one byte */
	struct cm_event *head, *tail;
};

/* The fd is readable exactly while events are queued (lock held). */
static void sync_signal(struct cm_chan *c)
{
	char b = 1;
	if (c->head && !c->signalled) {
		if (write(c->wfd, &b, 1) != 1)
			abort();
		c->signalled = 1;
	} else if (!c->head && c->signalled) {
		if (read(c->ch.fd, &b, 1) != 1)
			abort();
		c->signalled = 0;
	}
}

static pthread_mutex_t g_cm = PTHREAD_MUTEX_INITIALIZER;
static struct cm_id *g_ids[CM_MAX_IDS];
static int g_live_ids, g_live_chans;
static struct ibv_context *g_ctx[CM_MAX_DEVS];
static struct ibv_device *g_dev[CM_MAX_DEVS];
static int g_ndev;
static uint16_t g_next_port = 40000;

int fake_rdmacm_live_ids(void) { return g_live_ids; }
int fake_rdmacm_live_channels(void) { return g_live_chans; }

/* Refreshes the device table (lock held); the contexts stay open, as librdmacm's cma_dev cache. */
static int sync_devices(void)
{
	int n = 0;
	struct ibv_device **list = ibv_get_device_list(&n);
	if (!list)
		return 0;
	if (n > CM_MAX_DEVS)
		n = CM_MAX_DEVS;
	for (int i = 0; i < n; i++) {
		if (g_dev[i] != list[i] && g_ctx[i]) {
			ibv_close_device(g_ctx[i]);
			g_ctx[i] = NULL;
		}
		g_dev[i] = list[i];
		if (!g_ctx[i])
			g_ctx[i] = ibv_open_device(list[i]);
	}
	g_ndev = n;
	ibv_free_device_list(list);
	return n;
}

static int dev_of_ip(uint32_t ip)
{
	uint32_t base = 0x7f000001; /* 127.0.0.1 */
	return ip >= base && ip < base + (uint32_t)g_ndev ? (int)(ip - base) : -1;
}

static int set_err(int e)
{
	errno = e;
	return -1;
}

/* Queues an event for `owner` on its channel (lock held). */
static void post(struct cm_id *owner, enum rdma_cm_event_type type, int status, struct cm_id *listen,
		 const uint8_t *pdata, uint8_t plen)
{
	struct cm_chan *c = owner->chan;
	struct cm_event *e = calloc(1, sizeof(*e));
	if (!e)
		return;
	e->ev.id = &owner->id;
	e->ev.listen_id = listen ? &listen->id : NULL;
	e->ev.event = type;
	e->ev.status = status;
	if (plen) {
		memcpy(e->pdata, pdata, plen);
		e->ev.param.conn.private_data = e->pdata;
		e->ev.param.conn.private_data_len = plen;
	}
	e->ev.param.conn.responder_resources = 1;
	e->ev.param.conn.initiator_depth = 1;
	e->owner = listen ? listen : owner;
	if (!c->head) {
		c->head = c->tail = e;
	} else {
		c->tail->next = e;
		c->tail = e;
	}
	sync_signal(c);
}

static void forget_id(struct cm_id *x);
static void refuse(struct cm_id *n, const void *pdata, uint8_t len);

/* Drops the queued events of `id` from its channel (lock held). A connection request nobody
 * received dies with its listener: the active side sees REJECTED, the new id is freed. */
static void drop_events(struct cm_id *id)
{
	struct cm_chan *c = id->chan;
	struct cm_event **pp = &c->head;
	while (*pp) {
		struct cm_event *e = *pp;
		if (e->owner == id || e->ev.id == &id->id) {
			*pp = e->next;
			if (e->ev.event == RDMA_CM_EVENT_CONNECT_REQUEST && e->ev.id != &id->id) {
				struct cm_id *n = (struct cm_id *)e->ev.id;
				refuse(n, NULL, 0);
				forget_id(n);
			}
			free(e);
		} else {
			pp = &e->next;
		}
	}
	/* refuse() may have queued on this very channel: find the tail again */
	c->tail = c->head;
	while (c->tail && c->tail->next)
		c->tail = c->tail->next;
	sync_signal(c);
}

struct rdma_event_channel *rdma_create_event_channel(void)
{
	pthread_mutex_lock(&g_cm);
	int n = sync_devices();
	pthread_mutex_unlock(&g_cm);
	if (n == 0) {
		errno = ENODEV; /* librdmacm's ucma_init without devices */
		return NULL;
	}
	struct cm_chan *c = calloc(1, sizeof(*c));
	int fds[2];
	if (!c || pipe2(fds, O_CLOEXEC) != 0) {
		free(c);
		errno = ENOMEM;
		return NULL;
	}
	fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) & ~O_NONBLOCK);
	c->ch.fd = fds[0];
	c->wfd = fds[1];
	pthread_mutex_lock(&g_cm);
	g_live_chans++;
	pthread_mutex_unlock(&g_cm);
	return &c->ch;
}

void rdma_destroy_event_channel(struct rdma_event_channel *channel)
{
	struct cm_chan *c = (struct cm_chan *)channel;
	pthread_mutex_lock(&g_cm);
	while (c->head) {
		struct cm_event *e = c->head;
		c->head = e->next;
		free(e);
	}
	g_live_chans--;
	pthread_mutex_unlock(&g_cm);
	close(c->ch.fd);
	close(c->wfd);
	free(c);
}

int rdma_create_id(struct rdma_event_channel *channel, struct rdma_cm_id **id, void *context,
		   enum rdma_port_space ps)
{
	if (!channel) /* synchronous ids: not modelled */
		return set_err(EINVAL);
	if (ps != RDMA_PS_TCP)
		return set_err(EPROTONOSUPPORT);
	struct cm_id *x = calloc(1, sizeof(*x));
	if (!x)
		return set_err(ENOMEM);
	x->id.channel = channel;
	x->id.context = context;
	x->id.ps = ps;
	x->id.qp_type = IBV_QPT_RC;
	x->chan = (struct cm_chan *)channel;
	x->dev = -1;
	pthread_mutex_lock(&g_cm);
	int slot = -1;
	for (int i = 0; i < CM_MAX_IDS && slot < 0; i++)
		if (!g_ids[i])
			slot = i;
	if (slot < 0) {
		pthread_mutex_unlock(&g_cm);
		free(x);
		return set_err(ENOMEM);
	}
	g_ids[slot] = x;
	g_live_ids++;
	pthread_mutex_unlock(&g_cm);
	*id = &x->id;
	return 0;
}

static int port_used(uint32_t ip, uint16_t port)
{
	for (int i = 0; i < CM_MAX_IDS; i++) {
		struct cm_id *o = g_ids[i];
		if (o && o->port == port && o->st != S_IDLE && o->st != S_CLOSED && (o->ip == ip || o->ip == 0 || ip == 0))
			return 1;
	}
	return 0;
}

static uint16_t ephemeral(uint32_t ip)
{
	for (int k = 0; k < 20000; k++) {
		uint16_t p = g_next_port++;
		if (g_next_port >= 60000)
			g_next_port = 40000;
		if (!port_used(ip, p))
			return p;
	}
	return 0;
}

static void set_sin(struct sockaddr *sa, uint32_t ip, uint16_t port)
{
	struct sockaddr_in *s = (struct sockaddr_in *)sa;
	memset(s, 0, sizeof(*s));
	s->sin_family = AF_INET;
	s->sin_port = htons(port);
	s->sin_addr.s_addr = htonl(ip);
}

/* The id takes device d: id->verbs is this library's context of that device. */
static void attach(struct cm_id *x, int d)
{
	x->dev = d;
	x->id.verbs = d >= 0 ? g_ctx[d] : NULL;
	x->id.port_num = d >= 0 ? 1 : 0;
}

int rdma_bind_addr(struct rdma_cm_id *id, struct sockaddr *addr)
{
	struct cm_id *x = (struct cm_id *)id;
	if (!addr || addr->sa_family != AF_INET)
		return set_err(EAFNOSUPPORT);
	const struct sockaddr_in *s = (const struct sockaddr_in *)addr;
	uint32_t ip = ntohl(s->sin_addr.s_addr);
	uint16_t port = ntohs(s->sin_port);
	pthread_mutex_lock(&g_cm);
	int rc = 0;
	int d = ip == 0 ? -1 : dev_of_ip(ip);
	if (x->st != S_IDLE)
		rc = EINVAL;
	else if (ip != 0 && d < 0)
		rc = ENODEV; /* cma_translate_addr: no RDMA device owns that address */
	else if (port != 0 && port_used(ip, port))
		rc = EADDRINUSE;
	else if (port == 0 && (port = ephemeral(ip)) == 0)
		rc = EADDRNOTAVAIL;
	if (rc == 0) {
		x->ip = ip;
		x->port = port;
		attach(x, d);
		set_sin(&x->id.route.addr.src_addr, ip, port);
		x->st = S_BOUND;
	}
	pthread_mutex_unlock(&g_cm);
	return rc ? set_err(rc) : 0;
}

int rdma_listen(struct rdma_cm_id *id, int backlog)
{
	struct cm_id *x = (struct cm_id *)id;
	(void)backlog;
	pthread_mutex_lock(&g_cm);
	int rc = x->st == S_BOUND ? 0 : EINVAL;
	if (rc == 0)
		x->st = S_LISTEN;
	pthread_mutex_unlock(&g_cm);
	return rc ? set_err(rc) : 0;
}

int rdma_resolve_addr(struct rdma_cm_id *id, struct sockaddr *src_addr, struct sockaddr *dst_addr, int timeout_ms)
{
	struct cm_id *x = (struct cm_id *)id;
	(void)timeout_ms;
	if (!dst_addr || dst_addr->sa_family != AF_INET || (src_addr && src_addr->sa_family != AF_INET))
		return set_err(EAFNOSUPPORT);
	uint32_t dip = ntohl(((const struct sockaddr_in *)dst_addr)->sin_addr.s_addr);
	uint16_t dport = ntohs(((const struct sockaddr_in *)dst_addr)->sin_port);
	uint32_t sip = src_addr ? ntohl(((const struct sockaddr_in *)src_addr)->sin_addr.s_addr) : 0;
	pthread_mutex_lock(&g_cm);
	int rc = 0;
	if (x->st != S_IDLE && x->st != S_BOUND) {
		rc = EINVAL;
	} else if (sip != 0 && dev_of_ip(sip) < 0) {
		rc = ENODEV;
	} else {
		int dd = dev_of_ip(dip);
		if (dd < 0) {
			post(x, RDMA_CM_EVENT_ADDR_ERROR, -EHOSTUNREACH, NULL, NULL, 0);
		} else {
			/* the source device: the one asked for, else the route's (loopback: dst's own) */
			int sd = sip != 0 ? dev_of_ip(sip) : dd;
			if (x->st == S_IDLE) {
				x->ip = sip != 0 ? sip : dip;
				x->port = ephemeral(x->ip);
			}
			attach(x, sd);
			set_sin(&x->id.route.addr.src_addr, x->ip, x->port);
			x->peer_ip = dip;
			x->peer_port = dport;
			set_sin(&x->id.route.addr.dst_addr, dip, dport);
			x->st = S_ADDR;
			post(x, RDMA_CM_EVENT_ADDR_RESOLVED, 0, NULL, NULL, 0);
		}
	}
	pthread_mutex_unlock(&g_cm);
	return rc ? set_err(rc) : 0;
}

int rdma_resolve_route(struct rdma_cm_id *id, int timeout_ms)
{
	struct cm_id *x = (struct cm_id *)id;
	(void)timeout_ms;
	pthread_mutex_lock(&g_cm);
	int rc = x->st == S_ADDR ? 0 : EINVAL;
	if (rc == 0) {
		x->st = S_ROUTE;
		post(x, RDMA_CM_EVENT_ROUTE_RESOLVED, 0, NULL, NULL, 0);
	}
	pthread_mutex_unlock(&g_cm);
	return rc ? set_err(rc) : 0;
}

static struct cm_id *find_listener(uint32_t ip, uint16_t port)
{
	for (int i = 0; i < CM_MAX_IDS; i++) {
		struct cm_id *o = g_ids[i];
		if (o && o->st == S_LISTEN && o->port == port && (o->ip == ip || o->ip == 0))
			return o;
	}
	return NULL;
}

int rdma_connect(struct rdma_cm_id *id, struct rdma_conn_param *p)
{
	struct cm_id *x = (struct cm_id *)id;
	pthread_mutex_lock(&g_cm);
	int rc = 0;
	if (x->st != S_ROUTE || !p) { /* ucma_valid_param: PS_TCP without a QP needs conn_param */
		rc = EINVAL;
		goto out;
	}
	if (g_dev[x->dev]->transport_type != IBV_TRANSPORT_IWARP) {
		rc = EOPNOTSUPP;
		goto out;
	}
	if (fake_verbs_iwarp_qp_ready(g_dev[x->dev], p->qp_num) != 0) { /* iw_cm_connect: iw_get_qp */
		rc = EINVAL;
		goto out;
	}
	x->qpn = p->qp_num;
	x->st = S_CONNECTING;
	struct cm_id *l = find_listener(x->peer_ip, x->peer_port);
	if (!l) {
		x->st = S_CLOSED;
		post(x, RDMA_CM_EVENT_REJECTED, -ECONNREFUSED, NULL, NULL, 0);
		goto out;
	}
	/* the passive side's new id, on the listener's channel, bound to the device owning the address */
	struct cm_id *n = calloc(1, sizeof(*n));
	int slot = -1;
	for (int i = 0; i < CM_MAX_IDS && slot < 0; i++)
		if (!g_ids[i])
			slot = i;
	if (!n || slot < 0) {
		free(n);
		x->st = S_CLOSED;
		post(x, RDMA_CM_EVENT_REJECTED, -ECONNREFUSED, NULL, NULL, 0);
		goto out;
	}
	n->id.channel = l->id.channel;
	n->id.context = l->id.context;
	n->id.ps = RDMA_PS_TCP;
	n->id.qp_type = IBV_QPT_RC;
	n->chan = l->chan;
	n->ip = x->peer_ip;
	n->port = x->peer_port;
	n->peer_ip = x->ip;
	n->peer_port = x->port;
	attach(n, dev_of_ip(x->peer_ip));
	set_sin(&n->id.route.addr.src_addr, n->ip, n->port);
	set_sin(&n->id.route.addr.dst_addr, n->peer_ip, n->peer_port);
	n->st = S_REQUEST;
	n->peer = x;
	x->peer = n;
	g_ids[slot] = n;
	g_live_ids++;
	/* iw_conn_req_handler: private data from the MPA request, no QP number on the wire */
	post(n, RDMA_CM_EVENT_CONNECT_REQUEST, 0, l, p->private_data, p->private_data ? p->private_data_len : 0);
out:
	pthread_mutex_unlock(&g_cm);
	return rc ? set_err(rc) : 0;
}

int rdma_accept(struct rdma_cm_id *id, struct rdma_conn_param *p)
{
	struct cm_id *n = (struct cm_id *)id;
	pthread_mutex_lock(&g_cm);
	int rc = 0;
	if (n->st != S_REQUEST || !p) {
		rc = EINVAL;
		goto out;
	}
	struct cm_id *x = n->peer;
	if (!x || x->st != S_CONNECTING) {
		rc = ECONNRESET; /* the active side went away */
		goto out;
	}
	if (fake_verbs_iwarp_qp_ready(g_dev[n->dev], p->qp_num) != 0) {
		rc = EINVAL;
		goto out;
	}
	rc = fake_verbs_iwarp_connect(g_dev[x->dev], x->qpn, g_dev[n->dev], p->qp_num);
	if (rc)
		goto out;
	n->qpn = p->qp_num;
	n->st = x->st = S_CONNECTED;
	post(x, RDMA_CM_EVENT_ESTABLISHED, 0, NULL, p->private_data, p->private_data ? p->private_data_len : 0);
	post(n, RDMA_CM_EVENT_ESTABLISHED, 0, NULL, NULL, 0);
out:
	pthread_mutex_unlock(&g_cm);
	return rc ? set_err(rc) : 0;
}

/* The passive side refuses (lock held): the active side sees REJECTED. */
static void refuse(struct cm_id *n, const void *pdata, uint8_t len)
{
	struct cm_id *x = n->peer;
	n->st = S_CLOSED;
	n->peer = NULL;
	if (x && x->st == S_CONNECTING) {
		x->st = S_CLOSED;
		x->peer = NULL;
		post(x, RDMA_CM_EVENT_REJECTED, -ECONNREFUSED, NULL, pdata, pdata ? len : 0);
	}
}

int rdma_reject(struct rdma_cm_id *id, const void *private_data, uint8_t private_data_len)
{
	struct cm_id *n = (struct cm_id *)id;
	pthread_mutex_lock(&g_cm);
	int rc = n->st == S_REQUEST ? 0 : EINVAL;
	if (rc == 0)
		refuse(n, private_data, private_data_len);
	pthread_mutex_unlock(&g_cm);
	return rc ? set_err(rc) : 0;
}

/* Closes a connected pair (lock held): QPs to ERR, DISCONNECTED on both live ids. */
static void close_pair(struct cm_id *a)
{
	struct cm_id *b = a->peer;
	fake_verbs_iwarp_close(g_dev[a->dev], a->qpn);
	a->st = S_CLOSED;
	a->peer = NULL;
	post(a, RDMA_CM_EVENT_DISCONNECTED, 0, NULL, NULL, 0);
	if (b) {
		fake_verbs_iwarp_close(g_dev[b->dev], b->qpn);
		b->st = S_CLOSED;
		b->peer = NULL;
		post(b, RDMA_CM_EVENT_DISCONNECTED, 0, NULL, NULL, 0);
	}
}

int rdma_disconnect(struct rdma_cm_id *id)
{
	struct cm_id *x = (struct cm_id *)id;
	pthread_mutex_lock(&g_cm);
	int rc = x->st == S_CONNECTED ? 0 : EINVAL;
	if (rc == 0)
		close_pair(x);
	pthread_mutex_unlock(&g_cm);
	return rc ? set_err(rc) : 0;
}

int rdma_destroy_id(struct rdma_cm_id *id)
{
	struct cm_id *x = (struct cm_id *)id;
	pthread_mutex_lock(&g_cm);
	if (x->unacked > 0) {
		pthread_mutex_unlock(&g_cm);
		return set_err(EBUSY); /* librdmacm would wait here forever */
	}
	if (x->st == S_CONNECTED) {
		close_pair(x);
	} else if (x->st == S_REQUEST) {
		refuse(x, NULL, 0);
	} else if (x->st == S_CONNECTING && x->peer) {
		/* the request dies with the TCP connection: accepting it later is ECONNRESET */
		x->peer->peer = NULL;
	}
	drop_events(x);
	forget_id(x);
	pthread_mutex_unlock(&g_cm);
	return 0;
}

/* Unlinks and frees an id (lock held). */
static void forget_id(struct cm_id *x)
{
	for (int i = 0; i < CM_MAX_IDS; i++)
		if (g_ids[i] == x)
			g_ids[i] = NULL;
	g_live_ids--;
	free(x);
}

int rdma_get_cm_event(struct rdma_event_channel *channel, struct rdma_cm_event **event)
{
	struct cm_chan *c = (struct cm_chan *)channel;
	for (;;) {
		pthread_mutex_lock(&g_cm);
		struct cm_event *e = c->head;
		if (e) {
			c->head = e->next;
			if (!c->head)
				c->tail = NULL;
			sync_signal(c);
			e->next = NULL;
			e->owner->unacked++;
			pthread_mutex_unlock(&g_cm);
			*event = &e->ev;
			return 0;
		}
		pthread_mutex_unlock(&g_cm);
		if (fcntl(c->ch.fd, F_GETFL) & O_NONBLOCK)
			return set_err(EAGAIN);
		struct pollfd pfd = { c->ch.fd, POLLIN, 0 };
		poll(&pfd, 1, -1);
	}
}

int rdma_ack_cm_event(struct rdma_cm_event *event)
{
	struct cm_event *e = (struct cm_event *)event;
	if (!e)
		return set_err(EINVAL);
	pthread_mutex_lock(&g_cm);
	e->owner->unacked--;
	pthread_mutex_unlock(&g_cm);
	free(e);
	return 0;
}

__be16 rdma_get_src_port(struct rdma_cm_id *id)
{
	return ((struct sockaddr_in *)&id->route.addr.src_addr)->sin_port;
}

__be16 rdma_get_dst_port(struct rdma_cm_id *id)
{
	return ((struct sockaddr_in *)&id->route.addr.dst_addr)->sin_port;
}
