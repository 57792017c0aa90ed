/*
 * Circuit references and dmsg_circuit_relay on a link that has no
 * virtual circuits: every message holds one reference on msg->circuit
 * from dmsg_msg_alloc until it is written or freed, dmsg_circuit_hold and
 * dmsg_circuit_drop adjust the count, circuit0 never drops below 1, a
 * message allocated on circuit0 carries head.circuit 0, and relaying a
 * message that is not on a relayed circuit (or NULL) is refused with
 * DMSG_IOQ_ERROR_BAD_CIRCUIT instead of crashing.
 */
#include <sys/socket.h>
#include <unistd.h>

#include <dmsg.h>

#include "check.h"

int
main(void)
{
	dmsg_iocom_t iocom;
	dmsg_circuit_t *c0;
	dmsg_msg_t *m1, *m2;
	int sv[2];

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	dmsg_iocom_init(&iocom, sv[0], -1, NULL, NULL, NULL, NULL);
	c0 = &iocom.circuit0;
	CHECK_EQ(c0->msgid, 0);
	CHECK_EQ(c0->refs, 1);

	/* Each message holds one reference until it is freed. */
	m1 = dmsg_msg_alloc(c0, 0, DMSG_LNK_PING, NULL, NULL);
	CHECK(m1 != NULL);
	CHECK(m1->circuit == c0);
	CHECK_EQ(m1->any.head.circuit, 0);
	CHECK_EQ(c0->refs, 2);
	m2 = dmsg_msg_alloc(c0, 16, DMSG_LNK_PING | DMSGF_CREATE, NULL, NULL);
	CHECK(m2 != NULL);
	CHECK(m2->state != NULL);
	CHECK(m2->state->circuit == c0);
	/* The message and its transaction's state each hold one. */
	CHECK_EQ(c0->refs, 4);

	/* Not on a relayed circuit: refused, nothing changes. */
	CHECK_EQ(dmsg_circuit_relay(m1), DMSG_IOQ_ERROR_BAD_CIRCUIT);
	CHECK_EQ(dmsg_circuit_relay(NULL), DMSG_IOQ_ERROR_BAD_CIRCUIT);
	CHECK_EQ(c0->refs, 4);

	/* The user's own references. */
	dmsg_circuit_hold(c0);
	CHECK_EQ(c0->refs, 5);
	dmsg_circuit_drop(c0);
	dmsg_circuit_drop_locked(NULL);
	dmsg_circuit_hold(NULL);
	CHECK_EQ(c0->refs, 4);

	dmsg_msg_free(m2);
	CHECK_EQ(c0->refs, 2);
	dmsg_msg_free(m1);
	CHECK_EQ(c0->refs, 1);

	/* circuit0 is never freed: drops below 1 do nothing. */
	dmsg_circuit_drop(c0);
	dmsg_circuit_drop_locked(c0);
	CHECK_EQ(c0->refs, 1);

	dmsg_iocom_done(&iocom);
	close(sv[1]);
	return check_exit("circuit_refs");
}
