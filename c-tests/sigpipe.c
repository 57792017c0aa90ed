/*
 * A peer that goes away while we write must not kill the program: the
 * library sends on sockets with MSG_NOSIGNAL, so the write fails with
 * EPIPE, the link goes down, and dmsg_iocom_core returns. This program
 * deliberately leaves SIGPIPE at its default action (terminate).
 */
#include <dmsg.h>

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"

static int aborts;
static int final_error;

static void
rcvmsg(dmsg_msg_t *msg)
{
	uint32_t cmd = msg->any.head.cmd;

	if (msg->state != NULL && (cmd & DMSGF_ABORT))
		aborts++;
	if (msg->state == NULL && (cmd & DMSGF_BASECMDMASK) == DMSG_LNK_ERROR)
		final_error = (int)msg->any.head.error;
}

static void
signal_cb(dmsg_iocom_t *iocom)
{
	dmsg_msg_t *msg;
	int i;

	/* One open transaction, then far more data than a socket buffer. */
	msg = dmsg_msg_alloc(&iocom->circuit0, 0, DMSG_LNK_SPAN | DMSGF_CREATE,
	    NULL, NULL);
	dmsg_msg_write(msg);
	for (i = 0; i < 64; i++) {
		msg = dmsg_msg_alloc(&iocom->circuit0, 65536, DMSG_DBG_SHELL,
		    NULL, NULL);
		memset(msg->aux_data, 'x', 65536);
		dmsg_msg_write(msg);
	}
}

int
main(void)
{
	struct dmsg_iocom iocom;
	int sock[2];

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sock) == 0);
	/* The peer is gone before we say anything. */
	close(sock[1]);
	dmsg_iocom_init(&iocom, sock[0], -1, signal_cb, rcvmsg, NULL, NULL);
	dmsg_iocom_core(&iocom);
	dmsg_iocom_done(&iocom);

	/* Still alive: the link went down with an error instead. */
	CHECK_EQ(aborts, 1);
	CHECK(final_error != 0);
	return check_exit("sigpipe");
}
