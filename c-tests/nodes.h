/*
 * Scaffolding of the multi-node C tests (lnk_nodes, circ_nodes): the lock
 * and condition their threads wait on, bounded waits, master services
 * started on a node, a DBG shell client and span uuids.
 *
 * The including test defines the callbacks declared below: shell() (the
 * services' dbgmsg callback) and svc_exit() (their exit callback), and
 * runs client_io (dmsg_iocom_init, then client_main on a thread).
 */
#ifndef DMSG_C_TESTS_NODES_H
#define DMSG_C_TESTS_NODES_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>

#include <dmsg.h>

#include "check.h"

/* How long any wait of the test may take. */
#define WAIT_SECS 20

static pthread_mutex_t mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;

/* CHECK from several threads. */
#define TCHECK(cond_) do {					\
	pthread_mutex_lock(&mtx);				\
	CHECK(cond_);						\
	pthread_mutex_unlock(&mtx);				\
} while (0)

/* One master service thread on a node. */
struct svc {
	dmsg_node_t *node;
	dmsg_master_service_info_t *info;
	pthread_t thread;
	int exited;
};

static void shell(dmsg_msg_t *msg);
static void svc_exit(void *handle);

/* The shell client's iocom. */
static dmsg_iocom_t client_io;

/* Deadline WAIT_SECS from now. */
static inline struct timespec
deadline(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += WAIT_SECS;
	return ts;
}

/* Waits (mtx held) until pred() holds or the deadline passes. */
static inline int
wait_until(int (*pred)(void))
{
	struct timespec ts = deadline();

	while (!pred()) {
		if (pthread_cond_timedwait(&cond, &mtx, &ts) == ETIMEDOUT)
			return pred();
	}
	return 1;
}

static inline void *
svc_main(void *arg)
{
	struct svc *s = arg;

	return dmsg_master_service_node(s->node, s->info);
}

/* Every service thread started, for all_exited() and the final joins. */
static struct svc *all_svcs[16];
static int nsvcs;

/* Whether every service thread started has exited. */
static inline int
all_exited(void)
{
	int i;

	for (i = 0; i < nsvcs; i++)
		if (!all_svcs[i]->exited)
			return 0;
	return 1;
}

/* Starts a master service thread for fd on node, and records it. */
static inline void
svc_start(struct svc *s, dmsg_node_t *node, int fd, const char *label)
{
	dmsg_master_service_info_t *info = calloc(1, sizeof(*info));

	if (nsvcs == (int)(sizeof(all_svcs) / sizeof(all_svcs[0]))) {
		fprintf(stderr, "svc_start: more than %d services\n", nsvcs);
		exit(1);
	}
	all_svcs[nsvcs++] = s;

	info->fd = fd;
	info->altfd = -1;
	info->label = strdup(label);
	info->handle = s;
	info->dbgmsg_callback = shell;
	info->exit_callback = svc_exit;
	s->node = node;
	s->info = info;
	s->exited = 0;
	if (pthread_create(&s->thread, NULL, svc_main, s) != 0) {
		perror("pthread_create");
		exit(1);
	}
}

/*
 * The line A - B - C: a socketpair per link (ab, bc: the tests cut a
 * link by shutting its first fd down) and a master service at each end
 * (svc[0..3] are A:B, B:A, B:C, C:B). Returns -1 if a socketpair cannot
 * be made.
 */
static inline int
line_start(dmsg_node_t *nodes[3], struct svc svc[4], int ab[2], int bc[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, ab) != 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, bc) != 0) {
		perror("socketpair");
		return -1;
	}
	svc_start(&svc[0], nodes[0], ab[0], "A:B");
	svc_start(&svc[1], nodes[1], ab[1], "B:A");
	svc_start(&svc[2], nodes[1], bc[0], "B:C");
	svc_start(&svc[3], nodes[2], bc[1], "C:B");
	return 0;
}

/* A distinct uuid per (a, b). */
static inline void
uuid_fill(struct uuid *u, int a, int b)
{
	memset(u, 0, sizeof(*u));
	u->time_low = 0x11110000u + (uint32_t)a;
	u->time_mid = (uint16_t)b;
	u->node[5] = (uint8_t)(a + b);
}

/*
 * Opens LNK_CONN as a kernel-side node does: empty masks (nothing is
 * relayed to it), media of node `index`, file system `label`; the
 * transaction's messages go to `func(data)`.
 */
static inline void
kernel_conn(dmsg_iocom_t *io, int index, const char *label,
    void (*func)(dmsg_msg_t *), void *data)
{
	dmsg_msg_t *msg;

	msg = dmsg_msg_alloc(&io->circuit0, 0, DMSG_LNK_CONN | DMSGF_CREATE,
	    func, data);
	TCHECK(msg != NULL && msg->state != NULL);
	if (msg == NULL)
		return;
	msg->any.lnk_conn.peer_mask = 0;
	msg->any.lnk_conn.pfs_mask = 0;
	msg->any.lnk_conn.peer_type = DMSG_PEER_HAMMER2;
	msg->any.lnk_conn.pfs_type = DMSG_PFSTYPE_SERVER;
	uuid_fill(&msg->any.lnk_conn.pfs_clid, 1, 0);
	uuid_fill(&msg->any.lnk_conn.mediaid, 2, index);
	snprintf(msg->any.lnk_conn.fs_label,
	    sizeof(msg->any.lnk_conn.fs_label), "%s", label);
	dmsg_msg_write(msg);
}

/*
 * The LNK_SPAN such a node advertises (file system `label` of node
 * `index`, in "test-cluster"), returned unwritten so that the caller can
 * keep its state first; NULL if it could not be allocated.
 */
static inline dmsg_msg_t *
kernel_span(dmsg_iocom_t *io, int index, const char *label,
    void (*func)(dmsg_msg_t *), void *data)
{
	dmsg_msg_t *msg;

	msg = dmsg_msg_alloc(&io->circuit0, 0, DMSG_LNK_SPAN | DMSGF_CREATE,
	    func, data);
	TCHECK(msg != NULL && msg->state != NULL);
	if (msg == NULL)
		return NULL;
	msg->any.lnk_span.peer_type = DMSG_PEER_HAMMER2;
	msg->any.lnk_span.pfs_type = DMSG_PFSTYPE_SERVER;
	msg->any.lnk_span.proto_version = DMSG_SPAN_PROTO_1;
	msg->any.lnk_span.dist = 0;
	msg->any.lnk_span.rnss = 100u + (uint32_t)index;
	uuid_fill(&msg->any.lnk_span.pfs_clid, 1, 0);
	uuid_fill(&msg->any.lnk_span.pfs_fsid, 3, index);
	snprintf(msg->any.lnk_span.cl_label,
	    sizeof(msg->any.lnk_span.cl_label), "test-cluster");
	snprintf(msg->any.lnk_span.fs_label,
	    sizeof(msg->any.lnk_span.fs_label), "%s", label);
	return msg;
}

static inline void *
client_main(void *arg)
{
	(void)arg;
	dmsg_iocom_core(&client_io);
	return NULL;
}

/* Sends one shell line to the service the client is connected to. */
static inline void
client_send(const char *line)
{
	size_t n = strlen(line) + 1;
	dmsg_msg_t *msg = dmsg_msg_alloc(&client_io.circuit0, n,
	    DMSG_DBG_SHELL, NULL, NULL);

	CHECK(msg != NULL);
	if (msg != NULL) {
		memcpy(msg->aux_data, line, n);
		dmsg_msg_write(msg);
	}
}

#endif
