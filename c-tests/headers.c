/*
 * The headers get along with common system headers included before
 * them, can be included twice, and give uuid_t as the BSD struct uuid.
 */
#define _POSIX_C_SOURCE 200809L

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dmsg.h>
#include <dmsg.h>
#include <sys/dmsg.h>

#include "check.h"

int
main(void)
{
	struct uuid s;
	uuid_t u;
	dmsg_lnk_conn_t conn;

	memset(&s, 0, sizeof(s));
	s.time_low = 0x3b8f1a3eU;
	s.node[5] = 0x5f;
	u = s;			/* uuid_t and struct uuid are one type */
	CHECK_EQ(u.time_low, 0x3b8f1a3eU);
	CHECK_EQ(u.node[5], 0x5f);

	memset(&conn, 0, sizeof(conn));
	conn.pfs_clid = u;
	CHECK(memcmp(&conn.pfs_clid, &s, sizeof(s)) == 0);
	CHECK_EQ((const char *)&conn.pfs_clid - (const char *)&conn, 80);
	return check_exit("headers");
}
