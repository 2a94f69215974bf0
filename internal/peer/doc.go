// Package peer starts and drives the command-line TLS peers that integration
// tests talk to: OpenSSL's s_server and s_client, and other programs such
// as gnutls-serv and gnutls-cli, Python's ssl module and curl.
//
// A Process wraps one running program. Its standard output and standard
// error go into one shared, ordered buffer that WaitFor watches without
// polling; its standard input is a pipe that Send writes to. Every Process is
// the leader of its own process group, and Kill kills the whole group and
// reaps the leader, so a test leaves nothing behind. Every wait is bounded by
// a timeout given by the caller.
//
// The constructors return errors rather than failing a test, so that
// commands can use them too; internal/tlstest starts them for tests.
//
// The observed behaviour of openssl s_server and s_client 3.0 at shutdown is
// documented on OpenSSLServer and OpenSSLClient, and the strings they print
// are the constants in openssl.go. The package's tests prove each statement
// against a crypto/tls peer on 127.0.0.1.
package peer
