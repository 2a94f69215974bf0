package openssl

/*
#include <openssl/ssl.h>
#include "shim.h"
*/
import "C"

import (
	"container/list"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// defaultSessionId is every Ctx's session id context until SetSessionId.
// It is the same for all: a client checks that a resumed session has its
// own Ctx's, so a session taken on one Ctx and offered on another
// ([DialSession]) needs the same one.
var defaultSessionId = []byte("github.com/closenotify/openssl")

// SessionCacheModes are the session cache modes of SetSessionCacheMode,
// OpenSSL's SSL_SESS_CACHE_ bits.
type SessionCacheModes int

const (
	// SessionCacheOff: no session cache; TLS tickets still resume.
	SessionCacheOff SessionCacheModes = C.SSL_SESS_CACHE_OFF
	// SessionCacheClient: clients cache sessions (see
	// [Ctx.SetClientSessionCache], which sets it).
	SessionCacheClient SessionCacheModes = C.SSL_SESS_CACHE_CLIENT
	// SessionCacheServer: servers cache sessions; OpenSSL's default.
	SessionCacheServer SessionCacheModes = C.SSL_SESS_CACHE_SERVER
	// SessionCacheBoth is SessionCacheClient | SessionCacheServer.
	SessionCacheBoth SessionCacheModes = C.SSL_SESS_CACHE_BOTH
	// SessionCacheNoAutoClear: do not flush expired sessions every 255
	// connections.
	SessionCacheNoAutoClear SessionCacheModes = C.SSL_SESS_CACHE_NO_AUTO_CLEAR
	// SessionCacheNoInternalLookup: do not look sessions up in the
	// internal cache.
	SessionCacheNoInternalLookup SessionCacheModes = C.SSL_SESS_CACHE_NO_INTERNAL_LOOKUP
	// SessionCacheNoInternalStore: do not store sessions in the internal
	// cache.
	SessionCacheNoInternalStore SessionCacheModes = C.SSL_SESS_CACHE_NO_INTERNAL_STORE
	// SessionCacheNoInternal is both NoInternal bits.
	SessionCacheNoInternal SessionCacheModes = C.SSL_SESS_CACHE_NO_INTERNAL
)

// The names spacemonkeygo/openssl gives the modifier bits.
const (
	NoAutoClear      = SessionCacheNoAutoClear
	NoInternalLookup = SessionCacheNoInternalLookup
	NoInternalStore  = SessionCacheNoInternalStore
	NoInternal       = SessionCacheNoInternal
)

// SetSessionCacheMode sets the session cache mode and returns the previous
// one (corresponds to SSL_CTX_set_session_cache_mode).
func (c *Ctx) SetSessionCacheMode(modes SessionCacheModes) SessionCacheModes {
	return SessionCacheModes(c.ctxValue(true, func(sslCtx *C.SSL_CTX) C.long {
		return C.go_ossl_ctx_set_session_cache_mode(sslCtx, C.long(modes))
	}))
}

// GetSessionCacheMode returns the session cache mode
// (corresponds to SSL_CTX_get_session_cache_mode).
func (c *Ctx) GetSessionCacheMode() SessionCacheModes {
	return SessionCacheModes(c.ctxValue(false, func(sslCtx *C.SSL_CTX) C.long {
		return C.go_ossl_ctx_get_session_cache_mode(sslCtx)
	}))
}

// SetSessionId sets the session id context, 1 to 32 bytes: a server resumes
// only sessions made under the same one, and a client only sessions taken
// under its own. An id longer than 32 bytes is an *Error and changes
// nothing.
//
// NewCtx sets the same one on every Ctx, so that a server that verifies
// client certificates resumes sessions instead of failing them with
// "session id context uninitialized", and a session moves between client
// Ctxs. A server resumes only its own sessions (its cache and ticket keys
// are its own), but after an SNI switch ([SSL.SetSSLCtx]) the Ctx switched
// to may see sessions made on the listener's other Ctxs: give Ctxs whose
// clients must not share sessions (one verifies client certificates,
// another does not) different ids
// (corresponds to SSL_CTX_set_session_id_context).
func (c *Ctx) SetSessionId(id []byte) error {
	if len(id) == 0 {
		return &Error{Op: "set session id", Err: errors.New("openssl: empty session id context")}
	}
	cid := C.CBytes(id)
	defer C.free(cid)
	return c.lockedCall("set session id", func(sslCtx *C.SSL_CTX, r *C.go_ossl_result) {
		C.go_ossl_ctx_set_session_id(sslCtx, (*C.uchar)(cid), C.uint(len(id)), r)
	})
}

// SetTimeout sets how long a session made afterwards can be resumed, in
// whole seconds (OpenSSL's default is two hours; below one second, one second),
// and returns the previous timeout. A server refuses to resume a session
// older than its timeout and makes a full handshake instead; TLS 1.3
// tickets carry it as their lifetime (corresponds to SSL_CTX_set_timeout).
func (c *Ctx) SetTimeout(t time.Duration) time.Duration {
	secs := max(int64(t/time.Second), 1)
	return time.Duration(c.ctxValue(true, func(sslCtx *C.SSL_CTX) C.long {
		return C.SSL_CTX_set_timeout(sslCtx, C.long(secs))
	})) * time.Second
}

// GetTimeout returns the session timeout (corresponds to
// SSL_CTX_get_timeout).
func (c *Ctx) GetTimeout() time.Duration {
	return time.Duration(c.ctxValue(false, func(sslCtx *C.SSL_CTX) C.long {
		return C.SSL_CTX_get_timeout(sslCtx)
	})) * time.Second
}

// SessSetCacheSize sets how many sessions the server's internal cache
// holds, 0 for no limit, and returns the previous size (OpenSSL's default
// is 20480) (corresponds to SSL_CTX_sess_set_cache_size).
func (c *Ctx) SessSetCacheSize(size int) int {
	return int(c.ctxValue(true, func(sslCtx *C.SSL_CTX) C.long {
		return C.go_ossl_ctx_sess_set_cache_size(sslCtx, C.long(size))
	}))
}

// SessGetCacheSize returns the size of the server's internal session cache
// (corresponds to SSL_CTX_sess_get_cache_size).
func (c *Ctx) SessGetCacheSize() int {
	return int(c.ctxValue(false, func(sslCtx *C.SSL_CTX) C.long {
		return C.go_ossl_ctx_sess_get_cache_size(sslCtx)
	}))
}

// SetNumTickets sets how many TLS 1.3 session tickets a server sends after
// a full handshake (OpenSSL's default is 2, one after a resumption); 0
// sends none, so TLS 1.3 clients cannot resume. TLS 1.2 tickets are
// switched off by the [NoTicket] option (corresponds to
// SSL_CTX_set_num_tickets).
func (c *Ctx) SetNumTickets(n int) error {
	if n < 0 {
		return &Error{Op: "set num tickets", Err: fmt.Errorf("openssl: negative number of tickets %d", n)}
	}
	if c.ctxValue(true, func(sslCtx *C.SSL_CTX) C.long { return C.long(C.SSL_CTX_set_num_tickets(sslCtx, C.size_t(n))) }) != 1 {
		return &Error{Op: "set num tickets", Err: errors.New("openssl: SSL_CTX_set_num_tickets failed")}
	}
	return nil
}

// Client side.

// ErrSessionNotResumable: the connection's session cannot be resumed, so
// [Conn.GetSession] returns no bytes. With TLS 1.3 the server sends its
// tickets after the handshake and they arrive with the first Read: a
// session taken before then has none. It is also the answer before the
// handshake and when the server sends no tickets (SetNumTickets(0)).
var ErrSessionNotResumable = errors.New("openssl: session not resumable (with TLS 1.3, the tickets arrive with the first Read)")

// GetSession returns the connection's session in DER, for
// [Conn.SetSession] or [DialSession] on a later connection to the same
// server. It returns an *Error wrapping [ErrSessionNotResumable] when the
// session cannot be resumed, in particular on a TLS 1.3 client before its
// first Read (corresponds to SSL_get1_session and i2d_SSL_SESSION).
func (c *Conn) GetSession() ([]byte, error) {
	c.sslMu.Lock()
	defer c.sslMu.Unlock()
	if c.ssl == nil {
		return nil, &Error{Op: "get session", Err: net.ErrClosed}
	}
	var sess *C.SSL_SESSION
	var resumable C.int
	n := C.go_ossl_get_session(c.ssl, &sess, &resumable)
	if sess == nil {
		return nil, &Error{Op: "get session", Err: ErrSessionNotResumable}
	}
	defer C.SSL_SESSION_free(sess)
	if resumable != 1 || n <= 0 {
		return nil, &Error{Op: "get session", Err: ErrSessionNotResumable}
	}
	der := make([]byte, int(n))
	if C.go_ossl_session_der(sess, (*C.uchar)(unsafe.SliceData(der)), n) != n {
		return nil, &Error{Op: "get session", Err: errors.New("openssl: i2d_SSL_SESSION failed")}
	}
	return der, nil
}

// SetSession offers session, from [Conn.GetSession], to the server; call
// it before the handshake. A server that cannot resume it (another server,
// an expired or damaged ticket) makes a full handshake: DidResume says
// which happened. Bytes that are not a session are an *Error
// (corresponds to d2i_SSL_SESSION and SSL_set_session).
func (c *Conn) SetSession(session []byte) error {
	if len(session) == 0 {
		return &Error{Op: "set session", Err: errors.New("openssl: empty session")}
	}
	return c.sslCall("set session", func(ssl *C.SSL, r *C.go_ossl_result) {
		if C.go_ossl_set_session(ssl, (*C.uchar)(unsafe.SliceData(session)), C.long(len(session)), r); r.ret == 1 {
			c.hooks.sessionSet = true
		}
	})
}

// DialSession is [Dial] offering session, from [Conn.GetSession], to the
// server; a nil session offers none. The server may resume it or make a
// full handshake (ConnectionState().DidResume says which).
func DialSession(network, addr string, sslCtx *Ctx, flags DialFlags, session []byte) (*Conn, error) {
	d := DialConfig{Flags: flags, Session: session}
	return d.Dial(network, addr, sslCtx)
}

// SetClientSessionCache gives the Ctx a client session cache of capacity
// sessions, as crypto/tls's ClientSessionCache: [Dial], and [Conn.SetServerName]
// on a client, offer the session last received for the same server name
// (for an IP address, the same address and port) and store the ones the
// server sends, TLS 1.3 tickets included (they arrive with the first Read).
// The least recently used session goes first when the cache is full. A
// capacity of 0 or less removes the cache. It adds SessionCacheClient and
// SessionCacheNoInternalStore to the cache mode, so that OpenSSL's own
// cache does not fill with client sessions: a Ctx that also serves then
// keeps no sessions of its own, and resumes only through tickets
// (corresponds to SSL_CTX_sess_set_new_cb).
func (c *Ctx) SetClientSessionCache(capacity int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer runtime.KeepAlive(c)
	mode := SessionCacheModes(C.go_ossl_ctx_get_session_cache_mode(c.sslCtx))
	if capacity <= 0 {
		if old := c.hooks.sessions.Swap(nil); old != nil {
			old.close()
		}
		C.go_ossl_ctx_set_session_cache_mode(c.sslCtx, C.long(mode&^SessionCacheClient))
		return
	}
	if old := c.hooks.sessions.Swap(newSessionCache(capacity)); old != nil {
		old.close()
	}
	// OpenSSL's own client store is never looked up; the Go cache is.
	C.go_ossl_ctx_set_session_cache_mode(c.sslCtx, C.long(mode|SessionCacheClient|SessionCacheNoInternalStore))
	C.go_ossl_ctx_set_new_session_hook(c.sslCtx) // for good: see shim.h
}

// useCachedSession sets the session key and offers the cached session, if
// any and none was set explicitly; r says whether that failed. sslMu held.
func (c *Conn) useCachedSession(key string, r *C.go_ossl_result) {
	cache := c.sslCtx.hooks.sessions.Load()
	if cache == nil || key == "" {
		return
	}
	c.hooks.sessionKey = key
	if !c.hooks.sessionSet {
		cache.offer(key, c.ssl, r)
	}
}

// sessionCache is an LRU of client sessions by server name. It keeps the
// SSL_SESSION objects themselves, one reference each, rather than their
// DER: decoding a session parses the server's certificate again, which
// took a fifth of the CPU of a resumed handshake. A reference is freed
// when its entry is replaced or evicted, when [Ctx.SetClientSessionCache]
// replaces or removes the cache, or after the cache is garbage collected.
type sessionCache struct {
	capacity int             // constant
	cleanup  runtime.Cleanup // constant; frees the sessions of a collected cache

	mu     sync.Mutex
	lru    *sessionLRU // protected by mu
	closed bool        // protected by mu; the sessions are freed, nothing is kept
}

// sessionLRU is a sessionCache's contents. It is apart from the cache so
// that the cache's cleanup can free it.
type sessionLRU struct {
	order   *list.List               // most recently used first; values are *sessionEntry
	entries map[string]*list.Element // by key
}

type sessionEntry struct {
	key  string
	sess *C.SSL_SESSION // a reference the cache holds
}

func newSessionCache(capacity int) *sessionCache {
	s := &sessionCache{capacity: capacity, lru: &sessionLRU{order: list.New(), entries: make(map[string]*list.Element)}}
	s.cleanup = runtime.AddCleanup(s, (*sessionLRU).free, s.lru)
	return s
}

// offer makes ssl offer the session cached under key, if any, and leaves
// the outcome in r (corresponds to SSL_set_session, which takes a reference
// of its own). It holds mu across the call so that the cache cannot free
// the session meanwhile.
func (s *sessionCache) offer(key string, ssl *C.SSL, r *C.go_ossl_result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.lru.entries[key]
	if s.closed || !ok {
		return
	}
	s.lru.order.MoveToFront(e)
	C.go_ossl_set_session_object(ssl, e.Value.(*sessionEntry).sess, r)
}

// put caches sess under key and reports whether the cache took the
// reference the caller holds; when it did not (a closed cache, a session
// that cannot be resumed), the caller keeps it.
func (s *sessionCache) put(key string, sess *C.SSL_SESSION) bool {
	if C.SSL_SESSION_is_resumable(sess) != 1 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	liveSessions.Add(1)
	if e, ok := s.lru.entries[key]; ok {
		entry := e.Value.(*sessionEntry)
		freeSession(entry.sess)
		entry.sess = sess
		s.lru.order.MoveToFront(e)
		return true
	}
	s.lru.entries[key] = s.lru.order.PushFront(&sessionEntry{key: key, sess: sess})
	if s.lru.order.Len() > s.capacity {
		last := s.lru.order.Back()
		s.lru.order.Remove(last)
		entry := last.Value.(*sessionEntry)
		delete(s.lru.entries, entry.key)
		freeSession(entry.sess)
	}
	return true
}

// close frees the cached sessions; the cache keeps nothing afterwards.
// Handshakes that loaded the cache before it was replaced may still call
// offer and put, which then do nothing.
func (s *sessionCache) close() {
	s.cleanup.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.lru.free()
}

func freeSession(sess *C.SSL_SESSION) {
	C.SSL_SESSION_free(sess)
	liveSessions.Add(-1)
}

// free frees every session and empties the LRU.
func (l *sessionLRU) free() {
	for e := l.order.Front(); e != nil; e = e.Next() {
		freeSession(e.Value.(*sessionEntry).sess)
	}
	l.order.Init()
	clear(l.entries)
}
