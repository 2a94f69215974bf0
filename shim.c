// shim.c: the thin C layer. No policy lives here: each helper makes one
// OpenSSL call and reports what happened (see shim.h for why).
#include "shim.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/x509v3.h>
#include <openssl/encoder.h>
#include <openssl/pem.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>

// begin prepares r for one call: the queue and errno must hold only what the
// call itself leaves there.
static void begin(go_ossl_result *r) {
	memset(r, 0, sizeof *r);
	// finish leaves the queue empty, so it is almost always empty here;
	// ERR_clear_error would rewrite all of its 16 slots regardless.
	if (ERR_peek_error() != 0) {
		ERR_clear_error();
	}
	errno = 0;
}

// finish records errno and drains the queue, oldest entry first. The
// entries of a failed call are copied into r->errors; a call that did not
// fail has its queue dropped.
static void finish(go_ossl_result *r, int saved_errno, int failed) {
	go_ossl_error_entry entries[GO_OSSL_MAX_ERRORS];
	const char *data;
	int flags, n = 0;
	unsigned long code;

	r->err_no = saved_errno;
	while ((code = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
		if (!failed) {
			continue;
		}
		if (n == GO_OSSL_MAX_ERRORS) {
			r->dropped++;
			continue;
		}
		go_ossl_error_entry *e = &entries[n++];
		e->code = code;
		e->data[0] = 0;
		if ((flags & ERR_TXT_STRING) && data != NULL) {
			strncpy(e->data, data, GO_OSSL_ERROR_DATA - 1);
			e->data[GO_OSSL_ERROR_DATA - 1] = 0;
		}
	}
	if (n == 0) {
		return;
	}
	go_ossl_error_entry *copy = malloc(n * sizeof entries[0]);
	if (copy == NULL) {
		r->dropped += n;
		return;
	}
	memcpy(copy, entries, n * sizeof entries[0]);
	r->errors = (uintptr_t)copy;
	r->nerrors = n;
}

// finish_ssl is finish for calls on an SSL object. SSL_get_error must see
// the queue before it is drained, and is asked only about failures: it
// reads SSL_shutdown's successful 0, for one, as SSL_ERROR_SYSCALL.
static void finish_ssl(SSL *ssl, go_ossl_result *r, int ret, int failed) {
	int saved_errno = errno;
	r->ret = ret;
	r->ssl_error = failed ? SSL_get_error(ssl, ret) : SSL_ERROR_NONE;
	finish(r, saved_errno, failed);
}

static int alpn_attach(SSL_CTX *ctx);

// finish_ret is finish for set-up calls, which return 1 on success.
static void finish_ret(go_ossl_result *r, int ret) {
	int saved_errno = errno;
	r->ret = ret;
	finish(r, saved_errno, ret != 1);
}

void go_ossl_do_handshake(SSL *ssl, go_ossl_result *r) {
	begin(r);
	int ret = SSL_do_handshake(ssl);
	finish_ssl(ssl, r, ret, ret != 1);
}

void go_ossl_read(SSL *ssl, unsigned char *buf, size_t len, go_ossl_result *r) {
	begin(r);
	int ret = SSL_read_ex(ssl, buf, len, &r->n);
	finish_ssl(ssl, r, ret, ret != 1);
}

void go_ossl_write(SSL *ssl, const unsigned char *buf, size_t len, go_ossl_result *r) {
	begin(r);
	int ret = SSL_write_ex(ssl, buf, len, &r->n);
	finish_ssl(ssl, r, ret, ret != 1);
}

void go_ossl_shutdown(SSL *ssl, go_ossl_result *r) {
	begin(r);
	int ret = SSL_shutdown(ssl);
	finish_ssl(ssl, r, ret, ret < 0);
}

// free_buffers_is_safe reports whether the libssl in use has the fix for
// CVE-2024-4741: before 3.0.14, 3.1.6, 3.2.2 and 3.3.1, SSL_free_buffers
// could free a read buffer holding a record header whose body had not
// arrived. The version word is 0xMNN00PP0.
static int free_buffers_is_safe(void) {
	static const unsigned char first_fixed[] = {14, 6, 2, 1};
	unsigned long v = OpenSSL_version_num();
	unsigned long major = v >> 28, minor = (v >> 20) & 0xff, patch = (v >> 4) & 0xff;
	return major > 3 || minor >= sizeof first_fixed || patch >= first_fixed[minor];
}

void go_ossl_release_buffers(SSL *ssl) {
	if (free_buffers_is_safe()) {
		// Returns 0, freeing nothing, while either buffer holds data.
		SSL_free_buffers(ssl);
	}
}

static void set_role(SSL *ssl, int is_server) {
	if (is_server) {
		SSL_set_accept_state(ssl);
	} else {
		SSL_set_connect_state(ssl);
	}
}

SSL *go_ossl_new_ssl(SSL_CTX *ctx, int fd, int is_server, go_ossl_result *r) {
	begin(r);
	SSL *ssl = SSL_new(ctx);
	if (ssl == NULL) {
		finish_ret(r, 0);
		return NULL;
	}
	// SSL_set_fd makes a socket BIO with BIO_NOCLOSE: the Go side owns fd.
	if (SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		finish_ret(r, 0);
		return NULL;
	}
	set_role(ssl, is_server);
	finish_ret(r, 1);
	return ssl;
}

SSL *go_ossl_new_ssl_bio_pair(SSL_CTX *ctx, int is_server, size_t bufsize, BIO **network, go_ossl_result *r) {
	begin(r);
	*network = NULL;
	BIO *internal = NULL;
	SSL *ssl = SSL_new(ctx);
	if (ssl == NULL || !BIO_new_bio_pair(&internal, bufsize, network, bufsize)) {
		SSL_free(ssl);
		finish_ret(r, 0);
		return NULL;
	}
	// One reference for reading and writing: SSL_free frees internal.
	SSL_set_bio(ssl, internal, internal);
	set_role(ssl, is_server);
	finish_ret(r, 1);
	return ssl;
}

int go_ossl_bio_take(BIO *network, unsigned char *buf, int len) {
	int n = BIO_read(network, buf, len);
	return n > 0 ? n : 0;
}

int go_ossl_bio_give(BIO *network, const unsigned char *buf, int len) {
	int n = BIO_write(network, buf, len);
	return n > 0 ? n : 0;
}

void go_ossl_bio_close_write(BIO *network) {
	(void)BIO_shutdown_wr(network);
}

void go_ossl_bio_free(BIO *network) {
	BIO_free(network);
}

void go_ossl_set_host(SSL *ssl, const char *host, int sni, go_ossl_result *r) {
	begin(r);
	int ok = SSL_set1_host(ssl, host);
	if (ok == 1 && sni) {
		ok = (int)SSL_set_tlsext_host_name(ssl, host);
	}
	finish_ret(r, ok);
}

void go_ossl_set_sni(SSL *ssl, const char *host, go_ossl_result *r) {
	begin(r);
	finish_ret(r, (int)SSL_set_tlsext_host_name(ssl, host));
}

void go_ossl_set_ip(SSL *ssl, const char *ip, go_ossl_result *r) {
	begin(r);
	finish_ret(r, X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip));
}

// ---- Sessions, host names, SNI, verification callbacks, key log ----

#include "_cgo_export.h"

// conn_index is the SSL ex-data slot holding the Conn's cgo.Handle,
// allocated once.
static int conn_index = -1;
static CRYPTO_ONCE conn_index_once = CRYPTO_ONCE_STATIC_INIT;

static void conn_index_init(void) {
	conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

int go_ossl_set_conn_handle(SSL *ssl, uintptr_t handle) {
	if (!CRYPTO_THREAD_run_once(&conn_index_once, conn_index_init) || conn_index < 0) {
		return 0;
	}
	return SSL_set_ex_data(ssl, conn_index, (void *)handle);
}

// conn_handle is the Conn's handle, 0 when ssl has none.
static uintptr_t conn_handle(const SSL *ssl) {
	if (ssl == NULL || conn_index < 0) {
		return 0;
	}
	return (uintptr_t)SSL_get_ex_data(ssl, conn_index);
}

static SSL *store_ssl(X509_STORE_CTX *store) {
	return X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
}

static int verify_trampoline(int ok, X509_STORE_CTX *store) {
	uintptr_t h = conn_handle(store_ssl(store));
	return h == 0 ? ok : goOsslVerify(h, ok, store);
}

void go_ossl_ctx_set_verify(SSL_CTX *ctx, int mode, int with_callback) {
	SSL_CTX_set_verify(ctx, mode, with_callback ? verify_trampoline : NULL);
}

// cert_verify_trampoline runs OpenSSL's verification, then the Go hook.
// A rejection must fail the handshake even when the mode is
// SSL_VERIFY_NONE, under which a client ignores this result: the mode is
// read after this returns, so the rejection raises it to SSL_VERIFY_PEER.
static int cert_verify_trampoline(X509_STORE_CTX *store, void *arg) {
	int ok = X509_verify_cert(store);
	SSL *ssl = store_ssl(store);
	uintptr_t h = conn_handle(ssl);
	if (h == 0) {
		return ok;
	}
	if (goOsslCertVerify(h, ok, store)) {
		return ok;
	}
	X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
	if (SSL_get_verify_mode(ssl) == SSL_VERIFY_NONE) {
		SSL_set_verify(ssl, SSL_VERIFY_PEER, SSL_get_verify_callback(ssl));
	}
	return 0;
}

void go_ossl_ctx_set_cert_verify_hook(SSL_CTX *ctx) {
	SSL_CTX_set_cert_verify_callback(ctx, cert_verify_trampoline, NULL);
}

static int servername_trampoline(SSL *ssl, int *alert, void *arg) {
	uintptr_t h = conn_handle(ssl);
	return h == 0 ? SSL_TLSEXT_ERR_NOACK : goOsslServername(h, ssl, alert);
}

void go_ossl_ctx_set_servername_hook(SSL_CTX *ctx) {
	SSL_CTX_set_tlsext_servername_callback(ctx, servername_trampoline);
}

static void keylog_trampoline(const SSL *ssl, const char *line) {
	uintptr_t h = conn_handle(ssl);
	if (h != 0) {
		goOsslKeyLog(h, (char *)line);
	}
}

void go_ossl_ctx_set_keylog_hook(SSL_CTX *ctx) {
	SSL_CTX_set_keylog_callback(ctx, keylog_trampoline);
}

// new_session_trampoline hands a client's new session to Go, which answers
// 1 when its cache kept the reference OpenSSL passes, 0 when not.
static int new_session_trampoline(SSL *ssl, SSL_SESSION *sess) {
	uintptr_t h = conn_handle(ssl);
	if (h == 0 || SSL_is_server(ssl)) {
		return 0;
	}
	return goOsslNewSession(h, sess);
}

void go_ossl_ctx_set_new_session_hook(SSL_CTX *ctx) {
	SSL_CTX_sess_set_new_cb(ctx, new_session_trampoline);
}

void go_ossl_switch_ctx(SSL *ssl, SSL_CTX *ctx) {
	SSL_set_SSL_CTX(ssl, ctx);
	SSL_set_verify(ssl, SSL_CTX_get_verify_mode(ctx), SSL_CTX_get_verify_callback(ctx));
	SSL_set_verify_depth(ssl, SSL_CTX_get_verify_depth(ctx));
}

void go_ossl_require_verify(SSL *ssl) {
	SSL_set_verify(ssl, SSL_get_verify_mode(ssl) | SSL_VERIFY_PEER, SSL_get_verify_callback(ssl));
}

long go_ossl_ctx_set_session_cache_mode(SSL_CTX *ctx, long mode) {
	return SSL_CTX_set_session_cache_mode(ctx, mode);
}

long go_ossl_ctx_get_session_cache_mode(SSL_CTX *ctx) {
	return SSL_CTX_get_session_cache_mode(ctx);
}

long go_ossl_ctx_sess_set_cache_size(SSL_CTX *ctx, long size) {
	return SSL_CTX_sess_set_cache_size(ctx, size);
}

long go_ossl_ctx_sess_get_cache_size(SSL_CTX *ctx) {
	return SSL_CTX_sess_get_cache_size(ctx);
}

void go_ossl_ctx_set_session_id(SSL_CTX *ctx, const unsigned char *id, unsigned int len, go_ossl_result *r) {
	begin(r);
	finish_ret(r, SSL_CTX_set_session_id_context(ctx, id, len));
}

int go_ossl_get_session(SSL *ssl, SSL_SESSION **out, int *resumable) {
	SSL_SESSION *sess = SSL_get1_session(ssl);
	*out = sess;
	*resumable = 0;
	if (sess == NULL) {
		return 0;
	}
	*resumable = SSL_SESSION_is_resumable(sess);
	int n = i2d_SSL_SESSION(sess, NULL);
	return n > 0 ? n : 0;
}

int go_ossl_session_der(SSL_SESSION *sess, unsigned char *buf, int len) {
	unsigned char *p = buf;
	if (i2d_SSL_SESSION(sess, NULL) != len) {
		return 0;
	}
	return i2d_SSL_SESSION(sess, &p);
}

void go_ossl_set_session(SSL *ssl, const unsigned char *der, long len, go_ossl_result *r) {
	begin(r);
	const unsigned char *p = der;
	SSL_SESSION *sess = d2i_SSL_SESSION(NULL, &p, len);
	int ok = sess != NULL && p == der + len;
	if (ok) {
		ok = SSL_set_session(ssl, sess);
	} else if (sess != NULL) {
		ERR_raise_data(ERR_LIB_SSL, SSL_R_BAD_LENGTH, "trailing bytes after the session");
	}
	SSL_SESSION_free(sess);
	finish_ret(r, ok);
}

void go_ossl_set_session_object(SSL *ssl, SSL_SESSION *sess, go_ossl_result *r) {
	begin(r);
	finish_ret(r, SSL_set_session(ssl, sess));
}

X509 *go_ossl_peer_leaf(SSL *ssl) {
	X509 *leaf = SSL_get1_peer_certificate(ssl);
	if (leaf != NULL) {
		return leaf;
	}
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
	if (chain == NULL || sk_X509_num(chain) == 0 || SSL_is_server(ssl)) {
		return NULL;
	}
	leaf = sk_X509_value(chain, 0);
	X509_up_ref(leaf);
	return leaf;
}

X509_STORE *go_ossl_store_new(go_ossl_result *r) {
	begin(r);
	X509_STORE *store = X509_STORE_new();
	finish_ret(r, store != NULL);
	return store;
}

void go_ossl_store_add_cert(X509_STORE *store, X509 *cert, go_ossl_result *r) {
	begin(r);
	// The store takes its own reference.
	finish_ret(r, X509_STORE_add_cert(store, cert));
}

// ---- end of the section ----

SSL_CTX *go_ossl_ctx_new(go_ossl_result *r) {
	begin(r);
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	if (ctx != NULL && !alpn_attach(ctx)) {
		SSL_CTX_free(ctx);
		ctx = NULL;
	}
	if (ctx != NULL) {
		// The Go side loops over partial writes and may retry a write from
		// a buffer at another address.
		SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
		// Read-ahead: one read(2) takes whatever the socket holds, up to
		// the read buffer, instead of two per record (header, then body).
		// SSL_read still reports WANT_READ only after the socket said
		// EAGAIN, so the Go side parks only when the kernel is empty.
		SSL_CTX_set_read_ahead(ctx, 1);
	}
	finish_ret(r, ctx != NULL);
	return ctx;
}

void go_ossl_ctx_set_proto_versions(SSL_CTX *ctx, int min, int max, go_ossl_result *r) {
	begin(r);
	int ok = (int)SSL_CTX_set_min_proto_version(ctx, min);
	if (ok == 1) {
		ok = (int)SSL_CTX_set_max_proto_version(ctx, max);
	}
	finish_ret(r, ok);
}

void go_ossl_ctx_set_cipher_list(SSL_CTX *ctx, const char *list, go_ossl_result *r) {
	begin(r);
	finish_ret(r, SSL_CTX_set_cipher_list(ctx, list));
}

void go_ossl_ctx_set_ciphersuites(SSL_CTX *ctx, const char *list, go_ossl_result *r) {
	begin(r);
	finish_ret(r, SSL_CTX_set_ciphersuites(ctx, list));
}

void go_ossl_ctx_set_groups(SSL_CTX *ctx, const char *list, go_ossl_result *r) {
	begin(r);
	finish_ret(r, (int)SSL_CTX_set1_groups_list(ctx, list));
}

void go_ossl_ctx_use_certificate(SSL_CTX *ctx, X509 *cert, go_ossl_result *r) {
	begin(r);
	finish_ret(r, SSL_CTX_use_certificate(ctx, cert));
}

void go_ossl_ctx_add_chain_certificate(SSL_CTX *ctx, X509 *cert, go_ossl_result *r) {
	begin(r);
	// add1: the chain takes its own reference; the Go Certificate keeps its.
	finish_ret(r, (int)SSL_CTX_add1_chain_cert(ctx, cert));
}

void go_ossl_ctx_use_private_key(SSL_CTX *ctx, EVP_PKEY *key, go_ossl_result *r) {
	begin(r);
	// SSL_CTX_use_PrivateKey checks the key against the certificate.
	finish_ret(r, SSL_CTX_use_PrivateKey(ctx, key));
}

void go_ossl_ctx_load_verify_locations(SSL_CTX *ctx, const char *file, const char *dir, go_ossl_result *r) {
	begin(r);
	finish_ret(r, SSL_CTX_load_verify_locations(ctx, file, dir));
}

void go_ossl_ctx_set_default_verify_paths(SSL_CTX *ctx, go_ossl_result *r) {
	begin(r);
	finish_ret(r, SSL_CTX_set_default_verify_paths(ctx));
}

// The server's ALPN preference list. SetNextProtos may replace it while
// handshakes on the same SSL_CTX read it, so a list is never freed while its
// SSL_CTX lives: a new list is published with an atomic store and keeps the
// one it replaced on its retired chain. The holder is made with the SSL_CTX,
// is the select callback's argument, and is freed with the SSL_CTX through
// its ex data.
typedef struct alpn_list {
	struct alpn_list *retired; // the list this one replaced, freed with it
	unsigned int len;
	unsigned char protos[];
} alpn_list;

typedef struct {
	_Atomic(alpn_list *) current;
} alpn_holder;

// alpn_index is the SSL_CTX ex-data slot owning the holder, allocated once.
static int alpn_index = -1;
static CRYPTO_ONCE alpn_index_once = CRYPTO_ONCE_STATIC_INIT;

static void alpn_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp) {
	alpn_holder *h = ptr;
	if (h == NULL) {
		return;
	}
	alpn_list *list = atomic_load(&h->current);
	while (list != NULL) {
		alpn_list *next = list->retired;
		OPENSSL_free(list);
		list = next;
	}
	OPENSSL_free(h);
}

static void alpn_index_init(void) {
	alpn_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, alpn_free);
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
	alpn_holder *h = arg;
	alpn_list *list = atomic_load_explicit(&h->current, memory_order_acquire);
	unsigned char *selected;
	if (list == NULL) {
		return SSL_TLSEXT_ERR_NOACK;
	}
	if (SSL_select_next_proto(&selected, outlen, list->protos, list->len, in, inlen) != OPENSSL_NPN_NEGOTIATED) {
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	*out = selected;
	return SSL_TLSEXT_ERR_OK;
}

// alpn_attach gives a new SSL_CTX its holder and select callback.
static int alpn_attach(SSL_CTX *ctx) {
	if (!CRYPTO_THREAD_run_once(&alpn_index_once, alpn_index_init) || alpn_index < 0) {
		return 0;
	}
	alpn_holder *h = OPENSSL_zalloc(sizeof(alpn_holder));
	if (h == NULL) {
		return 0;
	}
	if (!SSL_CTX_set_ex_data(ctx, alpn_index, h)) {
		OPENSSL_free(h);
		return 0;
	}
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, h);
	return 1;
}

void go_ossl_ctx_set_alpn(SSL_CTX *ctx, const unsigned char *protos, unsigned int len, go_ossl_result *r) {
	begin(r);
	alpn_holder *h = SSL_CTX_get_ex_data(ctx, alpn_index);
	alpn_list *list = OPENSSL_malloc(sizeof(alpn_list) + len);
	// SSL_CTX_set_alpn_protos returns 0 on success.
	if (h == NULL || list == NULL || SSL_CTX_set_alpn_protos(ctx, protos, len) != 0) {
		OPENSSL_free(list);
		finish_ret(r, 0);
		return;
	}
	list->len = len;
	memcpy(list->protos, protos, len);
	// Callers serialise changes to ctx, so only handshakes race this store.
	list->retired = atomic_load(&h->current);
	atomic_store_explicit(&h->current, list, memory_order_release);
	finish_ret(r, 1);
}

void go_ossl_ctx_free(SSL_CTX *ctx) {
	SSL_CTX_free(ctx);
}

// The FIPS providers stay loaded for the life of the process: algorithms
// fetched while FIPS mode was on may still be in use by SSL_CTXs.
static CRYPTO_ONCE fips_once = CRYPTO_ONCE_STATIC_INIT;
static go_ossl_result fips_load_result;
static OSSL_PROVIDER *fips_provider, *base_provider;

static void fips_load_once(void) {
	go_ossl_result *r = &fips_load_result;
	begin(r);
	// retain_fallbacks 1: loading a provider must not stop OpenSSL from
	// loading the default one, which SetFIPS(false) needs.
	fips_provider = OSSL_PROVIDER_try_load(NULL, "fips", 1);
	if (fips_provider != NULL) {
		// base: the key and certificate encoders and decoders FIPS lacks.
		base_provider = OSSL_PROVIDER_try_load(NULL, "base", 1);
		if (base_provider == NULL) {
			OSSL_PROVIDER_unload(fips_provider);
			fips_provider = NULL;
		}
	}
	finish_ret(r, fips_provider != NULL);
}

void go_ossl_fips_load_providers(go_ossl_result *r) {
	if (!CRYPTO_THREAD_run_once(&fips_once, fips_load_once)) {
		begin(r);
		finish_ret(r, 0);
		return;
	}
	// The caller frees r->errors: it gets its own copy of the once-made
	// result's entries, which stay for the next caller.
	*r = fips_load_result;
	r->errors = 0;
	r->nerrors = 0;
	if (fips_load_result.nerrors > 0) {
		size_t size = fips_load_result.nerrors * sizeof(go_ossl_error_entry);
		go_ossl_error_entry *copy = malloc(size);
		if (copy == NULL) {
			r->dropped += fips_load_result.nerrors;
			return;
		}
		memcpy(copy, go_ossl_errors_at(fips_load_result.errors), size);
		r->errors = (uintptr_t)copy;
		r->nerrors = fips_load_result.nerrors;
	}
}

void go_ossl_fips_enable(int enabled, go_ossl_result *r) {
	begin(r);
	finish_ret(r, EVP_default_properties_enable_fips(NULL, enabled));
}

int go_ossl_fips_enabled(void) {
	if (EVP_default_properties_is_fips_enabled(NULL) != 1) {
		return 0;
	}
	ERR_set_mark();
	EVP_MD *md = EVP_MD_fetch(NULL, "SHA2-256", NULL);
	ERR_pop_to_mark();
	int ok = md != NULL;
	EVP_MD_free(md);
	return ok;
}

// no_password refuses encrypted PEM blocks instead of prompting on the
// terminal, OpenSSL's default: a key, or a certificate whose block has
// "Proc-Type: 4,ENCRYPTED" headers.
static int no_password(char *buf, int size, int rwflag, void *u) {
	return -1;
}

X509 *go_ossl_x509_from_pem(const void *pem, int len, go_ossl_result *r) {
	begin(r);
	BIO *bio = BIO_new_mem_buf(pem, len);
	X509 *cert = NULL;
	if (bio != NULL) {
		cert = PEM_read_bio_X509(bio, NULL, no_password, NULL);
		BIO_free(bio);
	}
	finish_ret(r, cert != NULL);
	return cert;
}

// password is the argument of with_password.
typedef struct {
	const char *data;
	int len;
} password;

// with_password gives OpenSSL the caller's password, refusing one longer
// than OpenSSL's buffer rather than cutting it.
static int with_password(char *buf, int size, int rwflag, void *u) {
	const password *p = u;
	if (p->len > size) {
		return -1;
	}
	memcpy(buf, p->data, p->len);
	return p->len;
}

EVP_PKEY *go_ossl_pkey_from_pem(const void *pem, int len, int public_key, const char *pass, int pass_len,
                                go_ossl_result *r) {
	begin(r);
	BIO *bio = BIO_new_mem_buf(pem, len);
	EVP_PKEY *key = NULL;
	password p = {pass, pass_len};
	pem_password_cb *cb = pass != NULL ? with_password : no_password;
	if (bio != NULL) {
		key = public_key ? PEM_read_bio_PUBKEY(bio, NULL, cb, &p) : PEM_read_bio_PrivateKey(bio, NULL, cb, &p);
		BIO_free(bio);
	}
	finish_ret(r, key != NULL);
	return key;
}

int go_ossl_x509_der(X509 *cert, unsigned char **out) {
	*out = NULL;
	return i2d_X509(cert, out);
}

void go_ossl_free(void *p) {
	OPENSSL_free(p);
}

int go_ossl_peer_chain(SSL *ssl, X509 **out, int max) {
	int n = 0;
	X509 *leaf = SSL_get1_peer_certificate(ssl);
	if (leaf == NULL || max < 1) {
		X509_free(leaf);
		return 0;
	}
	out[n++] = leaf;
	// A client's chain starts with the leaf, a server's does not.
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
	for (int i = 0; chain != NULL && i < sk_X509_num(chain) && n < max; i++) {
		X509 *c = sk_X509_value(chain, i);
		if (X509_cmp(c, leaf) == 0) {
			continue;
		}
		X509_up_ref(c);
		out[n++] = c;
	}
	return n;
}

int go_ossl_peer_chains(SSL *ssl, X509 **out, int max, int with_verified) {
	int n = go_ossl_peer_chain(ssl, out, max);
	STACK_OF(X509) *verified = with_verified ? SSL_get0_verified_chain(ssl) : NULL;
	if (verified == NULL || sk_X509_num(verified) > max) {
		return n; // a chain is returned whole or not at all
	}
	out[n++] = NULL;
	for (int i = 0; i < sk_X509_num(verified); i++) {
		X509 *c = sk_X509_value(verified, i);
		X509_up_ref(c);
		out[n++] = c;
	}
	return n;
}

const char *go_ossl_servername(SSL *ssl) {
	return SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
}

// Keys, certificates and Ctx settings of the spacemonkeygo surface.

void go_ossl_ctx_set_curve(SSL_CTX *ctx, int nid, go_ossl_result *r) {
	begin(r);
	// By name: SSL_CTX_set1_groups takes any NID, even one that names no
	// group, where the list parser refuses what it does not know.
	const char *name = OBJ_nid2sn(nid);
	finish_ret(r, name != NULL && SSL_CTX_set1_groups_list(ctx, name) == 1);
}

long go_ossl_ctx_mode(SSL_CTX *ctx, long set, long clear) {
	if (set != 0) {
		SSL_CTX_set_mode(ctx, set);
	}
	if (clear != 0) {
		SSL_CTX_clear_mode(ctx, clear);
	}
	return SSL_CTX_get_mode(ctx);
}

EVP_PKEY *go_ossl_pkey_generate(const char *type, int ec_nid, go_ossl_result *r) {
	begin(r);
	EVP_PKEY *key = NULL;
	if (ec_nid != NID_undef) {
		// OBJ_nid2sn gives names such as "prime256v1", which the EC key
		// manager accepts as group names.
		const char *group = OBJ_nid2sn(ec_nid);
		if (group != NULL) {
			key = EVP_PKEY_Q_keygen(NULL, NULL, type, group);
		}
	} else {
		key = EVP_PKEY_Q_keygen(NULL, NULL, type);
	}
	finish_ret(r, key != NULL);
	return key;
}

EVP_PKEY *go_ossl_rsa_generate(size_t bits, unsigned long exponent, go_ossl_result *r) {
	begin(r);
	EVP_PKEY *key = NULL;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_size_t(OSSL_PKEY_PARAM_RSA_BITS, &bits),
		OSSL_PARAM_construct_ulong(OSSL_PKEY_PARAM_RSA_E, &exponent),
		OSSL_PARAM_construct_end(),
	};
	EVP_PKEY_CTX *kctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (kctx != NULL && EVP_PKEY_keygen_init(kctx) == 1 && EVP_PKEY_CTX_set_params(kctx, params) == 1) {
		EVP_PKEY_generate(kctx, &key);
	}
	EVP_PKEY_CTX_free(kctx);
	finish_ret(r, key != NULL);
	return key;
}

void go_ossl_pkey_sign(EVP_PKEY *key, const char *md, const unsigned char *data, size_t len, unsigned char *sig,
                       size_t *sig_len, go_ossl_result *r) {
	begin(r);
	EVP_MD_CTX *mdctx = EVP_MD_CTX_new();
	int ok = mdctx != NULL && EVP_DigestSignInit_ex(mdctx, NULL, md, NULL, NULL, key, NULL) == 1 &&
	         EVP_DigestSign(mdctx, sig, sig_len, data, len) == 1;
	EVP_MD_CTX_free(mdctx);
	finish_ret(r, ok);
}

void go_ossl_pkey_verify(EVP_PKEY *key, const char *md, const unsigned char *data, size_t len,
                         const unsigned char *sig, size_t sig_len, go_ossl_result *r) {
	begin(r);
	EVP_MD_CTX *mdctx = EVP_MD_CTX_new();
	int ret = -1;
	if (mdctx != NULL && EVP_DigestVerifyInit_ex(mdctx, NULL, md, NULL, NULL, key, NULL) == 1) {
		// EVP_DigestVerify returns 0 for a signature that does not match
		// and a negative value for one it cannot parse: both are a
		// signature that does not verify.
		ret = EVP_DigestVerify(mdctx, sig, sig_len, data, len) == 1 ? 1 : 0;
	}
	EVP_MD_CTX_free(mdctx);
	finish_ret(r, ret);
}

int go_ossl_pkey_eq(const EVP_PKEY *a, const EVP_PKEY *b) {
	if (a == NULL || b == NULL) {
		return 0;
	}
	ERR_set_mark();
	int eq = EVP_PKEY_eq(a, b);
	ERR_pop_to_mark();
	return eq;
}

void go_ossl_pkey_encode(EVP_PKEY *key, int selection, const char *format, const char *structure,
                         unsigned char **out, size_t *out_len, go_ossl_result *r) {
	begin(r);
	*out = NULL;
	*out_len = 0;
	int ok = 0;
	OSSL_ENCODER_CTX *ectx = OSSL_ENCODER_CTX_new_for_pkey(key, selection, format, structure, NULL);
	// A context without encoders means no encoder has this structure for
	// this key type; OSSL_ENCODER_to_data would say nothing clearer.
	if (ectx != NULL && OSSL_ENCODER_CTX_get_num_encoders(ectx) > 0) {
		ok = OSSL_ENCODER_to_data(ectx, out, out_len);
	}
	OSSL_ENCODER_CTX_free(ectx);
	finish_ret(r, ok);
}

EVP_PKEY *go_ossl_pkey_from_der(const void *der, long len, int public_key, go_ossl_result *r) {
	begin(r);
	const unsigned char *p = der;
	EVP_PKEY *key = public_key ? d2i_PUBKEY(NULL, &p, len) : d2i_AutoPrivateKey(NULL, &p, len);
	finish_ret(r, key != NULL);
	return key;
}

EVP_PKEY *go_ossl_x509_pubkey(X509 *cert, go_ossl_result *r) {
	begin(r);
	EVP_PKEY *key = X509_get_pubkey(cert);
	finish_ret(r, key != NULL);
	return key;
}

void go_ossl_x509_check(X509 *cert, int what, const char *chk, size_t len, unsigned int flags, go_ossl_result *r) {
	begin(r);
	int ret = -1;
	switch (what) {
	case 0:
		ret = X509_check_host(cert, chk, len, flags, NULL);
		break;
	case 1:
		ret = X509_check_email(cert, chk, len, flags);
		break;
	case 2:
		ret = X509_check_ip(cert, (const unsigned char *)chk, len, flags);
		break;
	}
	finish_ret(r, ret);
}

char *go_ossl_x509_serial_hex(X509 *cert) {
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
	BN_free(bn);
	return hex;
}

int go_ossl_name_entry(const X509_NAME *name, int nid, unsigned char **out) {
	*out = NULL;
	int i = X509_NAME_get_index_by_NID(name, nid, -1);
	if (i < 0) {
		return -1;
	}
	// The entry may be a PrintableString, a BMPString...: ASN1_STRING_to_UTF8
	// converts each, where X509_NAME_get_text_by_NID copies raw bytes.
	int n = ASN1_STRING_to_UTF8(out, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
	if (n < 0) {
		ERR_clear_error();
		return -2;
	}
	return n;
}
