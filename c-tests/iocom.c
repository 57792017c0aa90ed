/*
 * Two threads talk over a socketpair with only the C API of the
 * transaction layer, each running dmsg_iocom_init + dmsg_iocom_core on a
 * struct dmsg_iocom kept on its own stack:
 *
 * - one-way messages (DBG_SHELL) with aux data of 0, 1, 63, 64, 65 and
 *   65536 bytes, written before dmsg_iocom_core runs, arrive intact (byte
 *   by byte, padding zeroed);
 * - transactions in both directions (A opens, B answers; B opens, A
 *   answers): CREATE with aux data of each size -> REPLY|CREATE result ->
 *   DELETE -> REPLY|DELETE, with a per-transaction handler set through
 *   dmsg_msg_alloc(&iocom->circuit0, aux, cmd, func, data) that sees
 *   msg->state->any.any == data (dispatched from rcvmsg as C programs do);
 * - a message allocated with CREATE and freed unsent leaves nothing;
 * - link loss: each side keeps three transactions of its own and three
 *   of the peer's open; A sets DMSG_IOCOMF_EOF from a callback, its core
 *   returns and dmsg_iocom_done closes the socket, so B sees EOF. On both
 *   sides each of the six handlers sees exactly one ABORT|DELETE, then a
 *   one-way LNK_ERROR carrying DMSG_IOQ_ERROR_EOF arrives, core returns
 *   and dmsg_iocom_done cleans up (LeakSanitizer checks nothing is left);
 * - dmsg_iocom_label, the default label, dmsg_msg_str.
 */
#define _DEFAULT_SOURCE
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <dmsg.h>

#include "check.h"

/* CHECK from several threads. */
static pthread_mutex_t check_mtx = PTHREAD_MUTEX_INITIALIZER;
#define TCHECK(cond) do {					\
	pthread_mutex_lock(&check_mtx);				\
	CHECK(cond);						\
	pthread_mutex_unlock(&check_mtx);			\
} while (0)
#define TCHECK_EQ(got, want) do {				\
	pthread_mutex_lock(&check_mtx);				\
	CHECK_EQ(got, want);					\
	pthread_mutex_unlock(&check_mtx);			\
} while (0)

#define NSIZES 6
static const size_t sizes[NSIZES] = { 0, 1, 63, 64, 65, 65536 };
#define NHOLD 3
#define HOLD_MODES 0x1234

#define KIND_NORMAL 1
#define KIND_HOLD 2
#define KIND_HOLD_REMOTE 3

struct side;

/* What a transaction's handler gets as msg->state->any.any. */
struct cookie {
	struct side *side;
	int kind;
	int index;
	int calls;
	int done;
	int aborts;
};

struct side {
	char name;
	int fd;
	dmsg_iocom_t *iocom;	/* NULL once its core has returned */
	int started;
	int ready;
	int stopping;
	int oneway_seen[NSIZES];
	int oneway_rx;
	int normal_done;
	int remote_normal_done;
	int hold_acked;
	int hold_remote;
	int final_error;
	struct cookie normal[NSIZES];
	struct cookie hold[NHOLD];
	struct cookie hold_remote_c[NHOLD];
};

static struct side sides[2];
static pthread_mutex_t ready_mtx = PTHREAD_MUTEX_INITIALIZER;

static unsigned char
pattern(size_t i, size_t size)
{
	return (unsigned char)((i * 31 + size * 7 + 1) & 0xff);
}

static void
fill_aux(dmsg_msg_t *msg, size_t size)
{
	size_t i;

	for (i = 0; i < size; i++)
		msg->aux_data[i] = (char)pattern(i, size);
}

/* The aux data of msg is one of the test sizes, intact; returns its index. */
static int
check_aux(const dmsg_msg_t *msg)
{
	size_t i, bad = 0;
	int k;

	for (k = 0; k < NSIZES; k++)
		if (sizes[k] == msg->aux_size)
			break;
	TCHECK(k < NSIZES);
	if (k == NSIZES)
		return -1;
	if (msg->aux_size == 0) {
		TCHECK(msg->aux_data == NULL);
		return k;
	}
	TCHECK(msg->aux_data != NULL);
	if (msg->aux_data == NULL)
		return -1;
	for (i = 0; i < msg->aux_size; i++)
		if ((unsigned char)msg->aux_data[i] != pattern(i, msg->aux_size))
			bad++;
	/* The buffer is DMSG_DOALIGN(aux_size) bytes, zero padded. */
	for (; i < DMSG_DOALIGN(msg->aux_size); i++)
		if (msg->aux_data[i] != 0)
			bad++;
	TCHECK_EQ(bad, 0);
	return k;
}

static struct side *
side_of(dmsg_iocom_t *iocom)
{
	return iocom == sides[0].iocom ? &sides[0] : &sides[1];
}

/* Under ready_mtx: A stops once both sides are done with the exchange. */
static void
maybe_stop_locked(struct side *s)
{
	if (s == &sides[0] && sides[0].ready && sides[1].ready &&
	    !s->stopping) {
		s->stopping = 1;
		s->iocom->flags |= DMSG_IOCOMF_EOF;
	}
}

static void
check_ready(struct side *s)
{
	if (s->ready || s->oneway_rx != NSIZES || s->normal_done != NSIZES ||
	    s->remote_normal_done != NSIZES || s->hold_acked != NHOLD ||
	    s->hold_remote != NHOLD)
		return;
	pthread_mutex_lock(&ready_mtx);
	s->ready = 1;
	if (s == &sides[1]) {
		/* Wake A (its iocom lives until it has seen both ready). */
		if (sides[0].iocom != NULL)
			dmsg_iocom_signal(sides[0].iocom);
	} else {
		maybe_stop_locked(s);
	}
	pthread_mutex_unlock(&ready_mtx);
}

static struct cookie *
cookie_of(dmsg_msg_t *msg, int kind)
{
	struct cookie *c;

	TCHECK(msg->state != NULL);
	if (msg->state == NULL)
		return NULL;
	c = msg->state->any.any;
	TCHECK(c != NULL);
	if (c == NULL)
		return NULL;
	TCHECK_EQ(c->kind, kind);
	TCHECK(c->side == side_of(msg->iocom));
	return c;
}

/* Handler of our normal transactions (set through dmsg_msg_alloc). */
static void
normal_func(dmsg_msg_t *msg)
{
	uint32_t cmd = msg->any.head.cmd;
	struct cookie *c = cookie_of(msg, KIND_NORMAL);
	dmsg_state_t *state = msg->state;

	if (c == NULL)
		return;
	TCHECK(&c->side->normal[c->index] == c);
	c->calls++;
	TCHECK(cmd & DMSGF_REPLY);
	TCHECK((cmd & DMSGF_ABORT) == 0);
	TCHECK_EQ(msg->any.head.error, 0);
	/* The creating message stays readable while the state lives. */
	TCHECK(state->msg != NULL);
	if (state->msg != NULL) {
		TCHECK(state->msg->any.head.cmd & DMSGF_CREATE);
		TCHECK_EQ(state->msg->aux_size, sizes[c->index]);
	}
	TCHECK_EQ(state->icmd, DMSG_LNK_PING);
	TCHECK((state->txcmd & DMSGF_REPLY) == 0);
	if ((cmd & DMSGF_CREATE) && (cmd & DMSGF_DELETE) == 0) {
		TCHECK(state->rxcmd & DMSGF_CREATE);
		/* Close our side: LNK_ERROR|DELETE. */
		dmsg_msg_reply(msg, 0);
		TCHECK(state->txcmd & DMSGF_DELETE);
	}
	if (cmd & DMSGF_DELETE) {
		c->done++;
		c->side->normal_done++;
	}
}

/* Handler of our held transactions: answered, then aborted by link loss. */
static void
hold_func(dmsg_msg_t *msg)
{
	uint32_t cmd = msg->any.head.cmd;
	struct cookie *c = cookie_of(msg, KIND_HOLD);

	if (c == NULL)
		return;
	c->calls++;
	if ((cmd & DMSGF_DELETE) == 0) {
		TCHECK((cmd & (DMSGF_REPLY | DMSGF_CREATE)) ==
		    (DMSGF_REPLY | DMSGF_CREATE));
		c->side->hold_acked++;
		return;
	}
	TCHECK(cmd & DMSGF_ABORT);
	TCHECK_EQ(msg->any.head.error, DMSG_IOQ_ERROR_EOF);
	c->aborts++;
	/* The link is down: a reply is dropped quietly. */
	dmsg_msg_reply(msg, 0);
}

/* Handler the receiver attaches to the peer's held transactions. */
static void
hold_remote_func(dmsg_msg_t *msg)
{
	uint32_t cmd = msg->any.head.cmd;
	struct cookie *c = cookie_of(msg, KIND_HOLD_REMOTE);

	if (c == NULL)
		return;
	c->calls++;
	TCHECK((cmd & (DMSGF_ABORT | DMSGF_DELETE)) ==
	    (DMSGF_ABORT | DMSGF_DELETE));
	TCHECK((cmd & DMSGF_REPLY) == 0);
	TCHECK_EQ(msg->any.head.error, DMSG_IOQ_ERROR_EOF);
	c->aborts++;
	dmsg_msg_reply(msg, 0);
}

/* A transaction the peer opened, without a handler of its own. */
static void
remote_txn(struct side *s, dmsg_msg_t *msg)
{
	uint32_t cmd = msg->any.head.cmd;
	dmsg_state_t *state = msg->state;
	const char *str;
	int k;

	TCHECK(state->txcmd & DMSGF_REPLY);
	TCHECK(state->iocom == s->iocom);
	TCHECK(state->circuit == &s->iocom->circuit0);
	switch (state->icmd) {
	case DMSG_LNK_PING:
		TCHECK((cmd & DMSGF_ABORT) == 0);
		if (cmd & DMSGF_CREATE) {
			TCHECK(state->msg == msg);
			TCHECK_EQ(state->msgid, msg->any.head.msgid);
			check_aux(msg);
			str = dmsg_msg_str(msg);
			TCHECK(strstr(str, "msg=LNK_PING|CREATE") != NULL);
			dmsg_msg_result(msg, 0);
			TCHECK(state->txcmd & DMSGF_CREATE);
		}
		if (cmd & DMSGF_DELETE) {
			TCHECK(state->msg != NULL && state->msg != msg);
			if (state->msg != NULL)
				check_aux(state->msg);
			dmsg_msg_reply(msg, 0);
			/* A second reply is ignored (STATE.md row 20). */
			dmsg_msg_reply(msg, 0);
			dmsg_state_reply(state, 0);
			s->remote_normal_done++;
		}
		break;
	case DMSG_BLK_OPEN:
		TCHECK(cmd & DMSGF_CREATE);
		TCHECK_EQ(msg->hdr_size, 128);
		k = (int)msg->any.blk_open.modes - HOLD_MODES;
		TCHECK(k >= 0 && k < NHOLD);
		if (k < 0 || k >= NHOLD)
			break;
		state->func = hold_remote_func;
		state->any.any = &s->hold_remote_c[k];
		s->hold_remote++;
		dmsg_state_result(state, 0);
		break;
	default:
		TCHECK(!"unexpected transaction");
		break;
	}
}

static void
rcvmsg_cb(dmsg_msg_t *msg)
{
	struct side *s = side_of(msg->iocom);
	uint32_t cmd = msg->any.head.cmd;
	int k;

	TCHECK(msg->iocom == s->iocom);
	TCHECK(msg->circuit == &s->iocom->circuit0);
	if (msg->state != NULL && msg->state->func != NULL) {
		msg->state->func(msg);
	} else if (msg->state != NULL) {
		remote_txn(s, msg);
	} else if ((cmd & DMSGF_BASECMDMASK) == DMSG_DBG_SHELL) {
		TCHECK((cmd & (DMSGF_CREATE | DMSGF_DELETE | DMSGF_REPLY |
		    DMSGF_ABORT)) == 0);
		k = check_aux(msg);
		if (k >= 0) {
			TCHECK_EQ(s->oneway_seen[k], 0);
			s->oneway_seen[k]++;
			s->oneway_rx++;
		}
	} else if ((cmd & DMSGF_BASECMDMASK) == DMSG_LNK_ERROR) {
		/* The last message after a link loss. */
		TCHECK_EQ(msg->any.head.error, DMSG_IOQ_ERROR_EOF);
		s->final_error++;
	} else {
		TCHECK(!"unexpected one-way message");
	}
	check_ready(s);
}

/* First call: open the transactions. Later: A stops when both are ready. */
static void
signal_cb(dmsg_iocom_t *iocom)
{
	struct side *s = side_of(iocom);
	dmsg_msg_t *msg;
	int k;

	if (!s->started) {
		s->started = 1;
		for (k = 0; k < NSIZES; k++) {
			s->normal[k].side = s;
			s->normal[k].kind = KIND_NORMAL;
			s->normal[k].index = k;
			msg = dmsg_msg_alloc(&iocom->circuit0, sizes[k],
			    DMSG_LNK_PING | DMSGF_CREATE, normal_func,
			    &s->normal[k]);
			TCHECK(msg != NULL);
			if (msg == NULL)
				continue;
			TCHECK(msg->state != NULL);
			TCHECK(msg->state->any.any == &s->normal[k]);
			TCHECK(msg->state->func == normal_func);
			TCHECK(msg->state->msg == msg);
			TCHECK_EQ(msg->any.head.msgid, msg->state->msgid);
			TCHECK(msg->state->msgid != 0);
			fill_aux(msg, sizes[k]);
			dmsg_msg_write(msg);
		}
		for (k = 0; k < NHOLD; k++) {
			s->hold[k].side = s;
			s->hold[k].kind = KIND_HOLD;
			s->hold[k].index = k;
			s->hold_remote_c[k].side = s;
			s->hold_remote_c[k].kind = KIND_HOLD_REMOTE;
			s->hold_remote_c[k].index = k;
			msg = dmsg_msg_alloc(&iocom->circuit0, 0,
			    DMSG_BLK_OPEN | DMSGF_CREATE, hold_func,
			    &s->hold[k]);
			TCHECK(msg != NULL);
			if (msg == NULL)
				continue;
			TCHECK_EQ(msg->hdr_size, 128);
			msg->any.blk_open.modes = (uint32_t)(HOLD_MODES + k);
			dmsg_msg_write(msg);
		}
	}
	pthread_mutex_lock(&ready_mtx);
	maybe_stop_locked(s);
	pthread_mutex_unlock(&ready_mtx);
}

static void *
run_side(void *arg)
{
	struct side *s = arg;
	struct dmsg_iocom iocom;	/* on the stack, as hammer2 does */
	char want[32];
	dmsg_msg_t *msg;
	int k;

	pthread_mutex_lock(&ready_mtx);
	s->iocom = &iocom;
	pthread_mutex_unlock(&ready_mtx);
	dmsg_iocom_init(&iocom, s->fd, -1, signal_cb, rcvmsg_cb, NULL, NULL);
	TCHECK_EQ(iocom.sock_fd, s->fd);
	TCHECK_EQ(iocom.alt_fd, -1);
	TCHECK_EQ(iocom.flags, DMSG_IOCOMF_RREQ | DMSG_IOCOMF_CLOSEALT |
	    DMSG_IOCOMF_SWORK);
	TCHECK(iocom.signal_callback == signal_cb);
	TCHECK(iocom.rcvmsg_callback == rcvmsg_cb);
	TCHECK(iocom.circuit0.iocom == &iocom);
	TCHECK_EQ(iocom.circuit0.msgid, 0);
	TCHECK_EQ(iocom.circuit0.refs, 1);
	snprintf(want, sizeof(want), "iocom-%p", (void *)&iocom);
	TCHECK(iocom.label != NULL && strcmp(iocom.label, want) == 0);
	dmsg_iocom_label(&iocom, "side-%c-%d", s->name, 42);
	snprintf(want, sizeof(want), "side-%c-42", s->name);
	TCHECK(iocom.label != NULL && strcmp(iocom.label, want) == 0);

	/* One-way messages, written before the core loop runs. */
	for (k = 0; k < NSIZES; k++) {
		msg = dmsg_msg_alloc(&iocom.circuit0, sizes[k], DMSG_DBG_SHELL,
		    NULL, NULL);
		TCHECK(msg != NULL);
		if (msg == NULL)
			continue;
		TCHECK(msg->state == NULL);
		TCHECK(msg->iocom == &iocom);
		TCHECK(msg->circuit == &iocom.circuit0);
		TCHECK_EQ(msg->aux_size, sizes[k]);
		TCHECK_EQ(msg->hdr_size, 64);
		TCHECK_EQ(msg->any.head.cmd, DMSG_DBG_SHELL);
		TCHECK((sizes[k] == 0) == (msg->aux_data == NULL));
		fill_aux(msg, sizes[k]);
		dmsg_msg_write(msg);
	}
	/* A transaction opened and dropped before anything was sent. */
	msg = dmsg_msg_alloc(&iocom.circuit0, 100, DMSG_LNK_PING | DMSGF_CREATE,
	    normal_func, NULL);
	TCHECK(msg != NULL && msg->state != NULL);
	dmsg_msg_free(msg);

	dmsg_iocom_core(&iocom);

	TCHECK(iocom.flags & DMSG_IOCOMF_EOF);
	TCHECK_EQ(iocom.ioq_rx.error, DMSG_IOQ_ERROR_EOF);
	pthread_mutex_lock(&ready_mtx);
	s->iocom = NULL;
	pthread_mutex_unlock(&ready_mtx);
	dmsg_iocom_done(&iocom);
	TCHECK(iocom.label == NULL);
	TCHECK_EQ(iocom.sock_fd, -1);
	return NULL;
}

int
main(void)
{
	pthread_t th[2];
	int fds[2];
	int i, k;

	alarm(120);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
	sides[0].name = 'A';
	sides[0].fd = fds[0];
	sides[1].name = 'B';
	sides[1].fd = fds[1];
	for (i = 0; i < 2; i++)
		CHECK(pthread_create(&th[i], NULL, run_side, &sides[i]) == 0);
	for (i = 0; i < 2; i++)
		CHECK(pthread_join(th[i], NULL) == 0);

	for (i = 0; i < 2; i++) {
		struct side *s = &sides[i];

		CHECK(s->ready);
		CHECK_EQ(s->oneway_rx, NSIZES);
		CHECK_EQ(s->normal_done, NSIZES);
		CHECK_EQ(s->remote_normal_done, NSIZES);
		CHECK_EQ(s->hold_acked, NHOLD);
		CHECK_EQ(s->hold_remote, NHOLD);
		CHECK_EQ(s->final_error, 1);
		for (k = 0; k < NSIZES; k++) {
			CHECK_EQ(s->oneway_seen[k], 1);
			CHECK_EQ(s->normal[k].done, 1);
			CHECK_EQ(s->normal[k].calls, 2);
			CHECK_EQ(s->normal[k].aborts, 0);
		}
		for (k = 0; k < NHOLD; k++) {
			CHECK_EQ(s->hold[k].aborts, 1);
			CHECK_EQ(s->hold[k].calls, 2);
			CHECK_EQ(s->hold_remote_c[k].aborts, 1);
			CHECK_EQ(s->hold_remote_c[k].calls, 1);
		}
	}
	return check_exit("iocom");
}
