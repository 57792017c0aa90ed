/*
 * The alt fd of an iocom, as hammer2's "debug" shell uses stdin: A runs
 * dmsg_iocom_core with a pipe as alt fd; its altmsg callback reads a line
 * from iocom->alt_fd and sends it as a one-way DBG_SHELL message, and at
 * the end of its input sets DMSG_IOCOMF_EOF. B (another thread) receives
 * the text and sees the link close. dmsg_iocom_done closes the alt fd
 * (DMSG_IOCOMF_CLOSEALT). Also: dmsg_iocom_restate from the signal
 * callback, and a hung-up alt fd does not make the loop spin.
 */
#define _DEFAULT_SOURCE
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <dmsg.h>

#include "check.h"

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

static int sock[2];
static int pipefd[2];
static int alt_calls;
static int alt_eof;
static int signal_calls;
static int restated_calls;
static int b_got_text;
static int b_final_error;

static void
a_altmsg(dmsg_iocom_t *iocom)
{
	char buf[128];
	dmsg_msg_t *msg;
	ssize_t n;

	alt_calls++;
	n = read(iocom->alt_fd, buf, sizeof(buf));
	if (n > 0) {
		msg = dmsg_msg_alloc(&iocom->circuit0, (size_t)n + 1,
		    DMSG_DBG_SHELL, NULL, NULL);
		TCHECK(msg != NULL);
		if (msg == NULL)
			return;
		memcpy(msg->aux_data, buf, (size_t)n);
		msg->aux_data[n] = 0;
		dmsg_msg_write(msg);
	} else if (n == 0) {
		alt_eof++;
		iocom->flags |= DMSG_IOCOMF_EOF;
	}
}

static void
a_rcvmsg(dmsg_msg_t *msg)
{
	(void)msg;
}

static void
a_restated(dmsg_iocom_t *iocom)
{
	(void)iocom;
	restated_calls++;
}

static void
a_signal(dmsg_iocom_t *iocom)
{
	signal_calls++;
	/* As the master service does after authentication. */
	dmsg_iocom_restate(iocom, a_restated, a_rcvmsg);
	TCHECK(iocom->signal_callback == a_restated);
	TCHECK(iocom->rcvmsg_callback == a_rcvmsg);
}

static void
b_rcvmsg(dmsg_msg_t *msg)
{
	uint32_t cmd = msg->any.head.cmd;

	if ((cmd & DMSGF_BASECMDMASK) == DMSG_DBG_SHELL) {
		TCHECK(msg->aux_size == 7);
		if (msg->aux_size == 7 &&
		    strcmp(msg->aux_data, "hello\n") == 0)
			b_got_text++;
	} else if ((cmd & DMSGF_BASECMDMASK) == DMSG_LNK_ERROR) {
		TCHECK(msg->state == NULL);
		TCHECK_EQ(msg->any.head.error, DMSG_IOQ_ERROR_EOF);
		b_final_error++;
	} else {
		TCHECK(!"unexpected message");
	}
}

static void *
run_b(void *arg)
{
	struct dmsg_iocom iocom;

	(void)arg;
	dmsg_iocom_init(&iocom, sock[1], -1, NULL, b_rcvmsg, NULL, NULL);
	TCHECK_EQ(iocom.flags, DMSG_IOCOMF_RREQ | DMSG_IOCOMF_CLOSEALT);
	dmsg_iocom_core(&iocom);
	TCHECK_EQ(iocom.ioq_rx.error, DMSG_IOQ_ERROR_EOF);
	dmsg_iocom_done(&iocom);
	return NULL;
}

int
main(void)
{
	struct dmsg_iocom iocom;
	pthread_t b;
	int alt;

	alarm(60);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sock) == 0);
	CHECK(pipe(pipefd) == 0);
	alt = pipefd[0];
	CHECK(pthread_create(&b, NULL, run_b, NULL) == 0);

	dmsg_iocom_init(&iocom, sock[0], alt, a_signal, NULL, NULL, a_altmsg);
	CHECK_EQ(iocom.alt_fd, alt);
	CHECK(iocom.flags & DMSG_IOCOMF_CLOSEALT);
	CHECK(write(pipefd[1], "hello\n", 6) == 6);
	close(pipefd[1]);
	dmsg_iocom_core(&iocom);
	CHECK(iocom.flags & DMSG_IOCOMF_EOF);
	dmsg_iocom_done(&iocom);
	CHECK_EQ(iocom.alt_fd, -1);
	/* CLOSEALT: the caller's alt fd is closed. */
	errno = 0;
	CHECK(fcntl(alt, F_GETFD) == -1 && errno == EBADF);
	CHECK(pthread_join(b, NULL) == 0);

	CHECK_EQ(signal_calls, 1);
	CHECK_EQ(restated_calls, 1);
	CHECK(alt_calls >= 2);
	CHECK(alt_eof >= 1);
	CHECK_EQ(b_got_text, 1);
	CHECK_EQ(b_final_error, 1);
	return check_exit("iocom_alt");
}
