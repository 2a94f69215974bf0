// shim.c: the thin C layer. No policy lives here: each helper makes one
// OpenSSL call and reports what happened (see shim.h for why).
#include "shim.h"

#include <errno.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/x509v3.h>

// begin prepares r for one call: the queue and errno must hold only what the
// call itself leaves there.
static void begin(go_ossl_result *r) {
	memset(r, 0, offsetof(go_ossl_result, errors));
	ERR_clear_error();
	errno = 0;
}

// finish records errno and drains the queue, oldest entry first.
static void finish(go_ossl_result *r, int saved_errno) {
	const char *data;
	int flags;
	unsigned long code;

	r->err_no = saved_errno;
	while ((code = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
		if (r->nerrors == GO_OSSL_MAX_ERRORS) {
			r->dropped++;
			continue;
		}
		go_ossl_error_entry *e = &r->errors[r->nerrors++];
		e->code = code;
		e->data[0] = 0;
		if ((flags & ERR_TXT_STRING) && data != NULL) {
			strncpy(e->data, data, GO_OSSL_ERROR_DATA - 1);
			e->data[GO_OSSL_ERROR_DATA - 1] = 0;
		}
	}
}

// finish_ssl is finish for calls on an SSL object. SSL_get_error must see
// the queue before it is drained, and is asked only about failures: it
// reads SSL_shutdown's successful 0, for one, as SSL_ERROR_SYSCALL.
static void finish_ssl(SSL *ssl, go_ossl_result *r, int ret, int failed) {
	int saved_errno = errno;
	r->ret = ret;
	r->ssl_error = failed ? SSL_get_error(ssl, ret) : SSL_ERROR_NONE;
	finish(r, saved_errno);
}

static void finish_ret(go_ossl_result *r, int ret) {
	int saved_errno = errno;
	r->ret = ret;
	finish(r, saved_errno);
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
	if (is_server) {
		SSL_set_accept_state(ssl);
	} else {
		SSL_set_connect_state(ssl);
	}
	finish_ret(r, 1);
	return ssl;
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

SSL_CTX *go_ossl_ctx_new(go_ossl_result *r) {
	begin(r);
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	if (ctx != NULL) {
		// The Go side loops over partial writes and may retry a write from
		// a buffer at another address.
		SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
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

// alpn_index is the SSL_CTX ex-data slot holding the server's ALPN
// preference list, freed together with the SSL_CTX.
static int alpn_index = -1;

typedef struct {
	unsigned int len;
	unsigned char protos[];
} alpn_list;

static void alpn_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp) {
	OPENSSL_free(ptr);
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
	alpn_list *list = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), alpn_index);
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

void go_ossl_ctx_set_alpn(SSL_CTX *ctx, const unsigned char *protos, unsigned int len, go_ossl_result *r) {
	begin(r);
	if (alpn_index < 0) {
		// Racing first calls may each get an index; any of them works.
		alpn_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, alpn_free);
	}
	alpn_list *list = OPENSSL_malloc(sizeof(alpn_list) + len);
	if (alpn_index < 0 || list == NULL) {
		OPENSSL_free(list);
		finish_ret(r, 0);
		return;
	}
	list->len = len;
	memcpy(list->protos, protos, len);
	OPENSSL_free(SSL_CTX_get_ex_data(ctx, alpn_index));
	int ok = SSL_CTX_set_ex_data(ctx, alpn_index, list);
	// SSL_CTX_set_alpn_protos returns 0 on success.
	if (ok == 1 && SSL_CTX_set_alpn_protos(ctx, protos, len) != 0) {
		ok = 0;
	}
	if (ok == 1) {
		SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	}
	finish_ret(r, ok);
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
	*r = fips_load_result;
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

EVP_PKEY *go_ossl_pkey_from_pem(const void *pem, int len, go_ossl_result *r) {
	begin(r);
	BIO *bio = BIO_new_mem_buf(pem, len);
	EVP_PKEY *key = NULL;
	if (bio != NULL) {
		key = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
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

const char *go_ossl_servername(SSL *ssl) {
	return SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
}
