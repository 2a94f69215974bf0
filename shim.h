// shim.h is the one list of C helpers the Go package calls. Each helper that
// runs an SSL operation clears the thread's error queue, makes exactly one
// OpenSSL call and returns, in one cgo call, everything the Go side needs to
// classify the outcome: a goroutine may change OS thread between two cgo
// calls, and OpenSSL's error queue and errno are per thread.
#ifndef GO_OSSL_SHIM_H
#define GO_OSSL_SHIM_H

#include <stddef.h>
#include <openssl/opensslv.h>

// The package uses OpenSSL 3 interfaces throughout (SSL_read_ex,
// ERR_get_error_all, providers); older headers would fail with a pile of
// undefined names instead of this one line.
#if OPENSSL_VERSION_NUMBER < 0x30000000L
#error "github.com/closenotify/openssl needs OpenSSL 3.0 or newer, and these OpenSSL headers are older (1.1.1?): install OpenSSL 3's development files, or point PKG_CONFIG_PATH at an OpenSSL 3 installation's lib/pkgconfig"
#endif

#include <openssl/ssl.h>

// GO_OSSL_MAX_ERRORS bounds how many error-queue entries one call returns;
// older entries beyond it are counted in dropped.
#define GO_OSSL_MAX_ERRORS 8
#define GO_OSSL_ERROR_DATA 112

typedef struct {
	unsigned long code;           // ERR_get_error_all's packed code
	char data[GO_OSSL_ERROR_DATA]; // its text data, when it has some
} go_ossl_error_entry;

// go_ossl_result is what one SSL operation returned.
typedef struct {
	int ret;       // the OpenSSL function's own return value
	int ssl_error; // SSL_get_error(ssl, ret) when the call failed, else 0
	int err_no;    // errno right after the call (cleared before it)
	int nerrors;   // entries filled in errors
	int dropped;   // entries that did not fit
	size_t n;      // bytes read or written (SSL_read_ex / SSL_write_ex)
	go_ossl_error_entry errors[GO_OSSL_MAX_ERRORS];
} go_ossl_result;

// SSL operations: one OpenSSL call each.
void go_ossl_do_handshake(SSL *ssl, go_ossl_result *r);
void go_ossl_read(SSL *ssl, unsigned char *buf, size_t len, go_ossl_result *r);
void go_ossl_write(SSL *ssl, const unsigned char *buf, size_t len, go_ossl_result *r);
void go_ossl_shutdown(SSL *ssl, go_ossl_result *r);

// go_ossl_new_ssl creates an SSL on ctx that reads and writes fd through a
// socket BIO that never closes fd, with the modes the Go side relies on.
SSL *go_ossl_new_ssl(SSL_CTX *ctx, int fd, int is_server, go_ossl_result *r);

// Per-connection settings made before the handshake (SNI, host and IP
// checks, verification). Each returns 1 on success, as OpenSSL does.
void go_ossl_set_host(SSL *ssl, const char *host, int sni, go_ossl_result *r);
void go_ossl_set_sni(SSL *ssl, const char *host, go_ossl_result *r);
void go_ossl_set_ip(SSL *ssl, const char *ip, go_ossl_result *r);

// SSL_CTX set-up: the macros of ssl.h are not callable from cgo.
SSL_CTX *go_ossl_ctx_new(go_ossl_result *r);
void go_ossl_ctx_set_proto_versions(SSL_CTX *ctx, int min, int max, go_ossl_result *r);
void go_ossl_ctx_set_cipher_list(SSL_CTX *ctx, const char *list, go_ossl_result *r);
void go_ossl_ctx_set_ciphersuites(SSL_CTX *ctx, const char *list, go_ossl_result *r);
void go_ossl_ctx_set_groups(SSL_CTX *ctx, const char *list, go_ossl_result *r);
void go_ossl_ctx_use_certificate(SSL_CTX *ctx, X509 *cert, go_ossl_result *r);
void go_ossl_ctx_add_chain_certificate(SSL_CTX *ctx, X509 *cert, go_ossl_result *r);
void go_ossl_ctx_use_private_key(SSL_CTX *ctx, EVP_PKEY *key, go_ossl_result *r);
void go_ossl_ctx_load_verify_locations(SSL_CTX *ctx, const char *file, const char *dir, go_ossl_result *r);
void go_ossl_ctx_set_default_verify_paths(SSL_CTX *ctx, go_ossl_result *r);
// go_ossl_ctx_set_alpn sets the client's offer and the server's preference
// list (wire format); the server list is copied and owned by ctx's ex data.
void go_ossl_ctx_set_alpn(SSL_CTX *ctx, const unsigned char *protos, unsigned int len, go_ossl_result *r);
void go_ossl_ctx_free(SSL_CTX *ctx);

// PEM and DER loading.
X509 *go_ossl_x509_from_pem(const void *pem, int len, go_ossl_result *r);
EVP_PKEY *go_ossl_pkey_from_pem(const void *pem, int len, go_ossl_result *r);
// go_ossl_x509_der encodes cert into a buffer allocated by OpenSSL, to be
// released with go_ossl_free.
int go_ossl_x509_der(X509 *cert, unsigned char **out);
void go_ossl_free(void *p);

// FIPS mode (fips.go), on the default library context.
// go_ossl_fips_load_providers loads and activates OpenSSL's "fips" and
// "base" providers, keeping the default provider as a fallback. It runs
// once per process; every call returns that first run's result.
void go_ossl_fips_load_providers(go_ossl_result *r);
void go_ossl_fips_enable(int enabled, go_ossl_result *r);
// go_ossl_fips_enabled reports whether "fips=yes" is in the default property
// query and a provider answers it: SHA2-256 can be fetched. It leaves the
// thread's error queue as it found it.
int go_ossl_fips_enabled(void);

// Connection state, read after the handshake. The peer chain is returned
// leaf first, at most max entries, each with a reference the caller frees.
int go_ossl_peer_chain(SSL *ssl, X509 **out, int max);
const char *go_ossl_servername(SSL *ssl);

#endif
