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

// go_ossl_result is what one SSL operation returned. It is small: the error
// queue is copied out only for a call that failed and left entries, into an
// array allocated with malloc that the caller frees (the Go side converts
// it at once). Calls that succeed, or only want to read or write, leave the
// queue empty.
typedef struct {
	int ret;       // the OpenSSL function's own return value
	int ssl_error; // SSL_get_error(ssl, ret) when the call failed, else 0
	int err_no;    // errno right after the call (cleared before it)
	int nerrors;   // entries in errors
	int dropped;   // entries that did not fit, or found no memory
	size_t n;      // bytes read or written (SSL_read_ex / SSL_write_ex)
	// errors is the address of nerrors entries to free(), or 0. It is an
	// integer, not a pointer, so that the struct holds no pointers and cgo
	// passes it to C without its runtime pointer check, which otherwise
	// walked the struct on every SSL call. Read it with go_ossl_errors_at.
	uintptr_t errors;
} go_ossl_result;

// go_ossl_errors_at is the go_ossl_error_entry array at a go_ossl_result's
// errors.
static inline go_ossl_error_entry *go_ossl_errors_at(uintptr_t errors) {
	return (go_ossl_error_entry *)errors;
}

// SSL operations: one OpenSSL call each.
void go_ossl_do_handshake(SSL *ssl, go_ossl_result *r);
void go_ossl_read(SSL *ssl, unsigned char *buf, size_t len, go_ossl_result *r);
void go_ossl_write(SSL *ssl, const unsigned char *buf, size_t len, go_ossl_result *r);
void go_ossl_shutdown(SSL *ssl, go_ossl_result *r);

// go_ossl_release_buffers frees ssl's read and write buffers when neither
// holds data (SSL_free_buffers); OpenSSL allocates them again for the next
// read or write. It does nothing on releases whose SSL_free_buffers could
// free a buffer still in use (CVE-2024-4741).
void go_ossl_release_buffers(SSL *ssl);

// go_ossl_new_ssl creates an SSL on ctx that reads and writes fd through a
// socket BIO that never closes fd, with the modes the Go side relies on.
SSL *go_ossl_new_ssl(SSL_CTX *ctx, int fd, int is_server, go_ossl_result *r);

// go_ossl_new_ssl_bio_pair creates an SSL on ctx for the generic path: the
// SSL reads and writes one half of a BIO pair whose two buffers hold bufsize
// bytes each; *network is the other half, which the Go side reads OpenSSL's
// output from and writes the peer's bytes into. The SSL owns its half; the
// caller frees *network with go_ossl_bio_free after SSL_free.
SSL *go_ossl_new_ssl_bio_pair(SSL_CTX *ctx, int is_server, size_t bufsize, BIO **network, go_ossl_result *r);

// The network half of a BIO pair. Memory operations: they neither block nor
// touch errno, and their return value says all there is to say, so they do
// not take a go_ossl_result. go_ossl_bio_take and go_ossl_bio_give return
// the bytes moved (0 when the pair has nothing to read or no room).
int go_ossl_bio_take(BIO *network, unsigned char *buf, int len);
int go_ossl_bio_give(BIO *network, const unsigned char *buf, int len);
// go_ossl_bio_close_write signals the peer's EOF: once the SSL has read
// what was given before, its reads see end of file.
void go_ossl_bio_close_write(BIO *network);
void go_ossl_bio_free(BIO *network);

// Per-connection settings made before the handshake (SNI, host and IP
// checks, verification). Each returns 1 on success, as OpenSSL does.
void go_ossl_set_host(SSL *ssl, const char *host, int sni, go_ossl_result *r);
void go_ossl_set_sni(SSL *ssl, const char *host, go_ossl_result *r);
void go_ossl_set_ip(SSL *ssl, const char *ip, go_ossl_result *r);

// ---- Sessions, host names, SNI, verification callbacks, key log ----

#include <stdint.h>

// Go callbacks: each trampoline below finds the Conn through a cgo.Handle
// kept in the SSL's ex data (never a Go pointer) and calls an exported Go
// function (callback.go). SSL operations during which a trampoline may run
// must not be marked nocallback (cgo.go).

// go_ossl_set_conn_handle stores the Conn's handle in ssl's ex data, where
// the trampolines find it. It returns 1 on success.
int go_ossl_set_conn_handle(SSL *ssl, uintptr_t handle);

// go_ossl_ctx_set_verify is SSL_CTX_set_verify with the verify trampoline
// or none: SSL_new copies both into each SSL, so a change never reaches a
// handshake in progress.
void go_ossl_ctx_set_verify(SSL_CTX *ctx, int mode, int with_callback);
// The other installers put a trampoline on ctx for good. OpenSSL reads
// these callback pointers from the SSL_CTX during the handshake, testing
// one for NULL and then calling it: clearing it while a handshake runs
// could make OpenSSL call NULL. A removed hook is a nil Go hook instead,
// for which the trampoline does what OpenSSL does without a callback.
void go_ossl_ctx_set_cert_verify_hook(SSL_CTX *ctx);
void go_ossl_ctx_set_servername_hook(SSL_CTX *ctx);
void go_ossl_ctx_set_keylog_hook(SSL_CTX *ctx);
void go_ossl_ctx_set_new_session_hook(SSL_CTX *ctx);

// go_ossl_switch_ctx moves ssl to ctx during the servername callback
// (SSL_set_SSL_CTX), and takes ctx's verify mode, callback and depth, which
// SSL_set_SSL_CTX leaves as the first SSL_CTX set them.
void go_ossl_switch_ctx(SSL *ssl, SSL_CTX *ctx);
// go_ossl_require_verify makes ssl verify the peer (SSL_VERIFY_PEER added
// to its mode), keeping its verify callback.
void go_ossl_require_verify(SSL *ssl);

// Server session settings (macros in ssl.h). Each returns the old value.
long go_ossl_ctx_set_session_cache_mode(SSL_CTX *ctx, long mode);
long go_ossl_ctx_get_session_cache_mode(SSL_CTX *ctx);
long go_ossl_ctx_sess_set_cache_size(SSL_CTX *ctx, long size);
long go_ossl_ctx_sess_get_cache_size(SSL_CTX *ctx);
void go_ossl_ctx_set_session_id(SSL_CTX *ctx, const unsigned char *id, unsigned int len, go_ossl_result *r);

// Client sessions, as DER. go_ossl_get_session returns the session's
// encoded length (0 when ssl has no session) and whether it can be resumed;
// go_ossl_session_der encodes it into buf of that length.
int go_ossl_get_session(SSL *ssl, SSL_SESSION **out, int *resumable);
int go_ossl_session_der(SSL_SESSION *sess, unsigned char *buf, int len);
void go_ossl_set_session(SSL *ssl, const unsigned char *der, long len, go_ossl_result *r);
// go_ossl_set_session_object offers a session object the caller holds
// (the client session cache's); ssl takes a reference of its own.
void go_ossl_set_session_object(SSL *ssl, SSL_SESSION *sess, go_ossl_result *r);

// go_ossl_peer_leaf returns the peer's certificate, or the first of its
// chain when a failed verification left no peer certificate, for the
// error of a host name mismatch; the caller frees it.
X509 *go_ossl_peer_leaf(SSL *ssl);

// Trust from memory: a new, empty store, and a certificate added to a store
// (a Ctx's, from SSL_CTX_get_cert_store, or a new one).
X509_STORE *go_ossl_store_new(go_ossl_result *r);
void go_ossl_store_add_cert(X509_STORE *store, X509 *cert, go_ossl_result *r);
// ---- end of the section ----

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
// list (wire format). The server list is copied; handshakes running on ctx
// may go on reading the list it replaces, which lives as long as ctx.
void go_ossl_ctx_set_alpn(SSL_CTX *ctx, const unsigned char *protos, unsigned int len, go_ossl_result *r);
void go_ossl_ctx_free(SSL_CTX *ctx);

// PEM and DER loading.
X509 *go_ossl_x509_from_pem(const void *pem, int len, go_ossl_result *r);
// go_ossl_pkey_from_pem reads a private key, or a PKIX public key, and
// decrypts an encrypted one with the password of password_len bytes; a NULL
// password refuses encrypted keys.
EVP_PKEY *go_ossl_pkey_from_pem(const void *pem, int len, int public_key, const char *password, int password_len,
                                go_ossl_result *r);
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
// go_ossl_peer_chains is go_ossl_peer_chain followed, when with_verified is
// set and the whole of it fits in max entries, by a NULL and the chain
// OpenSSL's verification built (SSL_get0_verified_chain: leaf first, trust
// anchor last), each with a reference too; out has room for 2*max+1. (A
// NULL rather than a length through a pointer: a Go variable passed by
// address escapes to the heap.)
int go_ossl_peer_chains(SSL *ssl, X509 **out, int max, int with_verified);
const char *go_ossl_servername(SSL *ssl);

// Keys, certificates and Ctx settings of the spacemonkeygo surface.

// go_ossl_ctx_set_curve and go_ossl_ctx_mode: SSL_CTX_set1_groups_list and
// the mode calls are macros.
void go_ossl_ctx_set_curve(SSL_CTX *ctx, int nid, go_ossl_result *r);
// go_ossl_ctx_mode sets, then clears, mode bits and returns the modes set.
long go_ossl_ctx_mode(SSL_CTX *ctx, long set, long clear);

// go_ossl_pkey_generate makes a key of type ("EC", "ED25519"): an EC key on
// the curve of ec_nid: EVP_PKEY_Q_keygen is variadic, which cgo cannot call.
EVP_PKEY *go_ossl_pkey_generate(const char *type, int ec_nid, go_ossl_result *r);
// go_ossl_rsa_generate makes an RSA key of bits with public exponent
// exponent, passed as key generation parameters (EVP_PKEY_CTX_set_params):
// EVP_PKEY_Q_keygen has no exponent.
EVP_PKEY *go_ossl_rsa_generate(size_t bits, unsigned long exponent, go_ossl_result *r);
// go_ossl_pkey_sign signs data with key in one call (EVP_DigestSignInit_ex,
// then EVP_DigestSign) into sig, of *sig_len bytes on entry and the
// signature's length on return: md names the digest, NULL for key types
// that sign the message itself (Ed25519, Ed448).
void go_ossl_pkey_sign(EVP_PKEY *key, const char *md, const unsigned char *data, size_t len, unsigned char *sig,
                       size_t *sig_len, go_ossl_result *r);
// go_ossl_pkey_verify checks sig over data with key (EVP_DigestVerifyInit_ex,
// then EVP_DigestVerify); r->ret is 1 when it verifies, 0 when it does not,
// -1 when the check could not start (no such digest, a key that cannot
// verify).
void go_ossl_pkey_verify(EVP_PKEY *key, const char *md, const unsigned char *data, size_t len,
                         const unsigned char *sig, size_t sig_len, go_ossl_result *r);
// go_ossl_pkey_encode encodes the parts of key in selection (EVP_PKEY_KEYPAIR,
// EVP_PKEY_PUBLIC_KEY) as format ("PEM", "DER") in structure ("type-specific",
// "PrivateKeyInfo", "SubjectPublicKeyInfo") into *out, allocated by OpenSSL:
// one helper, because the encoder context lives and dies within the call.
void go_ossl_pkey_encode(EVP_PKEY *key, int selection, const char *format, const char *structure,
                         unsigned char **out, size_t *out_len, go_ossl_result *r);
// go_ossl_pkey_from_der is go_ossl_pkey_from_pem for unencrypted DER: d2i
// advances a pointer, which must be C memory.
EVP_PKEY *go_ossl_pkey_from_der(const void *der, long len, int public_key, go_ossl_result *r);
// go_ossl_pkey_eq is EVP_PKEY_eq (1: the same public key), 0 when either
// key is NULL. A comparison has no error to report: what EVP_PKEY_eq
// leaves on the error queue (keys of different types) is dropped.
int go_ossl_pkey_eq(const EVP_PKEY *a, const EVP_PKEY *b);

// go_ossl_x509_pubkey returns a reference to cert's public key, with the
// error queue of a key OpenSSL cannot decode.
EVP_PKEY *go_ossl_x509_pubkey(X509 *cert, go_ossl_result *r);
// go_ossl_x509_check runs X509_check_host (what 0), X509_check_email (1) or
// X509_check_ip (2, chk in binary) and returns its result in r->ret (1
// match, 0 no match, -2 malformed input, -1 internal error) with the queue.
void go_ossl_x509_check(X509 *cert, int what, const char *chk, size_t len, unsigned int flags, go_ossl_result *r);
// go_ossl_x509_serial_hex returns cert's serial number in upper-case hex,
// to be released with go_ossl_free, or NULL: the BIGNUM in between never
// reaches Go.
char *go_ossl_x509_serial_hex(X509 *cert);
// go_ossl_name_entry converts the first entry of name with nid to UTF-8 in
// *out, to be released with go_ossl_free, and returns its length: -1 when
// name has no such entry, -2 when it cannot be converted. Three calls in
// one, on pointers into name that Go need not hold.
int go_ossl_name_entry(const X509_NAME *name, int nid, unsigned char **out);

#endif
