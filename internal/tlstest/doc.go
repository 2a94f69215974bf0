// Package tlstest is the one test harness of this module: the root
// package's tests, the integration matrix and cmd/closenotify build their
// connections, record their shutdown steps and name their errors with it.
//
// # Connections
//
// A [Spec] describes one connection between our [openssl.Conn] and a peer:
//   - the TLS version and our role ([Case], iterated by [Each] and
//     [EachVersion]);
//   - the transport: TCP on 127.0.0.1 or a Unix stream socket pair
//     ([Transport]);
//   - socket buffer sizes and TCP_MAXSEG, set before the handshake;
//   - what our Conn runs over: its socket, a wrapper that hides it,
//     net.Pipe, a conn that embeds the socket, TLS in TLS ([Path], iterated
//     by [EachPath] and [EachOnPaths]);
//   - our [openssl.ClosePolicy];
//   - the peer: crypto/tls in this process, or a program of internal/peer
//     (openssl s_server/s_client, gnutls-serv/gnutls-cli, Python's ssl)
//     ([PeerKind]).
//
// [Open] connects the sockets and makes both ends without handshaking;
// [Pair.Handshake] then runs both handshakes at once, and [Pair.Close]
// releases everything. [NewPair] and [Connect] are the same for tests: they
// fail the test on error and close the pair at cleanup. Open returns errors
// instead, so that a command (cmd/closenotify) can use the harness too.
//
// # Certificates
//
// [DefaultPKI] is a certificate authority and a leaf for "localhost" and
// 127.0.0.1, generated once per process and never modified. [NewServerCtx],
// [NewClientCtx] and [PeerConfig] build fresh Ctxs and crypto/tls configs
// from any bundle; nothing global changes and no shared file is written
// ([ServerCtx] and [ClientCtx] are the test forms for DefaultPKI).
// [Main], the TestMain of packages that run peer programs, writes
// DefaultPKI's files once for the programs that read them.
//
// # Shutdown steps and errors
//
// [Steps] calls [openssl.Conn.ShutdownOnce] and records each result as
// [StepName] spells it: "0", "1", or "-1/" followed by
// [openssl.ErrorCode.Name] ("-1/WANT_READ"). [ErrName] names an error by
// the identity a caller tests with errors.Is.
//
// # Sockets
//
// [SocketPair] returns two connected sockets, [SetMSS] sets TCP_MAXSEG,
// [FillRaw] fills a send buffer below TLS, [Pair.FillSendQueue] fills it with
// TLS records, and [Poll] waits for poll(2) events.
//
// Every wait is bounded by [Timeout] unless a function says otherwise;
// nothing sleeps to synchronise.
package tlstest
