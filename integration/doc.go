// Package integration holds the tests that run package openssl against
// OpenSSL's own command-line peers, openssl s_server and s_client, where
// they behave differently from crypto/tls: they answer close_notify by
// themselves, and they detect truncation (a TCP close without
// close_notify).
//
// The tests need the openssl program on PATH and fail, rather than skip,
// without it: CI must install the openssl package. Run them with
//
//	go test -race ./integration/
//
// The package has no code of its own; this file exists so that go vet and
// go test see a package.
package integration
