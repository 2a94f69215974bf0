// cbench is the C reference of the comparative benchmark: the same
// workloads as the Go child processes, written the plain way over libssl
// (blocking SSL_read/SSL_write on sockets, OpenSSL's defaults), or over
// plain sockets. It prints the same "result {json}" line.
//
//	cbench bulk       tls|tcp SIZE DUR_MS CERTDIR
//	cbench handshake  tls CLIENTS DUR_MS CERTDIR
//	cbench resumed    tls 1 DUR_MS CERTDIR
//	cbench pingpong   tls|tcp SPIN DUR_MS CERTDIR    (SPIN 1: busy-poll non-blocking sockets)
//	cbench idle-server tls|tcp 0 CONNS CERTDIR
//	cbench idle-client tls|tcp 0 CONNS CERTDIR ADDR
//
// In the environment, CBENCH_EPOLL=1 makes bulk and handshake endpoints
// wait as an event loop must (and as Go's netpoller does): non-blocking
// sockets, and on WANT_READ, WANT_WRITE or EAGAIN a wait in epoll_wait,
// edge-triggered, each thread on an epoll instance of its own; and
// CBENCH_READ_AHEAD=1 turns on OpenSSL's read-ahead on both ends.
//
// The setup (TLS 1.3, TLS_AES_128_GCM_SHA256, X25519, no tickets outside
// the resumption workload) is set here explicitly and by the OpenSSL config
// file the driver passes in OPENSSL_CONF.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

static int use_tls;
static int use_epoll; // CBENCH_EPOLL=1: see the top
static SSL_CTX *server_ctx, *client_ctx;

static void die(const char *what) {
	fprintf(stderr, "cbench: %s: %s\n", what, strerror(errno));
	ERR_print_errors_fp(stderr);
	exit(1);
}

// cpu_seconds is the process's user and system time.
static double cpu_seconds(void) {
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// syscalls reads the process's read and write system calls so far (syscr
// and syscw of /proc/self/io).
static void syscalls(double *r, double *w) {
	char line[128];
	FILE *f = fopen("/proc/self/io", "r");
	*r = *w = 0;
	while (f != NULL && fgets(line, sizeof line, f) != NULL) {
		sscanf(line, "syscr: %lf", r);
		sscanf(line, "syscw: %lf", w);
	}
	if (f != NULL) fclose(f);
}

// costs are the CPU time and system calls at a point of a timed part.
typedef struct {
	double cpu, r, w;
} costs;

static costs costs_now(void) {
	costs c = {.cpu = cpu_seconds()};
	syscalls(&c.r, &c.w);
	return c;
}

// costs_json prints ,"cpu-us/op":...,"reads/op":...,"writes/op":... for ops
// operations between start and end.
static void costs_json(costs start, costs end, double ops) {
	printf(",\"cpu-us/op\":%.3f,\"reads/op\":%.3f,\"writes/op\":%.3f", (end.cpu - start.cpu) * 1e6 / ops,
	       (end.r - start.r) / ops, (end.w - start.w) / ops);
}

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void make_ctxs(const char *dir, int resumption) {
	char path[4096];
	server_ctx = SSL_CTX_new(TLS_server_method());
	client_ctx = SSL_CTX_new(TLS_client_method());
	if (server_ctx == NULL || client_ctx == NULL) die("SSL_CTX_new");
	SSL_CTX *both[] = {server_ctx, client_ctx};
	for (int i = 0; i < 2; i++) {
		if (!SSL_CTX_set_min_proto_version(both[i], TLS1_3_VERSION) ||
		    !SSL_CTX_set_ciphersuites(both[i], "TLS_AES_128_GCM_SHA256") ||
		    !SSL_CTX_set1_groups_list(both[i], "X25519"))
			die("ctx setup");
	}
	snprintf(path, sizeof path, "%s/cert.pem", dir);
	if (SSL_CTX_use_certificate_file(server_ctx, path, SSL_FILETYPE_PEM) != 1) die(path);
	snprintf(path, sizeof path, "%s/key.pem", dir);
	if (SSL_CTX_use_PrivateKey_file(server_ctx, path, SSL_FILETYPE_PEM) != 1) die(path);
	snprintf(path, sizeof path, "%s/ca.pem", dir);
	if (SSL_CTX_load_verify_locations(client_ctx, path, NULL) != 1) die(path);
	SSL_CTX_set_verify(client_ctx, SSL_VERIFY_PEER, NULL);
	const char *ra = getenv("CBENCH_READ_AHEAD");
	if (ra != NULL && strcmp(ra, "1") == 0) {
		SSL_CTX_set_read_ahead(server_ctx, 1);
		SSL_CTX_set_read_ahead(client_ctx, 1);
	}
	if (!resumption) {
		SSL_CTX_set_num_tickets(server_ctx, 0);
	} else {
		SSL_CTX_set_session_cache_mode(client_ctx, SSL_SESS_CACHE_CLIENT);
	}
}

static int listener(void) {
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 1024) < 0) die("listen");
	return fd;
}

static int port_of(int fd) {
	struct sockaddr_in a;
	socklen_t n = sizeof a;
	if (getsockname(fd, (struct sockaddr *)&a, &n) < 0) die("getsockname");
	return ntohs(a.sin_port);
}

static void nodelay(int fd) {
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int dial(int port) {
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
	nodelay(fd);
	return fd;
}

// An endpoint: a socket, with an SSL on it when use_tls.
typedef struct {
	int fd;
	SSL *ssl;
	int spin; // non-blocking socket, busy-polled
	int ep;   // > 0: non-blocking socket, waits in this epoll instance
} end;

// thread_epoll is the calling thread's epoll instance, made on first use.
static __thread int thread_epoll = -1;

// event_loop makes e wait as an event loop does when use_epoll is set.
static void event_loop(end *e) {
	if (!use_epoll) return;
	if (thread_epoll < 0 && (thread_epoll = epoll_create1(0)) < 0) die("epoll_create1");
	e->ep = thread_epoll;
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET};
	if (epoll_ctl(e->ep, EPOLL_CTL_ADD, e->fd, &ev) < 0) die("epoll_ctl");
	if (fcntl(e->fd, F_SETFL, fcntl(e->fd, F_GETFL) | O_NONBLOCK) < 0) die("fcntl");
}

// wait_event waits for e's socket to change state, once its last read or
// write said EAGAIN; 0 when e does not wait in epoll.
static int wait_event(end *e) {
	if (e->ep <= 0) return 0;
	struct epoll_event ev;
	while (epoll_wait(e->ep, &ev, 1, -1) < 0)
		if (errno != EINTR) die("epoll_wait");
	return 1;
}

static void set_nonblocking(int fd) {
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) die("fcntl");
}

// spin_pause is a busy-poll's pause between two tries. sched_yield gives the
// core to another runnable thread, if any: on a shared machine a pure spin
// would otherwise hold the core for a whole time slice (milliseconds) while
// the peer's thread waits for it; with nothing else runnable it returns at
// once.
static void spin_pause(void) { sched_yield(); }

// done_step reports whether ret is an SSL call's final result: a
// busy-polled endpoint retries at once on WANT_READ and WANT_WRITE.
static int done_step(end *e, int ret) {
	if (ret > 0 || (!e->spin && e->ep <= 0)) return 1;
	int err = SSL_get_error(e->ssl, ret);
	if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) return 1;
	if (!wait_event(e)) spin_pause();
	return 0;
}

static int handshake(end *e, int server, SSL_SESSION *sess) {
	if (!use_tls) return 1;
	e->ssl = SSL_new(server ? server_ctx : client_ctx);
	if (e->ssl == NULL || SSL_set_fd(e->ssl, e->fd) != 1) die("SSL_new");
	if (!server) {
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(e->ssl), "127.0.0.1");
		if (sess != NULL) SSL_set_session(e->ssl, sess);
	}
	int ret;
	do {
		ret = server ? SSL_accept(e->ssl) : SSL_connect(e->ssl);
	} while (!done_step(e, ret));
	return ret == 1;
}

// io_read reads up to n bytes; 0 means the peer's close_notify or EOF.
static long io_read(end *e, void *buf, size_t n) {
	for (;;) {
		if (use_tls) {
			size_t got = 0;
			int ret = SSL_read_ex(e->ssl, buf, n, &got);
			if (ret == 1) return (long)got;
			int err = SSL_get_error(e->ssl, ret);
			if (err == SSL_ERROR_WANT_READ && wait_event(e)) continue;
			if (e->spin && err == SSL_ERROR_WANT_READ) {
				spin_pause();
				continue;
			}
			if (err == SSL_ERROR_ZERO_RETURN) return 0;
			return -1;
		}
		long got = read(e->fd, buf, n);
		if (got < 0 && errno == EAGAIN && wait_event(e)) continue;
		if (got < 0 && e->spin && errno == EAGAIN) {
			spin_pause();
			continue;
		}
		if (got < 0 && errno == EINTR) continue;
		return got;
	}
}

static int io_write(end *e, const void *buf, size_t n) {
	const char *p = buf;
	while (n > 0) {
		if (use_tls) {
			size_t put = 0;
			int ret = SSL_write_ex(e->ssl, p, n, &put);
			if (ret != 1) {
				int err = SSL_get_error(e->ssl, ret);
				if (err == SSL_ERROR_WANT_WRITE && wait_event(e)) continue;
				if (e->spin && err == SSL_ERROR_WANT_WRITE) {
					spin_pause();
					continue;
				}
				return -1;
			}
			p += put, n -= put;
			continue;
		}
		long put = write(e->fd, p, n);
		if (put < 0 && errno == EAGAIN && wait_event(e)) continue;
		if (put < 0 && e->spin && errno == EAGAIN) {
			spin_pause();
			continue;
		}
		if (put < 0 && errno == EINTR) continue;
		if (put < 0) return -1;
		p += put, n -= (size_t)put;
	}
	return 0;
}

static int read_full(end *e, char *buf, size_t n) {
	while (n > 0) {
		long got = io_read(e, buf, n);
		if (got <= 0) return -1;
		buf += got, n -= (size_t)got;
	}
	return 0;
}

// close_end sends close_notify (TLS) and closes the socket.
static void close_end(end *e) {
	if (e->ssl != NULL) {
		SSL_shutdown(e->ssl);
		SSL_free(e->ssl);
		e->ssl = NULL;
	}
	if (e->ep > 0) epoll_ctl(e->ep, EPOLL_CTL_DEL, e->fd, NULL);
	close(e->fd);
}

// ---- bulk ----

static struct {
	int lfd;
	pthread_barrier_t ready;
	long long bytes;
	double end;
	int failed;
} bulk_state;

static void *bulk_reader(void *arg) {
	end s = {.fd = accept(bulk_state.lfd, NULL, NULL)};
	if (s.fd < 0) die("accept");
	nodelay(s.fd);
	event_loop(&s);
	if (!handshake(&s, 1, NULL)) die("server handshake");
	pthread_barrier_wait(&bulk_state.ready);
	static char buf[64 << 10];
	long got;
	while ((got = io_read(&s, buf, sizeof buf)) > 0) bulk_state.bytes += got;
	bulk_state.end = now();
	bulk_state.failed = got < 0;
	close_end(&s);
	return NULL;
}

static void run_bulk(size_t size, double dur) {
	bulk_state.lfd = listener();
	pthread_barrier_init(&bulk_state.ready, NULL, 2);
	pthread_t t;
	pthread_create(&t, NULL, bulk_reader, NULL);
	end c = {.fd = dial(port_of(bulk_state.lfd))};
	event_loop(&c);
	if (!handshake(&c, 0, NULL)) die("client handshake");
	pthread_barrier_wait(&bulk_state.ready);
	char *buf = calloc(1, size);
	long long writes = 0;
	costs c0 = costs_now();
	double start = now();
	while (now() - start < dur) {
		if (io_write(&c, buf, size) < 0) die("write");
		writes++;
	}
	costs c1 = costs_now();
	close_end(&c);
	pthread_join(t, NULL);
	if (bulk_state.failed || bulk_state.bytes != writes * (long long)size) die("reader");
	double elapsed = bulk_state.end - start;
	printf("result {\"metrics\":{\"MB/s\":%.3f,\"cpu-us/MB\":%.3f", bulk_state.bytes / elapsed / 1e6,
	       (c1.cpu - c0.cpu) * 1e12 / ((double)writes * size));
	costs_json(c0, c1, writes);
	printf("},\"ops\":%lld,\"ns_per_op\":%.1f}\n", writes, elapsed * 1e9 / writes);
}

// ---- handshakes ----

static struct {
	int lfd;
	double start, dur;
	int resume;
	atomic_long count, resumed;
} hs;

static void *hs_server(void *arg) {
	for (;;) {
		end s = {.fd = accept(hs.lfd, NULL, NULL)};
		if (s.fd < 0) return NULL; // the listener was shut down
		nodelay(s.fd);
		event_loop(&s);
		if (!handshake(&s, 1, NULL)) die("server handshake");
		close_end(&s);
	}
}

// hs_one dials, handshakes (resuming *sess when set), reads until the
// server's close_notify and closes; it keeps the new session in *sess.
static void hs_one(SSL_SESSION **sess) {
	end c = {.fd = dial(port_of(hs.lfd))};
	event_loop(&c);
	if (!handshake(&c, 0, *sess)) die("client handshake");
	char b;
	if (io_read(&c, &b, 1) != 0) die("client read");
	if (SSL_session_reused(c.ssl)) atomic_fetch_add(&hs.resumed, 1);
	if (hs.resume) {
		SSL_SESSION_free(*sess);
		*sess = SSL_get1_session(c.ssl);
	}
	close_end(&c);
}

static void *hs_client(void *arg) {
	SSL_SESSION *sess = arg;
	while (now() - hs.start < hs.dur) {
		hs_one(&sess);
		atomic_fetch_add(&hs.count, 1);
	}
	SSL_SESSION_free(sess);
	return NULL;
}

static void run_handshakes(int clients, double dur, int resume) {
	hs.lfd = listener();
	hs.dur = dur;
	hs.resume = resume;
	pthread_t servers[16], cl[16];
	if (clients > 16) clients = 16;
	// One server thread per client: each accepts on the shared listener.
	for (int i = 0; i < clients; i++) pthread_create(&servers[i], NULL, hs_server, NULL);
	// One handshake outside the timed part; its session seeds resumption.
	SSL_SESSION *sess = NULL;
	hs_one(&sess);
	atomic_store(&hs.resumed, 0);
	costs c0 = costs_now();
	hs.start = now();
	for (int i = 0; i < clients; i++) {
		SSL_SESSION *s = NULL;
		if (resume) {
			s = sess;
			SSL_SESSION_up_ref(s);
		}
		pthread_create(&cl[i], NULL, hs_client, s);
	}
	for (int i = 0; i < clients; i++) pthread_join(cl[i], NULL);
	double elapsed = now() - hs.start;
	costs c1 = costs_now();
	long n = atomic_load(&hs.count);
	SSL_SESSION_free(sess);
	shutdown(hs.lfd, SHUT_RDWR);
	for (int i = 0; i < clients; i++) pthread_join(servers[i], NULL);
	double share = n > 0 ? (double)atomic_load(&hs.resumed) / n : 0;
	if (resume && share < 0.99) {
		fprintf(stderr, "cbench: only %.0f%% of the handshakes resumed\n", 100 * share);
		exit(1);
	}
	printf("result {\"metrics\":{\"handshakes/s\":%.3f,\"resumed-share\":%.3f", n / elapsed, share);
	costs_json(c0, c1, n > 0 ? n : 1);
	printf("},\"ops\":%ld,\"ns_per_op\":%.1f}\n", n, elapsed * 1e9 / (n > 0 ? n : 1));
}

// ---- ping-pong ----

static struct {
	int lfd, spin;
	pthread_barrier_t ready;
} pp;

static void *pp_server(void *arg) {
	end s = {.fd = accept(pp.lfd, NULL, NULL), .spin = pp.spin};
	if (s.fd < 0) die("accept");
	nodelay(s.fd);
	if (s.spin) set_nonblocking(s.fd);
	if (!handshake(&s, 1, NULL)) die("server handshake");
	pthread_barrier_wait(&pp.ready);
	char buf[64];
	while (read_full(&s, buf, sizeof buf) == 0) {
		if (io_write(&s, buf, sizeof buf) < 0) die("echo");
	}
	close_end(&s);
	return NULL;
}

static int cmp_double(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void run_pingpong(int spin, double dur) {
	pp.lfd = listener();
	pp.spin = spin;
	pthread_barrier_init(&pp.ready, NULL, 2);
	pthread_t t;
	pthread_create(&t, NULL, pp_server, NULL);
	end c = {.fd = dial(port_of(pp.lfd)), .spin = spin};
	if (spin) set_nonblocking(c.fd);
	if (!handshake(&c, 0, NULL)) die("client handshake");
	pthread_barrier_wait(&pp.ready);
	size_t cap = 1 << 20, n = 0;
	double *rtt = malloc(cap * sizeof *rtt);
	char buf[64] = {0};
	costs c0 = costs_now();
	double start = now();
	while (n < cap) {
		double t0 = now();
		if (t0 - start >= dur) break;
		if (io_write(&c, buf, sizeof buf) < 0 || read_full(&c, buf, sizeof buf) < 0) die("ping");
		rtt[n++] = now() - t0;
	}
	costs c1 = costs_now();
	close_end(&c);
	pthread_join(t, NULL);
	qsort(rtt, n, sizeof *rtt, cmp_double);
	printf("result {\"metrics\":{\"us/op\":%.3f,\"p99-us\":%.3f", rtt[n / 2] * 1e6, rtt[n * 99 / 100] * 1e6);
	costs_json(c0, c1, n);
	printf("},\"ops\":%zu,\"ns_per_op\":%.1f}\n", n, rtt[n / 2] * 1e9);
}

// ---- idle memory ----

static double rss_bytes(void) {
	long size, resident;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f == NULL || fscanf(f, "%ld %ld", &size, &resident) != 2) die("statm");
	fclose(f);
	return (double)resident * sysconf(_SC_PAGESIZE);
}

static void report_idle(double base, int conns) {
	// Idle means idle for a while, as in the Go children (idleSettle).
	usleep(200 * 1000);
	printf("result {\"metrics\":{\"rss-KiB/conn\":%.3f},\"ops\":%d,\"ns_per_op\":0}\n",
	       (rss_bytes() - base) / conns / 1024, conns);
	fflush(stdout);
	// Keep the connections until the driver closes stdin.
	char buf[256];
	while (fread(buf, 1, sizeof buf, stdin) > 0) {
	}
}

static void run_idle_server(int conns) {
	int lfd = listener();
	printf("addr 127.0.0.1:%d\n", port_of(lfd));
	fflush(stdout);
	end warm = {.fd = accept(lfd, NULL, NULL)};
	if (warm.fd < 0 || !handshake(&warm, 1, NULL)) die("warm-up");
	char b[256];
	while (io_read(&warm, b, sizeof b) > 0) {
	}
	close_end(&warm);
	double base = rss_bytes();
	end *held = calloc(conns, sizeof *held);
	for (int i = 0; i < conns; i++) {
		held[i].fd = accept(lfd, NULL, NULL);
		if (held[i].fd < 0 || !handshake(&held[i], 1, NULL)) die("idle server handshake");
	}
	report_idle(base, conns);
}

static void run_idle_client(int conns, const char *addr) {
	const char *colon = strrchr(addr, ':');
	if (colon == NULL) die("address");
	int port = atoi(colon + 1);
	end warm = {.fd = dial(port)};
	if (!handshake(&warm, 0, NULL)) die("warm-up");
	close_end(&warm);
	double base = rss_bytes();
	end *held = calloc(conns, sizeof *held);
	for (int i = 0; i < conns; i++) {
		held[i].fd = dial(port);
		if (!handshake(&held[i], 0, NULL)) die("idle client handshake");
	}
	report_idle(base, conns);
}

int main(int argc, char **argv) {
	if (argc < 6) {
		fprintf(stderr, "usage: cbench WORKLOAD tls|tcp ARG DUR_MS|CONNS CERTDIR [ADDR]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	const char *w = argv[1];
	use_tls = strcmp(argv[2], "tls") == 0;
	const char *ep = getenv("CBENCH_EPOLL");
	use_epoll = ep != NULL && strcmp(ep, "1") == 0;
	int arg = atoi(argv[3]);
	double dur = atof(argv[4]) / 1000;
	int resumption = strcmp(w, "resumed") == 0;
	if (use_tls) make_ctxs(argv[5], resumption);
	if (strcmp(w, "bulk") == 0) {
		run_bulk((size_t)arg, dur);
	} else if (strcmp(w, "handshake") == 0 || resumption) {
		run_handshakes(arg, dur, resumption);
	} else if (strcmp(w, "pingpong") == 0) {
		run_pingpong(arg, dur);
	} else if (strcmp(w, "idle-server") == 0) {
		run_idle_server(atoi(argv[4]));
	} else if (strcmp(w, "idle-client") == 0 && argc > 6) {
		run_idle_client(atoi(argv[4]), argv[6]);
	} else {
		fprintf(stderr, "cbench: unknown workload %s\n", w);
		return 2;
	}
	return 0;
}
