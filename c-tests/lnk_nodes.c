/*
 * Three nodes in one C program (the dmsg_node_t extension), linked in a
 * line A - B - C over socketpairs, every link end run by a master service
 * thread on its node (dmsg_master_service_node). Each node gets one span
 * the way the HAMMER2 kernel side registers it: a "kernel" thread runs a
 * plain iocom on another socketpair into that node's master service and
 * opens an LNK_CONN transaction, then an LNK_SPAN transaction on it
 * (peer_type HAMMER2, labels "node-a" / "node-b" / "node-c").
 *
 * Checks:
 * - dmsg_node_handler sees ADD for each of the three nodes at each node
 *   (dmsg_node_current() tells the nodes apart), with the span's labels
 *   and types readable in msg->any.lnk_span, and the opaque stored on ADD
 *   comes back on DEL;
 * - a client iocom on a socketpair into A's master service sends the
 *   DBG_SHELL line "tree": A's dbgmsg callback runs dmsg_shell_tree on
 *   msg->circuit, the lines come back as DBG_SHELL|REPLY, then the prompt
 *   (LNK_ERROR|REPLY); node-c is listed at dist=2, node-b at dist=1,
 *   node-a at dist=0;
 * - dmsg_debug_findspan finds node-c's span at A by its msgid (state
 *   msgid equal), and answers ENOENT with NULL for an unknown msgid;
 * - shutting down the B - C socket produces DEL for node-c at A and at B,
 *   and DEL for node-a and node-b at C;
 * - every service thread ends (exit callbacks), every thread is joined,
 *   the nodes are destroyed, and LeakSanitizer finds nothing.
 */
#define _DEFAULT_SOURCE
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <dmsg.h>

#include "check.h"
#include "nodes.h"

#define NNODES 3


static dmsg_node_t *nodes[NNODES];
static const char *labels[NNODES] = { "node-a", "node-b", "node-c" };

/* Node events: [observer][span node]. */
static int adds[NNODES][NNODES];
static int dels[NNODES][NNODES];
static int bad_events;
/* What the handler stores in the opaque slot on ADD. */
static int cookies[NNODES][NNODES];

static int
node_index(dmsg_node_t *node)
{
	int i;

	for (i = 0; i < NNODES; i++)
		if (nodes[i] == node)
			return i;
	return -1;
}

static int
label_index(const char *label)
{
	int i;

	for (i = 0; i < NNODES; i++)
		if (strcmp(labels[i], label) == 0)
			return i;
	return -1;
}

static void
node_handler(void **opaquep, struct dmsg_msg *msg, int op)
{
	int obs = node_index(dmsg_node_current());
	char fs[129];
	int who;

	memcpy(fs, msg->any.lnk_span.fs_label, 128);
	fs[128] = 0;
	who = label_index(fs);
	pthread_mutex_lock(&mtx);
	if (obs < 0 || who < 0 || msg->iocom != NULL ||
	    msg->any.lnk_span.peer_type != DMSG_PEER_HAMMER2 ||
	    msg->any.lnk_span.pfs_type != DMSG_PFSTYPE_SERVER ||
	    strcmp(msg->any.lnk_span.cl_label, "test-cluster") != 0) {
		bad_events++;
	} else if (op == DMSG_NODEOP_ADD) {
		CHECK(*opaquep == NULL);
		*opaquep = &cookies[obs][who];
		adds[obs][who]++;
	} else if (op == DMSG_NODEOP_DEL) {
		CHECK(*opaquep == &cookies[obs][who]);
		dels[obs][who]++;
	} else {
		bad_events++;
	}
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&mtx);
}

/* ----- master services ------------------------------------------------ */

static void
svc_exit(void *handle)
{
	struct svc *s = handle;

	pthread_mutex_lock(&mtx);
	s->exited = 1;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&mtx);
}

/* A's shell: "tree" prints the tree, anything else an error line. */
static void
shell(dmsg_msg_t *msg)
{
	char *cmd = msg->aux_data;

	if (cmd != NULL && strcmp(cmd, "tree") == 0)
		dmsg_shell_tree(msg->circuit, cmd);
	else
		dmsg_circuit_printf(msg->circuit, "unknown command: %s\n",
		    cmd ? cmd : "");
}

/* ----- kernels ---------------------------------------------------------- */

struct kernel {
	int index;
	int fd;
	dmsg_iocom_t iocom;
	pthread_t thread;
};

/* Closes our side of a transaction when the other side closes it. */
static void
kernel_txn(dmsg_msg_t *msg)
{
	if (msg->any.head.cmd & DMSGF_DELETE)
		dmsg_msg_reply(msg, 0);
}

static void
kernel_rcvmsg(dmsg_msg_t *msg)
{
	if (msg->state != NULL && msg->state->func != NULL) {
		msg->state->func(msg);
		return;
	}
	/* The node's LNK_CONN (and anything else): close when it closes. */
	if (msg->state != NULL && (msg->any.head.cmd & DMSGF_DELETE))
		dmsg_msg_reply(msg, 0);
}

static void *
kernel_main(void *arg)
{
	struct kernel *k = arg;
	dmsg_iocom_t *io = &k->iocom;
	dmsg_msg_t *msg;

	dmsg_iocom_init(io, k->fd, -1, NULL, kernel_rcvmsg, NULL, NULL);
	dmsg_iocom_label(io, "kernel-%c", 'a' + k->index);

	kernel_conn(io, k->index, labels[k->index], kernel_txn, k);
	msg = kernel_span(io, k->index, labels[k->index], kernel_txn, k);
	if (msg != NULL)
		dmsg_msg_write(msg);

	dmsg_iocom_core(io);
	dmsg_iocom_done(io);
	return NULL;
}

/* ----- the shell client ------------------------------------------------ */

static char client_text[16384];
static size_t client_len;
static int client_prompts;

static void
client_rcvmsg(dmsg_msg_t *msg)
{
	uint32_t cmd = msg->any.head.cmd;

	if ((cmd & DMSGF_BASECMDMASK) == DMSG_DBG_SHELL && (cmd & DMSGF_REPLY)) {
		pthread_mutex_lock(&mtx);
		if (msg->aux_data != NULL) {
			size_t n = strnlen(msg->aux_data, msg->aux_size);

			if (client_len + n < sizeof(client_text)) {
				memcpy(client_text + client_len, msg->aux_data, n);
				client_len += n;
				client_text[client_len] = 0;
			}
		}
		pthread_mutex_unlock(&mtx);
	} else if ((cmd & DMSGF_BASECMDMASK) == DMSG_LNK_ERROR &&
	    (cmd & DMSGF_REPLY) && msg->state == NULL) {
		/* The prompt. */
		pthread_mutex_lock(&mtx);
		client_prompts++;
		pthread_cond_broadcast(&cond);
		pthread_mutex_unlock(&mtx);
	}
}

/* ----- predicates --------------------------------------------------------- */

static int
all_added(void)
{
	int o, w;

	for (o = 0; o < NNODES; o++)
		for (w = 0; w < NNODES; w++)
			if (adds[o][w] == 0)
				return 0;
	return 1;
}

static int
one_prompt(void)
{
	return client_prompts >= 1;
}

static int
cut_seen(void)
{
	/* A and B lose node-c; C loses node-a and node-b. */
	return dels[0][2] && dels[1][2] && dels[2][0] && dels[2][1];
}

/* The dist of the SLink line after "(label)" in the tree text, or -1;
 * its msgid in *msgid. */
static int
tree_dist(const char *text, const char *label, unsigned long long *msgid)
{
	char key[64];
	const char *p, *l;
	int dist;

	snprintf(key, sizeof(key), "(%s)\n", label);
	p = strstr(text, key);
	if (p == NULL)
		return -1;
	l = strstr(p, "\tSLink msgid ");
	if (l == NULL)
		return -1;
	if (sscanf(l, "\tSLink msgid %llx dist=%d", msgid, &dist) != 2)
		return -1;
	return dist;
}

int
main(void)
{
	struct svc svc_line[4], svc_k[NNODES], svc_cl;
	struct kernel kern[NNODES];
	int ab[2], bc[2], cl[2], kfd[NNODES][2];
	pthread_t client_thread;
	unsigned long long msgid = 0;
	dmsg_state_t *state;
	int i, o, w, ok;

	/*
	 * As hammer2's main does: a write to a link whose peer is gone
	 * must fail with EPIPE, not kill the program.
	 */
	signal(SIGPIPE, SIG_IGN);
	dmsg_node_handler = node_handler;
	for (i = 0; i < NNODES; i++) {
		nodes[i] = dmsg_node_create(1000u + (uint32_t)i);
		CHECK(nodes[i] != NULL);
	}
	CHECK(dmsg_node_current() == NULL);

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, cl) != 0) {
		perror("socketpair");
		return 1;
	}
	if (line_start(nodes, svc_line, ab, bc) != 0)
		return 1;

	for (i = 0; i < NNODES; i++) {
		char label[16];

		if (socketpair(AF_UNIX, SOCK_STREAM, 0, kfd[i]) != 0) {
			perror("socketpair");
			return 1;
		}
		snprintf(label, sizeof(label), "%c:kernel", 'A' + i);
		svc_start(&svc_k[i], nodes[i], kfd[i][0], label);
		memset(&kern[i], 0, sizeof(kern[i]));
		kern[i].index = i;
		kern[i].fd = kfd[i][1];
		if (pthread_create(&kern[i].thread, NULL, kernel_main,
		    &kern[i]) != 0) {
			perror("pthread_create");
			return 1;
		}
	}

	/* Every node learns every span. */
	pthread_mutex_lock(&mtx);
	ok = wait_until(all_added);
	CHECK(ok);
	pthread_mutex_unlock(&mtx);
	for (o = 0; o < NNODES; o++)
		for (w = 0; w < NNODES; w++)
			CHECK_EQ(adds[o][w], 1);
	CHECK_EQ(bad_events, 0);

	/* The tree at A, through A's master service and its shell. */
	svc_start(&svc_cl, nodes[0], cl[0], "A:client");
	dmsg_iocom_init(&client_io, cl[1], -1, NULL, client_rcvmsg, NULL, NULL);
	if (pthread_create(&client_thread, NULL, client_main, NULL) != 0) {
		perror("pthread_create");
		return 1;
	}
	client_send("tree");
	pthread_mutex_lock(&mtx);
	ok = wait_until(one_prompt);
	CHECK(ok);
	CHECK(strstr(client_text, "Cluster HAMMER2 ") != NULL);
	CHECK(strstr(client_text, "(test-cluster)\n") != NULL);
	CHECK_EQ(tree_dist(client_text, "node-a", &msgid), 0);
	CHECK_EQ(tree_dist(client_text, "node-b", &msgid), 1);
	CHECK_EQ(tree_dist(client_text, "node-c", &msgid), 2);
	CHECK(strstr(client_text, "\t    Relay-out msgid ") != NULL);
	if (check_failed)
		fprintf(stderr, "tree at A:\n%s", client_text);
	pthread_mutex_unlock(&mtx);

	/* The span of node-c as A received it. */
	state = (dmsg_state_t *)&state;
	CHECK_EQ(dmsg_debug_findspan(msgid, &state), 0);
	CHECK(state != NULL);
	if (state != NULL) {
		CHECK_EQ(state->msgid, msgid);
		CHECK(state->iocom != NULL);
	}
	state = (dmsg_state_t *)&state;
	CHECK_EQ(dmsg_debug_findspan(0xdeadbeefdead0001ULL, &state), ENOENT);
	CHECK(state == NULL);

	/* Cut B - C. */
	shutdown(bc[0], SHUT_RDWR);
	pthread_mutex_lock(&mtx);
	ok = wait_until(cut_seen);
	CHECK(ok);
	pthread_mutex_unlock(&mtx);
	CHECK_EQ(dels[0][2], 1);
	CHECK_EQ(dels[0][0], 0);
	CHECK_EQ(dels[0][1], 0);

	/* Take everything down: the kernels, the client, A - B. */
	for (i = 0; i < NNODES; i++)
		shutdown(kern[i].fd, SHUT_RDWR);
	shutdown(cl[1], SHUT_RDWR);
	shutdown(ab[0], SHUT_RDWR);
	for (i = 0; i < NNODES; i++)
		pthread_join(kern[i].thread, NULL);
	pthread_join(client_thread, NULL);
	dmsg_iocom_done(&client_io);
	pthread_mutex_lock(&mtx);
	ok = wait_until(all_exited);
	CHECK(ok);
	pthread_mutex_unlock(&mtx);
	for (i = 0; i < nsvcs; i++)
		pthread_join(all_svcs[i]->thread, NULL);

	/* Every node lost every span. */
	for (o = 0; o < NNODES; o++)
		for (w = 0; w < NNODES; w++)
			CHECK_EQ(dels[o][w], 1);
	CHECK_EQ(bad_events, 0);

	for (i = 0; i < NNODES; i++)
		dmsg_node_destroy(nodes[i]);
	dmsg_node_handler = NULL;
	return check_exit("lnk_nodes");
}
