/*
 * A listener thread accepts on 127.0.0.1 (ephemeral port) and starts a
 * dmsg_master_service thread per connection (on the default node) whose
 * dbgmsg callback answers shell lines with dmsg_circuit_printf. Clients
 * connect with dmsg_connect("127.0.0.1:<port>"), run a plain iocom and
 * exchange DBG_SHELL lines. The links are plaintext: a temporary key
 * directory (dmsg_crypto_set_keydir) marks 127.0.0.1 with
 * remote/127.0.0.1.none. service_tcp_crypto.c builds this file with
 * SERVICE_TCP_CRYPTO defined: fresh keys (dmsg_crypto_generate_keys) and
 * remote/127.0.0.1.pub, so every link runs the handshake and is encrypted
 * (DMSG_IOCOMF_CRYPTED on both ends), and a peer without a key file fails
 * dmsg_iocom_init with DMSG_IOQ_ERROR_NORKEY.
 *
 * Checks:
 * - dmsg_connect: "127.0.0.1:<port>" connects; a refused port and a bad
 *   port string give -1;
 * - each line reaches the service's callback NUL-terminated and with
 *   msg->iocom / msg->circuit set; its answers come back as
 *   DBG_SHELL|REPLY text, then the prompt (LNK_ERROR|REPLY);
 *   dmsg_circuit_printf cuts long output to 1023 characters;
 * - the master service's LNK_CONN reaches the client (peer type CLUSTER,
 *   masks all ones);
 * - two clients at once get their own answers;
 * - when a client goes away its service thread ends: the exit callback
 *   runs with the handle, label and info are freed (LeakSanitizer), and
 *   every thread is joined.
 */
#define _DEFAULT_SOURCE
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <dmsg.h>

#include "check.h"

#define NCLIENTS 2
#define WAIT_SECS 20

#ifdef SERVICE_TCP_CRYPTO
#define TEST_NAME "service_tcp_crypto"
#define WANT_CRYPTED DMSG_IOCOMF_CRYPTED
#else
#define TEST_NAME "service_tcp"
#define WANT_CRYPTED 0
#endif

static pthread_mutex_t mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;

/* ----- the key directory ------------------------------------------------- */

static char keydir[256];
static char remote[300];
static char peerfile[320];

static void
path_in(char *buf, size_t len, const char *dir, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

/* Copies file `from` to `to`; 0 or -1. */
static int
copy_file(const char *from, const char *to)
{
	char buf[4096];
	size_t n;
	int rc = 0;
	FILE *in = fopen(from, "rb");
	FILE *out = in ? fopen(to, "wb") : NULL;

	if (in == NULL || out == NULL)
		rc = -1;
	while (rc == 0 && (n = fread(buf, 1, sizeof(buf), in)) > 0)
		if (fwrite(buf, 1, n, out) != n)
			rc = -1;
	if (in != NULL)
		fclose(in);
	if (out != NULL && fclose(out) != 0)
		rc = -1;
	return rc;
}

/*
 * A temporary key directory for 127.0.0.1: remote/127.0.0.1.none, or
 * (crypto) a fresh key pair that is also remote/127.0.0.1.pub (both ends
 * of every link are 127.0.0.1 in this process and share the directory).
 */
static int
keys_setup(void)
{
	const char *tmp = getenv("TMPDIR");
	char pub[300];

	snprintf(keydir, sizeof(keydir), "%s/dmsg-keys-XXXXXX",
	    tmp != NULL && *tmp != 0 ? tmp : "/tmp");
	if (mkdtemp(keydir) == NULL)
		return -1;
	path_in(remote, sizeof(remote), keydir, "remote");
	if (mkdir(remote, 0700) != 0)
		return -1;
#ifdef SERVICE_TCP_CRYPTO
	if (dmsg_crypto_generate_keys(keydir) != 0)
		return -1;
	path_in(pub, sizeof(pub), keydir, "rsa.pub");
	path_in(peerfile, sizeof(peerfile), remote, "127.0.0.1.pub");
	if (copy_file(pub, peerfile) != 0)
		return -1;
#else
	(void)pub;
	(void)copy_file;
	path_in(peerfile, sizeof(peerfile), remote, "127.0.0.1.none");
	{
		FILE *f = fopen(peerfile, "w");

		if (f == NULL || fclose(f) != 0)
			return -1;
	}
#endif
	dmsg_crypto_setup();
	dmsg_crypto_set_keydir(keydir);
	return 0;
}

static void
keys_cleanup(void)
{
	char path[300];

	unlink(peerfile);
	rmdir(remote);
	path_in(path, sizeof(path), keydir, "rsa.prv");
	unlink(path);
	path_in(path, sizeof(path), keydir, "rsa.pub");
	unlink(path);
	rmdir(keydir);
	dmsg_crypto_set_keydir(NULL);
}

#ifdef SERVICE_TCP_CRYPTO
/*
 * Without remote/127.0.0.1.pub (and .none) a TCP link fails in
 * dmsg_iocom_init: EOF with DMSG_IOQ_ERROR_NORKEY, and dmsg_iocom_core
 * returns at once.
 */
static void
missing_key_fails(void)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	dmsg_iocom_t iocom;
	char host[64];
	int lfd, fd;

	CHECK_EQ(unlink(peerfile), 0);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(lfd >= 0);
	CHECK_EQ(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	CHECK_EQ(listen(lfd, 1), 0);
	CHECK_EQ(getsockname(lfd, (struct sockaddr *)&sin, &slen), 0);
	snprintf(host, sizeof(host), "127.0.0.1:%d", ntohs(sin.sin_port));
	fd = dmsg_connect(host);
	CHECK(fd >= 0);
	dmsg_iocom_init(&iocom, fd, -1, NULL, NULL, NULL, NULL);
	CHECK(iocom.flags & DMSG_IOCOMF_EOF);
	CHECK((iocom.flags & DMSG_IOCOMF_CRYPTED) == 0);
	CHECK_EQ(iocom.ioq_rx.error, DMSG_IOQ_ERROR_NORKEY);
	dmsg_iocom_core(&iocom);
	CHECK_EQ(iocom.ioq_rx.error, DMSG_IOQ_ERROR_NORKEY);
	dmsg_iocom_done(&iocom);
	close(lfd);
}
#endif

/* ----- the server side ---------------------------------------------------- */

struct svc {
	pthread_t thread;
	int exited;
};

static struct svc svcs[NCLIENTS];
static int listen_fd = -1;
static int lines_seen;
static int bad_lines;

static void
svc_exit(void *handle)
{
	struct svc *s = handle;

	pthread_mutex_lock(&mtx);
	s->exited = 1;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&mtx);
}

/* The shell: "echo WORDS", "long", "who"; anything else an error line. */
static void
shell(dmsg_msg_t *msg)
{
	const char *line = msg->aux_data;
	char big[3000];

	pthread_mutex_lock(&mtx);
	lines_seen++;
	if (line == NULL || msg->iocom == NULL || msg->circuit == NULL ||
	    msg->circuit != &msg->iocom->circuit0 ||
	    line[msg->aux_size - 1] != 0 ||
	    (msg->iocom->flags & DMSG_IOCOMF_CRYPTED) != WANT_CRYPTED)
		bad_lines++;
	pthread_mutex_unlock(&mtx);
	if (line == NULL)
		return;
	if (strncmp(line, "echo ", 5) == 0) {
		dmsg_circuit_printf(msg->circuit, "echo: %s\n", line + 5);
	} else if (strcmp(line, "long") == 0) {
		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = 0;
		dmsg_circuit_printf(msg->circuit, "%s", big);
	} else if (strcmp(line, "who") == 0) {
		dmsg_circuit_printf(msg->circuit, "label %s\n",
		    msg->iocom->label);
	} else {
		dmsg_circuit_printf(msg->circuit, "unknown: %s\n", line);
	}
}

/* Accepts NCLIENTS connections, one master service thread each. */
static void *
listener(void *arg)
{
	int i, fd;

	(void)arg;
	for (i = 0; i < NCLIENTS; i++) {
		dmsg_master_service_info_t *info;
		char label[32];

		fd = accept(listen_fd, NULL, NULL);
		if (fd < 0) {
			perror("accept");
			exit(1);
		}
		info = malloc(sizeof(*info));
		memset(info, 0, sizeof(*info));
		snprintf(label, sizeof(label), "svc-%d", i);
		info->fd = fd;
		info->detachme = 0;
		info->label = strdup(label);
		info->dbgmsg_callback = shell;
		info->exit_callback = svc_exit;
		info->handle = &svcs[i];
		if (pthread_create(&svcs[i].thread, NULL, dmsg_master_service,
		    info) != 0) {
			perror("pthread_create");
			exit(1);
		}
	}
	return NULL;
}

/* ----- the clients ----------------------------------------------------------- */

struct client {
	int fd;
	dmsg_iocom_t iocom;
	pthread_t thread;
	char text[8192];
	size_t len;
	int prompts;
	int conn_seen;
	int conn_ok;
};

static struct client clients[NCLIENTS];

static struct client *
client_of(dmsg_iocom_t *iocom)
{
	int i;

	for (i = 0; i < NCLIENTS; i++)
		if (&clients[i].iocom == iocom)
			return &clients[i];
	return NULL;
}

static void
client_rcvmsg(dmsg_msg_t *msg)
{
	struct client *c = client_of(msg->iocom);
	uint32_t cmd = msg->any.head.cmd;

	if (c == NULL)
		return;
	pthread_mutex_lock(&mtx);
	if ((cmd & DMSGF_BASECMDMASK) == DMSG_DBG_SHELL && (cmd & DMSGF_REPLY)) {
		if (msg->aux_data != NULL) {
			size_t n = strnlen(msg->aux_data, msg->aux_size);

			if (c->len + n < sizeof(c->text)) {
				memcpy(c->text + c->len, msg->aux_data, n);
				c->len += n;
				c->text[c->len] = 0;
			}
		}
	} else if ((cmd & DMSGF_BASECMDMASK) == DMSG_LNK_ERROR &&
	    (cmd & DMSGF_REPLY) && msg->state == NULL) {
		c->prompts++;
		pthread_cond_broadcast(&cond);
	} else if ((cmd & DMSGF_BASECMDMASK) == DMSG_LNK_CONN &&
	    (cmd & DMSGF_CREATE)) {
		c->conn_seen++;
		c->conn_ok = msg->any.lnk_conn.peer_type == DMSG_PEER_CLUSTER &&
		    msg->any.lnk_conn.peer_mask == ~(uint64_t)0 &&
		    msg->any.lnk_conn.pfs_mask == ~(uint64_t)0;
		pthread_cond_broadcast(&cond);
	}
	pthread_mutex_unlock(&mtx);
}

static void *
client_main(void *arg)
{
	struct client *c = arg;

	dmsg_iocom_core(&c->iocom);
	return NULL;
}

static void
client_send(struct client *c, const char *line)
{
	size_t n = strlen(line) + 1;
	dmsg_msg_t *msg = dmsg_msg_alloc(&c->iocom.circuit0, n,
	    DMSG_DBG_SHELL, NULL, NULL);

	CHECK(msg != NULL);
	if (msg != NULL) {
		memcpy(msg->aux_data, line, n);
		dmsg_msg_write(msg);
	}
}

/* Sends a line and waits (not holding mtx) for its prompt. */
static int
client_run(struct client *c, const char *line)
{
	struct timespec ts;
	int want;

	pthread_mutex_lock(&mtx);
	want = c->prompts + 1;
	pthread_mutex_unlock(&mtx);
	client_send(c, line);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += WAIT_SECS;
	pthread_mutex_lock(&mtx);
	while (c->prompts < want) {
		if (pthread_cond_timedwait(&cond, &mtx, &ts) == ETIMEDOUT)
			break;
	}
	want = c->prompts >= want;
	pthread_mutex_unlock(&mtx);
	return want;
}

int
main(void)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	pthread_t lthread;
	struct timespec ts;
	char host[64];
	int i, fd, port, ok;

	/*
	 * As hammer2's main does: a write to a link whose peer is gone
	 * must fail with EPIPE, not kill the program.
	 */
	signal(SIGPIPE, SIG_IGN);
	if (keys_setup() != 0) {
		perror("key directory");
		return 1;
	}
	listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = 0;
	if (listen_fd < 0 ||
	    bind(listen_fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    listen(listen_fd, 8) != 0 ||
	    getsockname(listen_fd, (struct sockaddr *)&sin, &slen) != 0) {
		perror("listen");
		return 1;
	}
	port = ntohs(sin.sin_port);
	if (pthread_create(&lthread, NULL, listener, NULL) != 0) {
		perror("pthread_create");
		return 1;
	}

	/* Errors: -1 with a message. */
	CHECK_EQ(dmsg_connect("127.0.0.1:notaport"), -1);

	snprintf(host, sizeof(host), "127.0.0.1:%d", port);
	for (i = 0; i < NCLIENTS; i++) {
		struct client *c = &clients[i];

		fd = dmsg_connect(host);
		CHECK(fd >= 0);
		if (fd < 0)
			return check_exit(TEST_NAME);
		c->fd = fd;
		dmsg_iocom_init(&c->iocom, fd, -1, NULL, client_rcvmsg, NULL,
		    NULL);
		CHECK_EQ(c->iocom.flags & DMSG_IOCOMF_CRYPTED, WANT_CRYPTED);
		CHECK((c->iocom.flags & DMSG_IOCOMF_EOF) == 0);
		/* Already negotiated: a second call does nothing. */
		dmsg_crypto_negotiate(&c->iocom);
		CHECK_EQ(c->iocom.flags & DMSG_IOCOMF_CRYPTED, WANT_CRYPTED);
		if (pthread_create(&c->thread, NULL, client_main, c) != 0) {
			perror("pthread_create");
			return 1;
		}
	}
	pthread_join(lthread, NULL);
	close(listen_fd);
	/* Nothing listens there any more. */
	CHECK_EQ(dmsg_connect(host), -1);

	/* Each client talks to its own service. */
	for (i = 0; i < NCLIENTS; i++) {
		struct client *c = &clients[i];
		char line[64], want[64];

		snprintf(line, sizeof(line), "echo hello from %d", i);
		snprintf(want, sizeof(want), "echo: hello from %d\n", i);
		CHECK(client_run(c, line));
		CHECK(client_run(c, "bogus"));
		pthread_mutex_lock(&mtx);
		CHECK(strstr(c->text, want) != NULL);
		CHECK(strstr(c->text, "unknown: bogus\n") != NULL);
		pthread_mutex_unlock(&mtx);
	}
	CHECK(client_run(&clients[0], "who"));
	CHECK(client_run(&clients[1], "long"));
	pthread_mutex_lock(&mtx);
	CHECK(strstr(clients[0].text, "label svc-") != NULL);
	CHECK(strstr(clients[1].text, "label svc-") == NULL);
	{
		/* 1023 x's in one reply, no more. */
		const char *x = strchr(clients[1].text, 'x');
		size_t n = x ? strspn(x, "x") : 0;

		CHECK_EQ(n, 1023);
	}
	for (i = 0; i < NCLIENTS; i++) {
		CHECK_EQ(clients[i].conn_seen, 1);
		CHECK(clients[i].conn_ok);
	}
	CHECK_EQ(lines_seen, 2 * NCLIENTS + 2);
	CHECK_EQ(bad_lines, 0);
	pthread_mutex_unlock(&mtx);

	/* The clients go away: every service ends. */
	for (i = 0; i < NCLIENTS; i++) {
		shutdown(clients[i].fd, SHUT_RDWR);
		pthread_join(clients[i].thread, NULL);
		dmsg_iocom_done(&clients[i].iocom);
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += WAIT_SECS;
	pthread_mutex_lock(&mtx);
	ok = 1;
	for (i = 0; i < NCLIENTS; i++) {
		while (!svcs[i].exited) {
			if (pthread_cond_timedwait(&cond, &mtx, &ts) == ETIMEDOUT)
				break;
		}
		ok = ok && svcs[i].exited;
	}
	CHECK(ok);
	pthread_mutex_unlock(&mtx);
	for (i = 0; i < NCLIENTS; i++)
		pthread_join(svcs[i].thread, NULL);
#ifdef SERVICE_TCP_CRYPTO
	missing_key_fails();
#endif
	keys_cleanup();
	return check_exit(TEST_NAME);
}
