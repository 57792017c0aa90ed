/*
 * The C view of the library: struct sizes and member offsets of every
 * wire struct against WIRE.md (x86_64), constant values, the macros,
 * the CRC functions, dmsg_bswap_head, and the worked examples of
 * WIRE.md section 8 built through the C structs.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <dmsg.h>

#include "check.h"

#define OFF(type, member, want) CHECK_EQ(offsetof(type, member), want)

/* Alignment of a type, without C11 _Alignof. */
#define ALIGNOF(type) offsetof(struct { char c; type t; }, t)

static void
check_layout(void)
{
	CHECK_EQ(sizeof(uuid_t), 16);
	CHECK_EQ(sizeof(struct uuid), 16);
	OFF(struct uuid, time_low, 0);
	OFF(struct uuid, time_mid, 4);
	OFF(struct uuid, time_hi_and_version, 6);
	OFF(struct uuid, clock_seq_hi_and_reserved, 8);
	OFF(struct uuid, clock_seq_low, 9);
	OFF(struct uuid, node, 10);

	CHECK_EQ(sizeof(dmsg_hdr_t), 64);
	CHECK_EQ(sizeof(struct dmsg_hdr), 64);
	OFF(dmsg_hdr_t, magic, 0x00);
	OFF(dmsg_hdr_t, reserved02, 0x02);
	OFF(dmsg_hdr_t, salt, 0x04);
	OFF(dmsg_hdr_t, msgid, 0x08);
	OFF(dmsg_hdr_t, circuit, 0x10);
	OFF(dmsg_hdr_t, reserved18, 0x18);
	OFF(dmsg_hdr_t, cmd, 0x20);
	OFF(dmsg_hdr_t, aux_crc, 0x24);
	OFF(dmsg_hdr_t, aux_bytes, 0x28);
	OFF(dmsg_hdr_t, error, 0x2C);
	OFF(dmsg_hdr_t, aux_descr, 0x30);
	OFF(dmsg_hdr_t, reserved38, 0x38);
	OFF(dmsg_hdr_t, hdr_crc, 0x3C);
	CHECK_EQ(DMSG_HDR_CRCOFF, offsetof(dmsg_hdr_t, salt));
	CHECK_EQ(DMSG_HDR_CRCOFF + DMSG_HDR_CRCBYTES, sizeof(dmsg_hdr_t));

	CHECK_EQ(sizeof(struct dmsg_lnk_auth), 128);
	OFF(struct dmsg_lnk_auth, head, 0);
	OFF(struct dmsg_lnk_auth, dummy, 64);

	CHECK_EQ(sizeof(dmsg_lnk_conn_t), 456);
	OFF(dmsg_lnk_conn_t, head, 0);
	OFF(dmsg_lnk_conn_t, mediaid, 64);
	OFF(dmsg_lnk_conn_t, pfs_clid, 80);
	OFF(dmsg_lnk_conn_t, pfs_fsid, 96);
	OFF(dmsg_lnk_conn_t, peer_mask, 112);
	OFF(dmsg_lnk_conn_t, peer_type, 120);
	OFF(dmsg_lnk_conn_t, pfs_type, 121);
	OFF(dmsg_lnk_conn_t, proto_version, 122);
	OFF(dmsg_lnk_conn_t, status, 124);
	OFF(dmsg_lnk_conn_t, rnss, 128);
	OFF(dmsg_lnk_conn_t, reserved02, 132);
	OFF(dmsg_lnk_conn_t, reserved03, 140);
	OFF(dmsg_lnk_conn_t, pfs_mask, 192);
	OFF(dmsg_lnk_conn_t, cl_label, 200);
	OFF(dmsg_lnk_conn_t, fs_label, 328);
	CHECK_EQ(sizeof(((dmsg_lnk_conn_t *)0)->cl_label), 128);
	CHECK_EQ(sizeof(((dmsg_lnk_conn_t *)0)->fs_label), 128);

	CHECK_EQ(sizeof(dmsg_media_block_t), 16);
	OFF(dmsg_media_block_t, bytes, 0);
	OFF(dmsg_media_block_t, blksize, 8);

	CHECK_EQ(sizeof(dmsg_lnk_span_t), 432);
	OFF(dmsg_lnk_span_t, head, 0);
	OFF(dmsg_lnk_span_t, pfs_clid, 64);
	OFF(dmsg_lnk_span_t, pfs_fsid, 80);
	OFF(dmsg_lnk_span_t, pfs_type, 96);
	OFF(dmsg_lnk_span_t, peer_type, 97);
	OFF(dmsg_lnk_span_t, proto_version, 98);
	OFF(dmsg_lnk_span_t, status, 100);
	OFF(dmsg_lnk_span_t, reserved02, 104);
	OFF(dmsg_lnk_span_t, dist, 112);
	OFF(dmsg_lnk_span_t, rnss, 116);
	OFF(dmsg_lnk_span_t, media, 120);
	OFF(dmsg_lnk_span_t, media.reserved03, 120);
	OFF(dmsg_lnk_span_t, media.block.bytes, 120);
	OFF(dmsg_lnk_span_t, media.block.blksize, 128);
	OFF(dmsg_lnk_span_t, cl_label, 176);
	OFF(dmsg_lnk_span_t, fs_label, 304);
	CHECK_EQ(sizeof(((dmsg_lnk_span_t *)0)->media), 56);

	CHECK_EQ(sizeof(dmsg_lnk_circ_t), 80);
	OFF(dmsg_lnk_circ_t, head, 0);
	OFF(dmsg_lnk_circ_t, reserved01, 64);
	OFF(dmsg_lnk_circ_t, target, 72);

	CHECK_EQ(sizeof(dmsg_vol_data_t), 128);
	OFF(dmsg_vol_data_t, copyid, 0x00);
	OFF(dmsg_vol_data_t, inprog, 0x01);
	OFF(dmsg_vol_data_t, chain_to, 0x02);
	OFF(dmsg_vol_data_t, chain_from, 0x03);
	OFF(dmsg_vol_data_t, flags, 0x04);
	OFF(dmsg_vol_data_t, error, 0x06);
	OFF(dmsg_vol_data_t, priority, 0x07);
	OFF(dmsg_vol_data_t, remote_pfs_type, 0x08);
	OFF(dmsg_vol_data_t, reserved08, 0x09);
	OFF(dmsg_vol_data_t, pfs_clid, 0x20);
	OFF(dmsg_vol_data_t, label, 0x30);
	OFF(dmsg_vol_data_t, path, 0x40);

	CHECK_EQ(sizeof(dmsg_lnk_volconf_t), 472);
	OFF(dmsg_lnk_volconf_t, head, 0);
	OFF(dmsg_lnk_volconf_t, copy, 64);
	OFF(dmsg_lnk_volconf_t, index, 192);
	OFF(dmsg_lnk_volconf_t, unused01, 196);
	OFF(dmsg_lnk_volconf_t, mediaid, 200);
	OFF(dmsg_lnk_volconf_t, reserved02, 216);

	CHECK_EQ(sizeof(dmsg_dbg_shell_t), 64);
	OFF(dmsg_dbg_shell_t, head, 0);

	CHECK_EQ(sizeof(dmsg_blk_open_t), 72);
	OFF(dmsg_blk_open_t, modes, 64);
	OFF(dmsg_blk_open_t, reserved01, 68);

	CHECK_EQ(sizeof(dmsg_blk_read_t), 96);
	OFF(dmsg_blk_read_t, keyid, 64);
	OFF(dmsg_blk_read_t, offset, 72);
	OFF(dmsg_blk_read_t, bytes, 80);
	OFF(dmsg_blk_read_t, flags, 84);
	OFF(dmsg_blk_read_t, reserved01, 88);
	OFF(dmsg_blk_read_t, reserved02, 92);
	CHECK_EQ(sizeof(dmsg_blk_write_t), 96);
	OFF(dmsg_blk_write_t, keyid, 64);
	OFF(dmsg_blk_write_t, offset, 72);
	OFF(dmsg_blk_write_t, bytes, 80);
	OFF(dmsg_blk_write_t, flags, 84);
	OFF(dmsg_blk_write_t, reserved02, 92);
	CHECK_EQ(sizeof(dmsg_blk_flush_t), 96);
	OFF(dmsg_blk_flush_t, keyid, 64);
	OFF(dmsg_blk_flush_t, offset, 72);
	OFF(dmsg_blk_flush_t, bytes, 80);
	OFF(dmsg_blk_flush_t, flags, 84);
	OFF(dmsg_blk_flush_t, reserved02, 92);
	CHECK_EQ(sizeof(dmsg_blk_freeblks_t), 96);
	OFF(dmsg_blk_freeblks_t, keyid, 64);
	OFF(dmsg_blk_freeblks_t, offset, 72);
	OFF(dmsg_blk_freeblks_t, bytes, 80);
	OFF(dmsg_blk_freeblks_t, flags, 84);
	OFF(dmsg_blk_freeblks_t, reserved02, 92);

	CHECK_EQ(sizeof(dmsg_blk_error_t), 144);
	OFF(dmsg_blk_error_t, keyid, 64);
	OFF(dmsg_blk_error_t, resid, 72);
	OFF(dmsg_blk_error_t, reserved02, 76);
	OFF(dmsg_blk_error_t, buf, 80);

	CHECK_EQ(sizeof(dmsg_any_t), 2048);
	CHECK_EQ(sizeof(dmsg_any_t), DMSG_HDR_MAX);
	CHECK_EQ(ALIGNOF(dmsg_any_t), 8);
	OFF(dmsg_any_t, buf, 0);
	OFF(dmsg_any_t, head.cmd, 0x20);
	OFF(dmsg_any_t, lnk_conn.cl_label, 200);
	OFF(dmsg_any_t, lnk_span.fs_label, 304);
	OFF(dmsg_any_t, lnk_circ.target, 72);
	OFF(dmsg_any_t, lnk_volconf.mediaid, 200);
	OFF(dmsg_any_t, blk_open.modes, 64);
	OFF(dmsg_any_t, blk_error.buf, 80);
	OFF(dmsg_any_t, blk_read.bytes, 80);
	OFF(dmsg_any_t, blk_write.bytes, 80);
	OFF(dmsg_any_t, blk_flush.bytes, 80);
	OFF(dmsg_any_t, blk_freeblks.bytes, 80);

	CHECK_EQ(sizeof(dmsg_handshake_t), 512);
	CHECK_EQ(ALIGNOF(dmsg_handshake_t), 4);
	OFF(dmsg_handshake_t, pad1, 0x000);
	OFF(dmsg_handshake_t, magic, 0x008);
	OFF(dmsg_handshake_t, version, 0x00A);
	OFF(dmsg_handshake_t, flags, 0x00C);
	OFF(dmsg_handshake_t, sess, 0x010);
	OFF(dmsg_handshake_t, verf, 0x050);
	OFF(dmsg_handshake_t, quickmsg, 0x060);
	OFF(dmsg_handshake_t, junk080, 0x080);
	OFF(dmsg_handshake_t, pad2, 0x100);
	OFF(dmsg_handshake_t, junk100, 0x108);
}

static void
check_constants(void)
{
	CHECK_EQ(DMSG_HDR_MAGIC, 0x4832);
	CHECK_EQ(DMSG_HDR_MAGIC_REV, 0x3248);
	CHECK_EQ(DMSG_ALIGN, 64);
	CHECK_EQ(DMSG_ALIGNMASK, 63);
	CHECK_EQ(DMSG_AUX_MAX, 65536);
	CHECK_EQ(DMSG_BUF_SIZE, 4 * DMSG_HDR_MAX);
	CHECK_EQ(DMSG_BUF_MASK, DMSG_BUF_SIZE - 1);

	/* Flags and masks, and that C sees them unsigned. */
	CHECK_EQ(DMSGF_CREATE, 0x80000000U);
	CHECK_EQ(DMSGF_DELETE, 0x40000000U);
	CHECK_EQ(DMSGF_REPLY, 0x20000000U);
	CHECK_EQ(DMSGF_ABORT, 0x10000000U);
	CHECK_EQ(DMSGF_FLAGS, 0xFF000000U);
	CHECK_EQ(DMSGF_CMDSWMASK,
	    DMSGF_CMDS | DMSGF_SIZE | DMSGF_PROTOS | DMSGF_REPLY);
	CHECK_EQ(DMSGF_CMDSWMASK, 0x20FFFFFFU);
	CHECK_EQ(DMSGF_BASECMDMASK, DMSGF_CMDS | DMSGF_SIZE | DMSGF_PROTOS);
	CHECK_EQ(DMSGF_TRANSMASK, DMSGF_BASECMDMASK | DMSGF_REPLY |
	    DMSGF_CREATE | DMSGF_DELETE);
	CHECK(DMSG_LNK_CONN * 0 - 1 > 0);
	CHECK(DMSGF_SIZE * 0 - 1 > 0);
	CHECK(DMSG_ERR_NOSUPP * 0 - 1 > 0);

	/* Command values, and the constructor macros that give them. */
	CHECK_EQ(DMSG_LNK_PAD, 0x00000001U);
	CHECK_EQ(DMSG_LNK_PING, 0x00000101U);
	CHECK_EQ(DMSG_LNK_AUTH, 0x00001002U);
	CHECK_EQ(DMSG_LNK_CONN, 0x00001108U);
	CHECK_EQ(DMSG_LNK_SPAN, 0x00001207U);
	CHECK_EQ(DMSG_LNK_CIRC, 0x00001302U);
	CHECK_EQ(DMSG_LNK_VOLCONF, 0x00002008U);
	CHECK_EQ(DMSG_LNK_ERROR, 0x000FFF01U);
	CHECK_EQ(DMSG_DBG_SHELL, 0x00100101U);
	CHECK_EQ(DMSG_BLK_OPEN, 0x00500102U);
	CHECK_EQ(DMSG_BLK_ERROR, 0x005FFF03U);
	CHECK_EQ(DMSG_LNK(0x000, dmsg_hdr), DMSG_LNK_PAD);
	CHECK_EQ(DMSG_LNK(0x001, dmsg_hdr), DMSG_LNK_PING);
	CHECK_EQ(DMSG_LNK(0x010, dmsg_lnk_auth), DMSG_LNK_AUTH);
	CHECK_EQ(DMSG_LNK(0x011, dmsg_lnk_conn), DMSG_LNK_CONN);
	CHECK_EQ(DMSG_LNK(0x012, dmsg_lnk_span), DMSG_LNK_SPAN);
	CHECK_EQ(DMSG_LNK(0x013, dmsg_lnk_circ), DMSG_LNK_CIRC);
	CHECK_EQ(DMSG_LNK(0x020, dmsg_lnk_volconf), DMSG_LNK_VOLCONF);
	CHECK_EQ(DMSG_LNK(0xFFF, dmsg_hdr), DMSG_LNK_ERROR);
	CHECK_EQ(DMSG_DBG(0x001, dmsg_dbg_shell), DMSG_DBG_SHELL);
	CHECK_EQ(DMSG_BLK(0x001, dmsg_blk_open), DMSG_BLK_OPEN);
	CHECK_EQ(DMSG_BLK(0x002, dmsg_blk_open), DMSG_BLK_CLOSE);
	CHECK_EQ(DMSG_BLK(0x003, dmsg_blk_read), DMSG_BLK_READ);
	CHECK_EQ(DMSG_BLK(0x004, dmsg_blk_write), DMSG_BLK_WRITE);
	CHECK_EQ(DMSG_BLK(0x005, dmsg_blk_flush), DMSG_BLK_FLUSH);
	CHECK_EQ(DMSG_BLK(0x006, dmsg_blk_freeblks), DMSG_BLK_FREEBLKS);
	CHECK_EQ(DMSG_BLK(0xFFF, dmsg_blk_error), DMSG_BLK_ERROR);
	CHECK_EQ(DMSG_HDR_ENCODE(dmsg_lnk_conn), 8);
	CHECK_EQ(DMSG_DOALIGN(0), 0);
	CHECK_EQ(DMSG_DOALIGN(1), 64);
	CHECK_EQ(DMSG_DOALIGN(64), 64);
	CHECK_EQ(DMSG_DOALIGN(65), 128);
	CHECK_EQ(DMSG_DOALIGN((size_t)5), 64);

	CHECK_EQ(DMSG_PEER_CLUSTER, 1);
	CHECK_EQ(DMSG_PEER_BLOCK, 2);
	CHECK_EQ(DMSG_PEER_HAMMER2, 3);
	CHECK_EQ(DMSG_PFSTYPE_SERVER, 3);
	CHECK_EQ(DMSG_PFSTYPE_MAX, 32);
	CHECK_EQ(DMSG_ERR_NOSUPP, 0x20);
	CHECK_EQ(DMSG_ERR_CANTCIRC, 0x24);
	CHECK_EQ(DMSG_COPYID_COUNT, 256);
	CHECK_EQ(DMSG_VOLF_CONN_RR | DMSG_VOLF_CONN_EF | DMSG_VOLF_CONN_PRI, 0xCF);

	/* <dmsg.h> */
	CHECK(strcmp(DMSG_DEFAULT_DIR, "/etc/hammer2") == 0);
	CHECK(strcmp(DMSG_PATH_REMOTE, "/etc/hammer2/remote") == 0);
	CHECK_EQ(DMSG_LISTEN_PORT, 987);
	CHECK_EQ(DMSG_CRYPTO_CHUNK_SIZE, DMSG_ALIGN);
	CHECK_EQ(DMSG_CRYPTO_GCM_IV_SIZE, 12);
	CHECK_EQ(DMSG_CRYPTO_GCM_KEY_SIZE, 32);
	CHECK_EQ(DMSG_IOQ_ERROR_SYNC, 1);
	CHECK_EQ(DMSG_IOQ_ERROR_XCRC, 6);
	CHECK_EQ(DMSG_IOQ_ERROR_MSGSEQ, 15);
	CHECK_EQ(DMSG_IOQ_ERROR_ASSYM, 24);
	CHECK_EQ(DMSG_IOQ_MAXIOVEC, 16);
	CHECK_EQ(DMSG_IOCOMF_EOF, 0x001);
	CHECK_EQ(DMSG_IOCOMF_CLOSEALT, 0x400);
	CHECK_EQ(DMSG_NODEOP_ADD, 1);
	CHECK_EQ(DMSG_NODEOP_DEL, 2);
}

static void
check_crc(void)
{
	unsigned char aux[64];

	CHECK_EQ(dmsg_icrc32("123456789", 9), 0xE3069283U);
	CHECK_EQ(dmsg_icrc32c("56789", 5, dmsg_icrc32("1234", 4)), 0xE3069283U);
	CHECK_EQ(dmsg_icrc32c("123456789", 9, 0), 0xE3069283U);
	CHECK_EQ(dmsg_icrc32("", 0), 0);
	CHECK_EQ(dmsg_icrc32(NULL, 0), 0);
	CHECK_EQ(dmsg_icrc32(NULL, 100), 0);
	CHECK_EQ(dmsg_icrc32c(NULL, 100, 0x12345678U), 0x12345678U);

	/* WIRE.md 8.3: "tree\0" padded with zeros to 64 bytes. */
	memset(aux, 0, sizeof(aux));
	memcpy(aux, "tree", 5);
	CHECK_EQ(dmsg_icrc32(aux, sizeof(aux)), 0xB1E3FFE0U);
}

/* hdr_crc of the first h bytes of a message, computed as the sender does. */
static uint32_t
hdr_crc(dmsg_any_t *any, size_t h)
{
	uint32_t saved = any->head.hdr_crc;
	uint32_t crc;

	any->head.hdr_crc = 0;
	crc = dmsg_icrc32(any, h);
	any->head.hdr_crc = saved;
	return crc;
}

static void
set_uuid(struct uuid *u, uint32_t time_low)
{
	static const uint8_t node[6] = { 0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f };

	u->time_low = time_low;
	u->time_mid = 0x6c1d;
	u->time_hi_and_version = 0x11e2;
	u->clock_seq_hi_and_reserved = 0x9d;
	u->clock_seq_low = 0x6a;
	memcpy(u->node, node, sizeof(node));
}

static void
check_wire_examples(void)
{
	static const unsigned char conn_head[64] = {
		0x32, 0x48, 0x00, 0x00, 0x00, 0x1e, 0x3c, 0x5a,
		0x00, 0x70, 0xc1, 0x01, 0x08, 0x00, 0x00, 0x00,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0x08, 0x11, 0x00, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0xb1, 0x2b, 0xae,
	};
	static const unsigned char span_uuids[32] = {
		0x3e, 0x1a, 0x8f, 0x3b, 0x1d, 0x6c, 0xe2, 0x11,
		0x9d, 0x6a, 0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f,
		0x10, 0x7c, 0x2e, 0x5d, 0x1d, 0x6c, 0xe2, 0x11,
		0x9d, 0x6a, 0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f,
	};
	static const unsigned char span_media[16] = {
		0x01, 0x00, 0x00, 0x00, 0x67, 0x45, 0x8b, 0x6b,
		0x00, 0x60, 0x11, 0xc1, 0xd1, 0x01, 0x00, 0x00,
	};
	static dmsg_any_t any;
	const unsigned char *b = (const unsigned char *)&any;

	/* 8.1: LNK_CONN | CREATE from dmsg_master_service(). */
	memset(&any, 0, sizeof(any));
	any.head.magic = DMSG_HDR_MAGIC;
	any.head.salt = 0x5a3c1e00U;
	any.head.msgid = 0x0000000801c17000ULL;
	any.head.cmd = DMSG_LNK_CONN | DMSGF_CREATE;
	any.lnk_conn.peer_mask = ~(uint64_t)0;
	any.lnk_conn.peer_type = DMSG_PEER_CLUSTER;
	any.lnk_conn.pfs_mask = ~(uint64_t)0;
	any.head.hdr_crc = hdr_crc(&any, (any.head.cmd & DMSGF_SIZE) * DMSG_ALIGN);
	CHECK_EQ(any.head.hdr_crc, 0xAE2BB120U);
	CHECK(memcmp(b, conn_head, sizeof(conn_head)) == 0);
	CHECK_EQ(b[0x70], 0xff);
	CHECK_EQ(b[0x78], 0x01);
	CHECK_EQ(b[0xc7], 0xff);
	CHECK_EQ(b[0xc8], 0x00);

	/* 8.2: LNK_SPAN | CREATE for a block device. */
	memset(&any, 0, sizeof(any));
	any.head.magic = DMSG_HDR_MAGIC;
	any.head.salt = 0x12345601U;
	any.head.msgid = 0x0000000801c2a400ULL;
	any.head.cmd = DMSG_LNK_SPAN | DMSGF_CREATE;
	set_uuid(&any.lnk_span.pfs_clid, 0x3b8f1a3eU);
	set_uuid(&any.lnk_span.pfs_fsid, 0x5d2e7c10U);
	any.lnk_span.pfs_type = DMSG_PFSTYPE_SERVER;
	any.lnk_span.peer_type = DMSG_PEER_BLOCK;
	any.lnk_span.dist = 1;
	any.lnk_span.rnss = 0x6b8b4567U;
	any.lnk_span.media.block.bytes = 2000398934016ULL;
	any.lnk_span.media.block.blksize = 512;
	strcpy(any.lnk_span.cl_label, "node1/da0");
	strcpy(any.lnk_span.fs_label, "WD-WCAV12345678");
	CHECK_EQ(DMSG_LNK_SPAN & DMSGF_SIZE, 448 / DMSG_ALIGN);
	CHECK_EQ(hdr_crc(&any, 448), 0x27070A7CU);
	CHECK(memcmp(b + 0x40, span_uuids, sizeof(span_uuids)) == 0);
	CHECK_EQ(b[0x60], 0x03);
	CHECK_EQ(b[0x61], 0x02);
	CHECK(memcmp(b + 0x70, span_media, sizeof(span_media)) == 0);
	CHECK_EQ(b[0x81], 0x02);
	CHECK(memcmp(b + 0xb0, "node1/da0", 10) == 0);
	CHECK(memcmp(b + 0x130, "WD-WCAV12345678", 16) == 0);

	/* 8.3: one-way DBG_SHELL "tree" (header part). */
	memset(&any, 0, sizeof(any));
	any.head.magic = DMSG_HDR_MAGIC;
	any.head.salt = 0x00abcd02U;
	any.head.cmd = DMSG_DBG_SHELL;
	any.head.aux_crc = 0xB1E3FFE0U;
	any.head.aux_bytes = 5;
	CHECK_EQ(hdr_crc(&any, sizeof(dmsg_dbg_shell_t)), 0x41E866A8U);

	/* 8.4: LNK_ERROR | REPLY | CREATE answering 8.1. */
	memset(&any, 0, sizeof(any));
	any.head.magic = DMSG_HDR_MAGIC;
	any.head.salt = 0x77665500U;
	any.head.msgid = 0x0000000801c17000ULL;
	any.head.cmd = DMSG_LNK_ERROR | DMSGF_REPLY | DMSGF_CREATE;
	CHECK_EQ(any.head.cmd, 0xA00FFF01U);
	CHECK_EQ(hdr_crc(&any, sizeof(dmsg_hdr_t)), 0x57DDBB15U);
}

static void
check_bswap(void)
{
	dmsg_hdr_t h, orig;

	memset(&orig, 0, sizeof(orig));
	orig.magic = DMSG_HDR_MAGIC;
	orig.reserved02 = 0x0102;
	orig.salt = 0x5a3c1e00U;
	orig.msgid = 0x0000000801c17000ULL;
	orig.circuit = 0x1122334455667788ULL;
	orig.reserved18 = 0x0a0b0c0d0e0f1011ULL;
	orig.cmd = DMSG_LNK_CONN | DMSGF_CREATE;
	orig.aux_crc = 0xB1E3FFE0U;
	orig.aux_bytes = 5;
	orig.error = DMSG_ERR_LOSTLINK;
	orig.aux_descr = 0x0102030405060708ULL;
	orig.reserved38 = 0xdeadbeefU;
	orig.hdr_crc = 0xAE2BB120U;

	h = orig;
	dmsg_bswap_head(&h);
	CHECK_EQ(h.magic, DMSG_HDR_MAGIC_REV);
	CHECK_EQ(h.reserved02, 0x0201);
	CHECK_EQ(h.salt, 0x001e3c5aU);
	CHECK_EQ(h.msgid, 0x0070c10108000000ULL);
	CHECK_EQ(h.circuit, 0x8877665544332211ULL);
	CHECK_EQ(h.reserved18, 0x11100f0e0d0c0b0aULL);
	CHECK_EQ(h.cmd, 0x08110080U);
	CHECK_EQ(h.aux_crc, 0xE0FFE3B1U);
	CHECK_EQ(h.aux_bytes, 0x05000000U);
	CHECK_EQ(h.error, 0x21000000U);
	CHECK_EQ(h.aux_descr, 0x0807060504030201ULL);
	CHECK_EQ(h.reserved38, 0xefbeaddeU);
	CHECK_EQ(h.hdr_crc, 0x20b12baeU);
	dmsg_bswap_head(&h);
	CHECK(memcmp(&h, &orig, sizeof(h)) == 0);
	dmsg_bswap_head(NULL);
}

int
main(void)
{
	check_layout();
	check_constants();
	check_crc();
	check_wire_examples();
	check_bswap();
	return check_exit("abi");
}
