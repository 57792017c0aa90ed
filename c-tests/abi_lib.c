/*
 * The C view of the library structs of <dmsg.h> (C-ABI.md section 3,
 * seed era, x86_64): sizes and member offsets of struct dmsg_iocom,
 * dmsg_circuit, dmsg_state, dmsg_msg, dmsg_ioq and dmsg_media, the
 * typedefs, and the small helpers that need no link (dmsg_alloc,
 * dmsg_free, dmsg_uuid_to_str, dmsg_peer_type_to_str,
 * dmsg_pfs_type_to_str, dmsg_basecmd_str, DMsgDebugOpt).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <dmsg.h>

#include "check.h"

#define OFF(type, member, want) CHECK_EQ(offsetof(type, member), want)

static void
check_layout(void)
{
	CHECK_EQ(sizeof(dmsg_circuit_t), 128);
	OFF(struct dmsg_circuit, rbnode, 0);
	OFF(struct dmsg_circuit, msgid, 32);
	OFF(struct dmsg_circuit, iocom, 40);
	OFF(struct dmsg_circuit, staterd_tree, 48);
	OFF(struct dmsg_circuit, statewr_tree, 72);
	OFF(struct dmsg_circuit, peer, 96);
	OFF(struct dmsg_circuit, state, 104);
	OFF(struct dmsg_circuit, span_state, 112);
	OFF(struct dmsg_circuit, is_relay, 120);
	OFF(struct dmsg_circuit, refs, 124);

	CHECK_EQ(sizeof(dmsg_media_t), 48);
	OFF(struct dmsg_media, entry, 0);
	OFF(struct dmsg_media, mediaid, 16);
	OFF(struct dmsg_media, refs, 32);
	OFF(struct dmsg_media, usrhandle, 40);

	CHECK_EQ(sizeof(dmsg_state_t), 120);
	OFF(struct dmsg_state, rbnode, 0);
	OFF(struct dmsg_state, iocom, 32);
	OFF(struct dmsg_state, circuit, 40);
	OFF(struct dmsg_state, icmd, 48);
	OFF(struct dmsg_state, txcmd, 52);
	OFF(struct dmsg_state, rxcmd, 56);
	OFF(struct dmsg_state, msgid, 64);
	OFF(struct dmsg_state, flags, 72);
	OFF(struct dmsg_state, error, 76);
	OFF(struct dmsg_state, refs, 80);
	OFF(struct dmsg_state, msg, 88);
	OFF(struct dmsg_state, func, 96);
	OFF(struct dmsg_state, any, 104);
	OFF(struct dmsg_state, any.any, 104);
	OFF(struct dmsg_state, any.circ, 104);
	OFF(struct dmsg_state, any.conn, 104);
	OFF(struct dmsg_state, media, 112);

	CHECK_EQ(sizeof(dmsg_msg_t), 2112);
	OFF(struct dmsg_msg, qentry, 0);
	OFF(struct dmsg_msg, iocom, 16);
	OFF(struct dmsg_msg, circuit, 24);
	OFF(struct dmsg_msg, state, 32);
	OFF(struct dmsg_msg, hdr_size, 40);
	OFF(struct dmsg_msg, aux_size, 48);
	OFF(struct dmsg_msg, aux_data, 56);
	OFF(struct dmsg_msg, any, 64);
	OFF(struct dmsg_msg, any.head.cmd, 64 + 32);
	OFF(struct dmsg_msg, any.lnk_circ.target, 64 + 72);

	CHECK_EQ(sizeof(dmsg_ioq_t), 8496);
	OFF(struct dmsg_ioq, state, 0);
	OFF(struct dmsg_ioq, fifo_beg, 8);
	OFF(struct dmsg_ioq, unaligned_aux_size, 56);
	OFF(struct dmsg_ioq, error, 64);
	OFF(struct dmsg_ioq, seq, 68);
	OFF(struct dmsg_ioq, msgcount, 72);
	OFF(struct dmsg_ioq, ctx, 80);
	CHECK_EQ(sizeof(((struct dmsg_ioq *)0)->ctx), 168);
	OFF(struct dmsg_ioq, iv, 248);
	OFF(struct dmsg_ioq, msg, 280);
	OFF(struct dmsg_ioq, msgq, 288);
	OFF(struct dmsg_ioq, buf, 304);

	CHECK_EQ(sizeof(dmsg_msg_queue_t), 16);

	CHECK_EQ(sizeof(dmsg_iocom_t), 17280);
	OFF(struct dmsg_iocom, label, 0);
	OFF(struct dmsg_iocom, ioq_rx, 8);
	OFF(struct dmsg_iocom, ioq_rx.error, 8 + 64);
	OFF(struct dmsg_iocom, ioq_tx, 8504);
	OFF(struct dmsg_iocom, freeq, 17000);
	OFF(struct dmsg_iocom, freeq_aux, 17016);
	OFF(struct dmsg_iocom, sock_fd, 17032);
	OFF(struct dmsg_iocom, alt_fd, 17036);
	OFF(struct dmsg_iocom, wakeupfds, 17040);
	OFF(struct dmsg_iocom, flags, 17048);
	OFF(struct dmsg_iocom, rxmisc, 17052);
	OFF(struct dmsg_iocom, txmisc, 17056);
	OFF(struct dmsg_iocom, signal_callback, 17064);
	OFF(struct dmsg_iocom, altmsg_callback, 17072);
	OFF(struct dmsg_iocom, rcvmsg_callback, 17080);
	OFF(struct dmsg_iocom, dbgmsg_callback, 17088);
	OFF(struct dmsg_iocom, circuit_tree, 17096);
	OFF(struct dmsg_iocom, circuit0, 17120);
	OFF(struct dmsg_iocom, circuit0.msgid, 17120 + 32);
	OFF(struct dmsg_iocom, txmsgq, 17248);
	OFF(struct dmsg_iocom, conn, 17264);
	OFF(struct dmsg_iocom, mtx, 17272);
}

/* The callback members take the seed-era function types. */
static void on_msg(dmsg_msg_t *msg) { (void)msg; }
static void on_iocom(dmsg_iocom_t *iocom) { (void)iocom; }

static void
check_callback_types(void)
{
	struct dmsg_iocom io;
	struct dmsg_state st;

	memset(&io, 0, sizeof(io));
	memset(&st, 0, sizeof(st));
	io.signal_callback = on_iocom;
	io.altmsg_callback = on_iocom;
	io.rcvmsg_callback = on_msg;
	io.dbgmsg_callback = on_msg;
	st.func = on_msg;
	st.any.any = &io;
	CHECK(st.any.circ == (void *)&io);
	CHECK(io.dbgmsg_callback == on_msg);
}

static void
check_helpers(void)
{
	uuid_t u;
	char *s = NULL;
	unsigned char *p;
	size_t i;

	p = dmsg_alloc(100);
	CHECK(p != NULL);
	for (i = 0; p != NULL && i < 100; i++)
		CHECK_EQ(p[i], 0);
	dmsg_free(p);

	memset(&u, 0, sizeof(u));
	u.time_low = 0x01234567;
	u.time_mid = 0x89ab;
	u.time_hi_and_version = 0xcdef;
	u.clock_seq_hi_and_reserved = 0x10;
	u.clock_seq_low = 0x32;
	for (i = 0; i < 6; i++)
		u.node[i] = (uint8_t)(0x50 + i);
	CHECK(dmsg_uuid_to_str(&u, &s) == s);
	CHECK(s != NULL && strcmp(s, "01234567-89ab-cdef-1032-505152535455") == 0);
	/* The previous string is freed (LeakSanitizer would see it). */
	memset(&u, 0, sizeof(u));
	dmsg_uuid_to_str(&u, &s);
	CHECK(s != NULL && strcmp(s, "00000000-0000-0000-0000-000000000000") == 0);
	free(s);

	CHECK(strcmp(dmsg_peer_type_to_str(DMSG_PEER_CLUSTER), "CLUSTER") == 0);
	CHECK(strcmp(dmsg_peer_type_to_str(DMSG_PEER_HAMMER2), "HAMMER2") == 0);
	CHECK(strcmp(dmsg_peer_type_to_str(200), "?PEERTYPE?") == 0);
	CHECK(strcmp(dmsg_pfs_type_to_str(DMSG_PFSTYPE_SERVER), "SERVER") == 0);
	CHECK(strcmp(dmsg_pfs_type_to_str(200), "?PFSTYPE?") == 0);

	CHECK(strcmp(dmsg_basecmd_str(DMSG_LNK_CONN | DMSGF_CREATE), "LNK_CONN") == 0);
	CHECK(strcmp(dmsg_basecmd_str(DMSG_LNK_ERROR | DMSGF_DELETE), "LNK_RETURN") == 0);
	CHECK(strcmp(dmsg_basecmd_str(DMSG_DBG_SHELL), "DBG_SHELL") == 0);
	CHECK(strcmp(dmsg_msg_str(NULL), "(null)") == 0);

	CHECK_EQ(DMsgDebugOpt, 0);
	DMsgDebugOpt = 3;
	CHECK_EQ(DMsgDebugOpt, 3);
	DMsgDebugOpt = 0;

	/* NULL arguments are ignored, not crashes. */
	dmsg_iocom_init(NULL, -1, -1, NULL, NULL, NULL, NULL);
	dmsg_iocom_core(NULL);
	dmsg_iocom_done(NULL);
	dmsg_iocom_signal(NULL);
	dmsg_iocom_label(NULL, "x%d", 1);
	CHECK(dmsg_msg_alloc(NULL, 0, DMSG_LNK_PING, NULL, NULL) == NULL);
	dmsg_msg_write(NULL);
	dmsg_msg_free(NULL);
	dmsg_msg_reply(NULL, 0);
	dmsg_msg_result(NULL, 0);
	dmsg_state_reply(NULL, 0);
	dmsg_state_result(NULL, 0);
}

/* An iocom over a bad fd: initialized, marked EOF, cleaned up. */
static void
check_bad_fd(void)
{
	struct dmsg_iocom iocom;

	dmsg_iocom_init(&iocom, -1, -1, NULL, NULL, NULL, NULL);
	CHECK(iocom.flags & DMSG_IOCOMF_EOF);
	CHECK_EQ(iocom.ioq_rx.error, DMSG_IOQ_ERROR_SOCK);
	CHECK(iocom.label != NULL && strncmp(iocom.label, "iocom-", 6) == 0);
	CHECK(iocom.circuit0.iocom == &iocom);
	CHECK_EQ(iocom.circuit0.msgid, 0);
	CHECK_EQ(iocom.circuit0.refs, 1);
	dmsg_iocom_label(&iocom, "bad-%s-%d", "fd", 7);
	CHECK(iocom.label != NULL && strcmp(iocom.label, "bad-fd-7") == 0);
	dmsg_iocom_core(&iocom); /* returns at once */
	dmsg_iocom_done(&iocom);
	CHECK(iocom.label == NULL);
}

int
main(void)
{
	check_layout();
	check_callback_types();
	check_helpers();
	check_bad_fd();
	return check_exit("abi_lib");
}
