/*
 * A virtual circuit from C, the way hammer2's debug shell ran it
 * ("circ <msgid>" in cmd_debug.c). Three nodes in one program (the
 * dmsg_node_t extension), linked in a line A - B - C over socketpairs,
 * every link end run by a master service thread on its node. B and C get
 * a span each from a "kernel" thread running a plain iocom into their
 * master service (LNK_CONN, then LNK_SPAN "node-b" / "node-c"). A has no
 * kernel: span msgids are chosen per link, so a span A received from its
 * own kernel could carry the same msgid as node-c's, and
 * dmsg_debug_findspan takes the first match (as in hammer2).
 *
 * A shell client into A's master service sends "tree" and reads the
 * msgid of node-c's span at A, then "circ <msgid>": A's shell callback
 * finds the span with dmsg_debug_findspan and writes LNK_CIRC|CREATE with
 * lnk_circ.target = state->msgid on state->iocom->circuit0. B and C relay
 * it; the far end is C's kernel iocom (the leaf that registered the span),
 * which accepts it with dmsg_msg_result(msg, 0).
 *
 * Checks:
 * - the kernel gets LNK_CIRC|CREATE with target = the msgid of its own
 *   LNK_SPAN, and its state's any.circ is the circuit's mirror;
 * - A's LNK_CIRC state func gets the end-to-end acknowledgement
 *   (LNK_ERROR|REPLY|CREATE, error 0), and msg->state->any.circ is a
 *   circuit of A's link to B (not circuit0);
 * - a transaction over the circuit from A: BLK_READ|CREATE with 3000
 *   bytes; the kernel sees it with msg->circuit = its circuit mirror and
 *   head.circuit = its id, answers REPLY|CREATE with the bytes inverted;
 *   A checks them and closes (DELETE), the kernel closes its side, and
 *   A's func sees REPLY|DELETE;
 * - a one-way DBG_SHELL line from A over the circuit reaches the kernel
 *   intact, with msg->circuit set;
 * - a one-way DBG_SHELL line from the kernel over the circuit reaches A's
 *   shell (a node) with msg->circuit = A's circuit mirror; the shell's
 *   dmsg_circuit_printf comes back to the kernel as DBG_SHELL|REPLY on
 *   the circuit, followed by the prompt (one-way LNK_ERROR|REPLY);
 * - dmsg_state_reply(circ_state, 0) at A closes the circuit: the kernel's
 *   LNK_CIRC state sees DELETE (and closes its side), A's sees
 *   REPLY|DELETE;
 * - everything shuts down, threads joined, nodes destroyed, and
 *   LeakSanitizer finds nothing.
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
#define PAYLOAD 3000


static dmsg_node_t *nodes[NNODES];
static const char *labels[NNODES] = { "node-a", "node-b", "node-c" };
static int adds[NNODES][NNODES];

static void
wake(void)
{
	pthread_cond_broadcast(&cond);
}

static int
node_index(dmsg_node_t *node)
{
	int i;

	for (i = 0; i < NNODES; i++)
		if (nodes[i] == node)
			return i;
	return -1;
}

static void
node_handler(void **opaquep, struct dmsg_msg *msg, int op)
{
	int obs = node_index(dmsg_node_current());
	char fs[129];
	int who;

	(void)opaquep;
	memcpy(fs, msg->any.lnk_span.fs_label, 128);
	fs[128] = 0;
	for (who = 0; who < NNODES; who++)
		if (strcmp(labels[who], fs) == 0)
			break;
	pthread_mutex_lock(&mtx);
	if (obs >= 0 && who < NNODES && op == DMSG_NODEOP_ADD)
		adds[obs][who]++;
	wake();
	pthread_mutex_unlock(&mtx);
}

/* ----- the circuit at A ------------------------------------------------- */

/* All under mtx. */
static dmsg_state_t *circ_state;	/* A's LNK_CIRC state */
static int circ_sent;			/* the shell wrote the LNK_CIRC */
static int circ_acks;			/* LNK_ERROR|REPLY|CREATE seen */
static uint32_t circ_ack_error = 0xffffffffu;
static int circ_deletes;		/* REPLY|DELETE seen at A */
static int circ_bad;			/* anything else on A's LNK_CIRC */

/* A's LNK_CIRC state func (shell_circ_reply in hammer2). */
static void
circ_reply(dmsg_msg_t *msg)
{
	uint32_t cmd = msg->any.head.cmd;

	pthread_mutex_lock(&mtx);
	if ((cmd & DMSGF_CREATE) && (cmd & DMSGF_REPLY)) {
		circ_acks++;
		circ_ack_error = msg->any.head.error;
		CHECK_EQ(cmd & DMSGF_BASECMDMASK, DMSG_LNK_ERROR);
		CHECK(msg->state == circ_state);
	} else if (!(cmd & DMSGF_DELETE)) {
		circ_bad++;
	}
	if (cmd & DMSGF_DELETE) {
		CHECK(cmd & DMSGF_REPLY);
		circ_deletes++;
	}
	wake();
	pthread_mutex_unlock(&mtx);
}

/* The transaction A runs over the circuit. */
static unsigned char payload[PAYLOAD];
static int txn_replies;			/* REPLY|CREATE with intact data */
static int txn_deletes;			/* REPLY|DELETE at A */
static int txn_bad;

static void
txn_reply(dmsg_msg_t *msg)
{
	uint32_t cmd = msg->any.head.cmd;
	int i, ok;

	pthread_mutex_lock(&mtx);
	if ((cmd & DMSGF_CREATE) && (cmd & DMSGF_REPLY)) {
		ok = (cmd & DMSGF_BASECMDMASK) == DMSG_BLK_READ &&
		    msg->aux_size >= PAYLOAD && msg->aux_data != NULL;
		for (i = 0; ok && i < PAYLOAD; i++)
			if ((unsigned char)msg->aux_data[i] !=
			    (unsigned char)~payload[i])
				ok = 0;
		if (ok)
			txn_replies++;
		else
			txn_bad++;
		CHECK(msg->circuit == circ_state->any.circ);
		CHECK(msg->state->circuit == circ_state->any.circ);
		pthread_mutex_unlock(&mtx);
		/* Our side is done: close it. */
		dmsg_msg_reply(msg, 0);
		pthread_mutex_lock(&mtx);
	}
	if (cmd & DMSGF_DELETE)
		txn_deletes++;
	wake();
	pthread_mutex_unlock(&mtx);
}

/* ----- master services ------------------------------------------------ */

static void
svc_exit(void *handle)
{
	struct svc *s = handle;

	pthread_mutex_lock(&mtx);
	s->exited = 1;
	wake();
	pthread_mutex_unlock(&mtx);
}

static char shell_line_seen[256];	/* what A's shell got on the circuit */

/* A's shell: "tree", "circ <msgid>", and lines over the circuit. */
static void
shell(dmsg_msg_t *msg)
{
	char *cmd = msg->aux_data;
	unsigned long long msgid;
	dmsg_state_t *state;
	dmsg_msg_t *m;

	if (cmd == NULL)
		cmd = "";
	if (msg->circuit != NULL && msg->circuit->msgid != 0) {
		/* A line that came over the virtual circuit. */
		pthread_mutex_lock(&mtx);
		CHECK(circ_state != NULL && msg->circuit == circ_state->any.circ);
		snprintf(shell_line_seen, sizeof(shell_line_seen), "%s", cmd);
		wake();
		pthread_mutex_unlock(&mtx);
		dmsg_circuit_printf(msg->circuit, "node-a heard: %s\n", cmd);
		return;
	}
	if (strcmp(cmd, "tree") == 0) {
		dmsg_shell_tree(msg->circuit, cmd);
	} else if (sscanf(cmd, "circ %llx", &msgid) == 1) {
		/* As hammer2's shell_circ. */
		if (dmsg_debug_findspan(msgid, &state) != 0) {
			dmsg_circuit_printf(msg->circuit, "no span %016llx\n",
			    msgid);
			return;
		}
		m = dmsg_msg_alloc(&state->iocom->circuit0, 0,
		    DMSG_LNK_CIRC | DMSGF_CREATE, circ_reply, NULL);
		if (m == NULL) {
			dmsg_circuit_printf(msg->circuit, "no message\n");
			return;
		}
		m->any.lnk_circ.target = state->msgid;
		pthread_mutex_lock(&mtx);
		circ_state = m->state;
		circ_sent = 1;
		pthread_mutex_unlock(&mtx);
		dmsg_msg_write(m);
		dmsg_circuit_printf(msg->circuit, "circuit to %016llx\n",
		    msgid);
	} else {
		dmsg_circuit_printf(msg->circuit, "unknown command: %s\n", cmd);
	}
}

/* ----- kernels ---------------------------------------------------------- */

struct kernel {
	int index;
	int fd;
	dmsg_iocom_t iocom;
	pthread_t thread;
	dmsg_state_t *span;	/* our LNK_SPAN */
};

static struct kernel kern[NNODES];

/* The far end, all under mtx. */
static dmsg_state_t *far_circ_state;	/* the kernel's LNK_CIRC state */
static dmsg_circuit_t *far_circ;	/* its circuit (held) */
static uint64_t far_circ_id;
static int far_requests;		/* LNK_CIRC|CREATE seen */
static int far_deletes;			/* LNK_CIRC DELETE seen */
static int far_txn_creates;		/* BLK_READ|CREATE with intact data */
static int far_txn_deletes;		/* its DELETE */
static int far_oneway;			/* A's line, intact */
static char far_text[1024];		/* DBG_SHELL|REPLY text from A */
static int far_prompts;
static int far_bad;

/* Closes our side of a transaction when the other side closes it. */
static void
kernel_txn(dmsg_msg_t *msg)
{
	if (msg->any.head.cmd & DMSGF_DELETE)
		dmsg_msg_reply(msg, 0);
}

/* The kernel's LNK_CIRC state func. */
static void
kernel_circ(dmsg_msg_t *msg)
{
	if (msg->any.head.cmd & DMSGF_DELETE) {
		pthread_mutex_lock(&mtx);
		far_deletes++;
		wake();
		pthread_mutex_unlock(&mtx);
		dmsg_msg_reply(msg, 0);
	}
}

/* The kernel's side of the transaction over the circuit. */
static void
kernel_blk(dmsg_msg_t *msg)
{
	if (msg->any.head.cmd & DMSGF_DELETE) {
		pthread_mutex_lock(&mtx);
		far_txn_deletes++;
		wake();
		pthread_mutex_unlock(&mtx);
		dmsg_msg_reply(msg, 0);
	}
}

/* A message on the circuit, at the kernel. */
static void
kernel_on_circuit(dmsg_msg_t *msg)
{
	uint32_t cmd = msg->any.head.cmd;
	dmsg_msg_t *rep;
	size_t i;
	int ok;

	pthread_mutex_lock(&mtx);
	CHECK(msg->circuit == far_circ);
	CHECK_EQ(msg->any.head.circuit, far_circ_id);
	pthread_mutex_unlock(&mtx);

	if ((cmd & DMSGF_BASECMDMASK) == DMSG_BLK_READ &&
	    (cmd & DMSGF_CREATE) && msg->state != NULL) {
		ok = msg->aux_size >= PAYLOAD && msg->aux_data != NULL;
		for (i = 0; ok && i < PAYLOAD; i++)
			if ((unsigned char)msg->aux_data[i] != payload[i])
				ok = 0;
		pthread_mutex_lock(&mtx);
		if (ok)
			far_txn_creates++;
		else
			far_bad++;
		CHECK(msg->state->circuit == far_circ);
		wake();
		pthread_mutex_unlock(&mtx);
		msg->state->func = kernel_blk;
		/* The answer: the bytes inverted, inside the transaction. */
		rep = dmsg_msg_alloc(msg->circuit, PAYLOAD, DMSG_BLK_READ,
		    NULL, NULL);
		TCHECK(rep != NULL);
		if (rep == NULL)
			return;
		for (i = 0; i < PAYLOAD; i++)
			rep->aux_data[i] = (char)~payload[i];
		rep->state = msg->state;
		dmsg_msg_write(rep);
		return;
	}
	if ((cmd & DMSGF_BASECMDMASK) == DMSG_DBG_SHELL && msg->state == NULL) {
		pthread_mutex_lock(&mtx);
		if (cmd & DMSGF_REPLY) {
			size_t n = msg->aux_data == NULL ? 0 :
			    strnlen(msg->aux_data, msg->aux_size);
			size_t have = strlen(far_text);

			if (have + n < sizeof(far_text)) {
				memcpy(far_text + have, msg->aux_data, n);
				far_text[have + n] = 0;
			}
		} else if (msg->aux_data != NULL &&
		    strncmp(msg->aux_data, "hello kernel",
		    msg->aux_size) == 0) {
			far_oneway++;
		} else {
			far_bad++;
		}
		wake();
		pthread_mutex_unlock(&mtx);
		return;
	}
	if ((cmd & DMSGF_BASECMDMASK) == DMSG_LNK_ERROR &&
	    (cmd & DMSGF_REPLY) && msg->state == NULL) {
		pthread_mutex_lock(&mtx);
		far_prompts++;
		wake();
		pthread_mutex_unlock(&mtx);
		return;
	}
	pthread_mutex_lock(&mtx);
	far_bad++;
	pthread_mutex_unlock(&mtx);
	if (msg->state != NULL && (cmd & DMSGF_CREATE) && !(cmd & DMSGF_REPLY))
		dmsg_msg_reply(msg, DMSG_ERR_NOSUPP);
}

static void
kernel_rcvmsg(dmsg_msg_t *msg)
{
	struct kernel *k = msg->iocom == &kern[2].iocom ? &kern[2] : NULL;
	uint32_t cmd = msg->any.head.cmd;

	if (msg->state != NULL && msg->state->func != NULL) {
		msg->state->func(msg);
		return;
	}
	if (msg->any.head.circuit != 0) {
		kernel_on_circuit(msg);
		return;
	}
	if (msg->state != NULL && msg->state->icmd == DMSG_LNK_CIRC &&
	    (cmd & DMSGF_CREATE) && !(cmd & DMSGF_REPLY) &&
	    !(cmd & DMSGF_DELETE)) {
		/* A circuit to our span (only C's kernel accepts). */
		if (k == NULL || k->span == NULL ||
		    msg->any.lnk_circ.target != k->span->msgid) {
			TCHECK(k != NULL);
			dmsg_msg_reply(msg, DMSG_ERR_CANTCIRC);
			return;
		}
		msg->state->func = kernel_circ;
		dmsg_msg_result(msg, 0);
		pthread_mutex_lock(&mtx);
		far_requests++;
		far_circ_state = msg->state;
		far_circ = msg->state->any.circ;
		CHECK(far_circ != NULL);
		if (far_circ != NULL) {
			CHECK(far_circ != &msg->iocom->circuit0);
			CHECK_EQ(far_circ->msgid, msg->state->msgid);
			CHECK(far_circ->iocom == msg->iocom);
			far_circ_id = far_circ->msgid;
			dmsg_circuit_hold(far_circ);
		}
		wake();
		pthread_mutex_unlock(&mtx);
		return;
	}
	/* The node's LNK_CONN (and anything else): close when it closes. */
	if (msg->state != NULL && (cmd & DMSGF_DELETE))
		dmsg_msg_reply(msg, 0);
}

static void *
kernel_main(void *arg)
{
	struct kernel *k = arg;
	dmsg_iocom_t *io = &k->iocom;
	dmsg_msg_t *msg;

	kernel_conn(io, k->index, labels[k->index], kernel_txn, k);
	msg = kernel_span(io, k->index, labels[k->index], kernel_txn, k);
	if (msg != NULL) {
		pthread_mutex_lock(&mtx);
		k->span = msg->state;
		pthread_mutex_unlock(&mtx);
		dmsg_msg_write(msg);
	}

	dmsg_iocom_core(io);
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

	pthread_mutex_lock(&mtx);
	if ((cmd & DMSGF_BASECMDMASK) == DMSG_DBG_SHELL && (cmd & DMSGF_REPLY)) {
		if (msg->aux_data != NULL) {
			size_t n = strnlen(msg->aux_data, msg->aux_size);

			if (client_len + n < sizeof(client_text)) {
				memcpy(client_text + client_len, msg->aux_data, n);
				client_len += n;
				client_text[client_len] = 0;
			}
		}
	} else if ((cmd & DMSGF_BASECMDMASK) == DMSG_LNK_ERROR &&
	    (cmd & DMSGF_REPLY) && msg->state == NULL) {
		client_prompts++;
		wake();
	}
	pthread_mutex_unlock(&mtx);
}

/* One-way DBG_SHELL line on a circuit. */
static void
circuit_line(dmsg_circuit_t *circ, const char *line)
{
	size_t n = strlen(line) + 1;
	dmsg_msg_t *msg = dmsg_msg_alloc(circ, n, DMSG_DBG_SHELL, NULL, NULL);

	CHECK(msg != NULL);
	if (msg != NULL) {
		CHECK_EQ(msg->any.head.circuit, circ->msgid);
		memcpy(msg->aux_data, line, n);
		dmsg_msg_write(msg);
	}
}

/* ----- predicates --------------------------------------------------------- */

static int
spans_known(void)
{
	int o, w;

	for (o = 0; o < NNODES; o++)
		for (w = 1; w < NNODES; w++)
			if (adds[o][w] == 0)
				return 0;
	return 1;
}

static int
prompts_1(void)
{
	return client_prompts >= 1;
}

static int
prompts_2(void)
{
	return client_prompts >= 2;
}

static int
circ_up(void)
{
	return circ_acks >= 1 && far_requests >= 1;
}

static int
txn_done(void)
{
	return txn_deletes >= 1 && far_txn_deletes >= 1;
}

static int
far_oneway_seen(void)
{
	return far_oneway >= 1;
}

static int
shell_answered(void)
{
	return far_prompts >= 1 && strstr(far_text, "\n") != NULL;
}

static int
circ_closed(void)
{
	return circ_deletes >= 1 && far_deletes >= 1;
}

/* The msgid of the SLink line after "(label)" in the tree text, or 0. */
static unsigned long long
tree_msgid(const char *text, const char *label)
{
	unsigned long long msgid;
	char key[64];
	const char *p, *l;
	int dist;

	snprintf(key, sizeof(key), "(%s)\n", label);
	p = strstr(text, key);
	if (p == NULL)
		return 0;
	l = strstr(p, "\tSLink msgid ");
	if (l == NULL)
		return 0;
	if (sscanf(l, "\tSLink msgid %llx dist=%d", &msgid, &dist) != 2)
		return 0;
	return msgid;
}

int
main(void)
{
	struct svc svc_line[4], svc_k[NNODES], svc_cl;
	int ab[2], bc[2], cl[2], kfd[NNODES][2];
	pthread_t client_thread;
	unsigned long long msgid;
	dmsg_circuit_t *circ = NULL;
	dmsg_msg_t *msg;
	char line[64];
	int i, ok;

	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < PAYLOAD; i++)
		payload[i] = (unsigned char)(i * 7 + 3);
	dmsg_node_handler = node_handler;
	for (i = 0; i < NNODES; i++) {
		nodes[i] = dmsg_node_create(2000u + (uint32_t)i);
		CHECK(nodes[i] != NULL);
	}

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, cl) != 0) {
		perror("socketpair");
		return 1;
	}
	if (line_start(nodes, svc_line, ab, bc) != 0)
		return 1;

	for (i = 1; i < NNODES; i++) {
		char label[16];

		if (socketpair(AF_UNIX, SOCK_STREAM, 0, kfd[i]) != 0) {
			perror("socketpair");
			return 1;
		}
		snprintf(label, sizeof(label), "%c:kernel", 'A' + i);
		svc_start(&svc_k[i], nodes[i], kfd[i][0], label);
		kern[i].index = i;
		kern[i].fd = kfd[i][1];
		dmsg_iocom_init(&kern[i].iocom, kern[i].fd, -1, NULL,
		    kernel_rcvmsg, NULL, NULL);
		dmsg_iocom_label(&kern[i].iocom, "kernel-%c", 'a' + i);
		if (pthread_create(&kern[i].thread, NULL, kernel_main,
		    &kern[i]) != 0) {
			perror("pthread_create");
			return 1;
		}
	}

	pthread_mutex_lock(&mtx);
	ok = wait_until(spans_known);
	CHECK(ok);
	pthread_mutex_unlock(&mtx);

	/* The tree at A, then "circ <msgid of node-c's span at A>". */
	svc_start(&svc_cl, nodes[0], cl[0], "A:client");
	dmsg_iocom_init(&client_io, cl[1], -1, NULL, client_rcvmsg, NULL, NULL);
	if (pthread_create(&client_thread, NULL, client_main, NULL) != 0) {
		perror("pthread_create");
		return 1;
	}
	client_send("tree");
	pthread_mutex_lock(&mtx);
	ok = wait_until(prompts_1);
	CHECK(ok);
	msgid = tree_msgid(client_text, "node-c");
	CHECK(msgid != 0);
	pthread_mutex_unlock(&mtx);
	snprintf(line, sizeof(line), "circ %016llx", msgid);
	client_send(line);

	/* The end-to-end acknowledgement, and the kernel's acceptance. */
	pthread_mutex_lock(&mtx);
	ok = wait_until(prompts_2);
	CHECK(ok);
	CHECK(circ_sent);
	CHECK(strstr(client_text, "circuit to ") != NULL);
	ok = wait_until(circ_up);
	CHECK(ok);
	CHECK_EQ(circ_acks, 1);
	CHECK_EQ(circ_ack_error, 0);
	CHECK_EQ(far_requests, 1);
	if (circ_state != NULL && circ_acks == 1 && circ_deletes == 0) {
		circ = circ_state->any.circ;
		CHECK(circ != NULL);
		CHECK_EQ(circ_state->icmd, DMSG_LNK_CIRC);
	}
	if (circ != NULL) {
		CHECK(circ->msgid != 0);
		CHECK(circ->iocom == circ_state->iocom);
		CHECK(circ->iocom->label != NULL &&
		    strcmp(circ->iocom->label, "A:B") == 0);
		CHECK(circ->state == circ_state);
		CHECK_EQ(circ->is_relay, 0);
		/* Ours while we use it. */
		dmsg_circuit_hold(circ);
	}
	pthread_mutex_unlock(&mtx);
	if (circ == NULL || check_failed) {
		fprintf(stderr, "client text:\n%s", client_text);
		return check_exit("circ_nodes");
	}

	/* A transaction over the circuit: CREATE, reply, DELETE both ways. */
	msg = dmsg_msg_alloc(circ, PAYLOAD, DMSG_BLK_READ | DMSGF_CREATE,
	    txn_reply, NULL);
	CHECK(msg != NULL);
	if (msg != NULL) {
		CHECK(msg->state != NULL);
		CHECK(msg->circuit == circ);
		CHECK_EQ(msg->any.head.circuit, circ->msgid);
		memcpy(msg->aux_data, payload, PAYLOAD);
		dmsg_msg_write(msg);
	}
	pthread_mutex_lock(&mtx);
	ok = wait_until(txn_done);
	CHECK(ok);
	CHECK_EQ(txn_replies, 1);
	CHECK_EQ(txn_deletes, 1);
	CHECK_EQ(txn_bad, 0);
	CHECK_EQ(far_txn_creates, 1);
	CHECK_EQ(far_txn_deletes, 1);
	pthread_mutex_unlock(&mtx);

	/* One-way lines: A to the kernel, and the kernel to A's shell. */
	circuit_line(circ, "hello kernel");
	pthread_mutex_lock(&mtx);
	ok = wait_until(far_oneway_seen);
	CHECK(ok);
	pthread_mutex_unlock(&mtx);
	circuit_line(far_circ, "hello node-a");
	pthread_mutex_lock(&mtx);
	ok = wait_until(shell_answered);
	CHECK(ok);
	CHECK(strcmp(shell_line_seen, "hello node-a") == 0);
	CHECK(strcmp(far_text, "node-a heard: hello node-a\n") == 0);
	CHECK_EQ(far_prompts, 1);
	pthread_mutex_unlock(&mtx);

	/* Close the circuit from A: both ends see it end. */
	dmsg_state_reply(circ_state, 0);
	pthread_mutex_lock(&mtx);
	ok = wait_until(circ_closed);
	CHECK(ok);
	CHECK_EQ(circ_deletes, 1);
	CHECK_EQ(far_deletes, 1);
	CHECK_EQ(circ_bad, 0);
	CHECK_EQ(far_bad, 0);
	pthread_mutex_unlock(&mtx);
	dmsg_circuit_drop(circ);
	dmsg_circuit_drop(far_circ);

	/* Take everything down. */
	for (i = 1; i < NNODES; i++)
		shutdown(kern[i].fd, SHUT_RDWR);
	shutdown(cl[1], SHUT_RDWR);
	shutdown(ab[0], SHUT_RDWR);
	shutdown(bc[0], SHUT_RDWR);
	for (i = 1; i < NNODES; i++) {
		pthread_join(kern[i].thread, NULL);
		dmsg_iocom_done(&kern[i].iocom);
	}
	pthread_join(client_thread, NULL);
	dmsg_iocom_done(&client_io);
	pthread_mutex_lock(&mtx);
	ok = wait_until(all_exited);
	CHECK(ok);
	pthread_mutex_unlock(&mtx);
	for (i = 0; i < nsvcs; i++)
		pthread_join(all_svcs[i]->thread, NULL);

	for (i = 0; i < NNODES; i++)
		dmsg_node_destroy(nodes[i]);
	dmsg_node_handler = NULL;
	if (check_failed)
		fprintf(stderr, "client text:\n%s", client_text);
	return check_exit("circ_nodes");
}
