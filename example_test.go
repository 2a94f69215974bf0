package openssl_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strings"
	"time"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/internal/testcert"
	"github.com/closenotify/openssl/internal/tlstest"
)

// The examples run against peers on 127.0.0.1: crypto/tls in this process
// (goServer) or this package's own server. Their certificates are the
// tests': a CA, and a server certificate for 127.0.0.1 and "localhost".

// examplePKI writes the CA, the server certificate and its key into a new
// directory, and returns their paths and a function that removes them.
func examplePKI() (files tlstest.Files, remove func()) {
	dir, err := os.MkdirTemp("", "openssl-example-")
	if err != nil {
		log.Fatal(err)
	}
	if files, err = tlstest.WriteFiles(tlstest.DefaultPKI(), dir); err != nil {
		log.Fatal(err)
	}
	return files, func() { os.RemoveAll(dir) }
}

// goServer accepts n connections with crypto/tls on 127.0.0.1, one after
// the other, runs handle on each and closes it; wait returns once that is
// done. Every step is bounded by tlstest.Timeout.
func goServer(n int, handle func(c *tls.Conn)) (addr string, wait func()) {
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		log.Fatal(err)
	}
	deadline := time.Now().Add(tlstest.Timeout)
	l.SetDeadline(deadline)
	// One Config for all: its session ticket keys resume the sessions.
	cfg := &tls.Config{Certificates: []tls.Certificate{tlstest.DefaultPKI().TLSCert}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer l.Close()
		for range n {
			raw, err := l.Accept()
			if err != nil {
				return
			}
			raw.SetDeadline(deadline)
			c := tls.Server(raw, cfg)
			handle(c)
			c.Close()
		}
	}()
	return l.Addr().String(), func() { <-done }
}

// trustingCtx returns a Ctx that trusts the CA in caFile.
func trustingCtx(caFile string) *openssl.Ctx {
	sslCtx, err := openssl.NewCtx()
	if err != nil {
		log.Fatal(err)
	}
	if err := sslCtx.LoadVerifyLocations(caFile, ""); err != nil {
		log.Fatal(err)
	}
	return sslCtx
}

// Dial connects, verifies the server's certificate against the Ctx's CAs
// and the dialled host (here an IP address), and sends SNI for host names.
func ExampleDial() {
	files, remove := examplePKI()
	defer remove()
	addr, wait := goServer(1, func(c *tls.Conn) { io.Copy(c, c) })
	defer wait()

	sslCtx, err := openssl.NewCtx()
	if err != nil {
		log.Fatal(err)
	}
	if err := sslCtx.LoadVerifyLocations(files.CA, ""); err != nil {
		log.Fatal(err)
	}
	conn, err := openssl.Dial("tcp", addr, sslCtx, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	state := conn.ConnectionState()
	fmt.Println(tls.VersionName(state.Version), state.PeerCertificates[0].Subject.CommonName)
	// Output: TLS 1.3 localhost
}

// Server makes a TLS server on an accepted connection (Listen does it for
// every connection of a listener); here a crypto/tls client talks to it.
func ExampleServer() {
	files, remove := examplePKI()
	defer remove()
	sslCtx, err := openssl.NewCtxFromFiles(files.Cert, files.Key)
	if err != nil {
		log.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	served := make(chan error, 1)
	go func() {
		raw, err := l.Accept()
		if err != nil {
			served <- err
			return
		}
		conn, err := openssl.Server(raw, sslCtx) // the handshake runs on first use
		if err != nil {
			served <- err
			return
		}
		defer conn.Close() // close_notify, then the socket
		buf := make([]byte, 4)
		if _, err := io.ReadFull(conn, buf); err != nil {
			served <- err
			return
		}
		_, err = conn.Write(bytes.ToUpper(buf))
		served <- err
	}()

	client, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: tlstest.DefaultPKI().Pool})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	io.WriteString(client, "ping")
	answer, err := io.ReadAll(client) // until our server's close_notify
	fmt.Println(string(answer), err, <-served)
	// Output: PING <nil> <nil>
}

// ShutdownOnce answers exactly as SSL_shutdown does; Retry waits in the
// netpoller while the answer is want-read or want-write. crypto/tls answers
// close_notify only when its application calls Close, which this one does
// once it read ours.
func ExampleConn_ShutdownOnce() {
	files, remove := examplePKI()
	defer remove()
	addr, wait := goServer(1, func(c *tls.Conn) { io.Copy(io.Discard, c) })
	defer wait()
	conn, err := openssl.Dial("tcp", addr, trustingCtx(files.CA), 0)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	res, err := conn.ShutdownOnce()
	fmt.Println(res, err) // our close_notify is in the kernel

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = conn.Retry(ctx, func() error {
		res, err = conn.ShutdownOnce()
		return err
	})
	fmt.Println(res, err) // both alerts exchanged
	// Output:
	// sent <nil>
	// complete <nil>
}

// Shutdown sends close_notify and reads until the peer's arrives; data the
// peer sends first is discarded and counted.
func ExampleConn_Shutdown() {
	files, remove := examplePKI()
	defer remove()
	addr, wait := goServer(1, func(c *tls.Conn) {
		io.Copy(io.Discard, c)   // until our close_notify
		io.WriteString(c, "bye") // crypto/tls may still write
	})
	defer wait()
	conn, err := openssl.Dial("tcp", addr, trustingCtx(files.CA), 0)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = conn.Shutdown(ctx)
	fmt.Println(err, conn.DiscardedBytes(), conn.ShutdownState())
	// Output: <nil> 3 sent=true received=true
}

// CloseWrite sends close_notify and half-closes TCP; the answer is read
// until the peer's close_notify.
func ExampleConn_CloseWrite() {
	files, remove := examplePKI()
	defer remove()
	addr, wait := goServer(1, func(c *tls.Conn) {
		question, _ := io.ReadAll(c) // until our close_notify
		c.Write(bytes.ToUpper(question))
	})
	defer wait()
	conn, err := openssl.Dial("tcp", addr, trustingCtx(files.CA), 0)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	io.WriteString(conn, "hello")
	if err := conn.CloseWrite(); err != nil {
		log.Fatal(err)
	}
	answer, err := io.ReadAll(conn) // nil at the server's close_notify
	fmt.Println(string(answer), err)
	// Output: HELLO <nil>
}

// A ClosePolicy makes Close wait for the peer's close_notify, bounded by
// its Timeout.
func ExampleClosePolicy() {
	files, remove := examplePKI()
	defer remove()
	addr, wait := goServer(1, func(c *tls.Conn) { io.Copy(io.Discard, c) })
	defer wait()
	sslCtx := trustingCtx(files.CA)
	sslCtx.SetClosePolicy(openssl.ClosePolicy{WaitForPeer: true, Timeout: 2 * time.Second})
	conn, err := openssl.Dial("tcp", addr, sslCtx, 0)
	if err != nil {
		log.Fatal(err)
	}

	err = conn.Close()
	fmt.Println(err, conn.ShutdownState())
	// Output: <nil> sent=true received=true
}

// Mutual TLS: the server asks for a client certificate and refuses a
// client without one.
func ExampleCtx_SetVerifyMode() {
	files, remove := examplePKI()
	defer remove()
	sslCtx, err := openssl.NewCtxFromFiles(files.Cert, files.Key)
	if err != nil {
		log.Fatal(err)
	}
	if err := sslCtx.LoadVerifyLocations(files.CA, ""); err != nil { // the clients' CA
		log.Fatal(err)
	}
	sslCtx.SetVerifyMode(openssl.VerifyPeer | openssl.VerifyFailIfNoPeerCert)
	l, err := openssl.Listen("tcp", "127.0.0.1:0", sslCtx)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	results := make(chan string)
	go func() {
		for range 2 {
			raw, err := l.Accept()
			if err != nil {
				log.Fatal(err)
			}
			conn := raw.(*openssl.Conn)
			if err := conn.Handshake(); err != nil {
				results <- fmt.Sprint("refused: ", strings.Contains(err.Error(), "peer did not return a certificate"))
			} else {
				cert, _ := conn.PeerCertificate()
				name, _ := cert.GetSubjectName()
				cn, _ := name.GetEntry(openssl.NID_commonName)
				results <- "client: " + cn
			}
			conn.Close()
		}
	}()

	pki := tlstest.DefaultPKI()
	clientCert, err := pki.ClientBundle("client.example")
	if err != nil {
		log.Fatal(err)
	}
	for _, certs := range [][]tls.Certificate{{clientCert.TLSCert}, nil} {
		// In TLS 1.3 the client's handshake ends before the server has
		// checked its certificate: the server's says.
		client, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pki.Pool, Certificates: certs})
		fmt.Println(<-results)
		if err == nil {
			client.Close()
		}
	}
	// Output:
	// client: client.example
	// refused: true
}

// A client session cache resumes sessions across Dials to the same server.
// With TLS 1.3 the server's tickets arrive with the first Read.
func ExampleCtx_SetClientSessionCache() {
	files, remove := examplePKI()
	defer remove()
	addr, wait := goServer(2, func(c *tls.Conn) { io.Copy(c, c) })
	defer wait()
	sslCtx := trustingCtx(files.CA)
	sslCtx.SetClientSessionCache(8)

	for range 2 {
		conn, err := openssl.Dial("tcp", addr, sslCtx, 0)
		if err != nil {
			log.Fatal(err)
		}
		io.WriteString(conn, "ping")
		io.ReadFull(conn, make([]byte, 4)) // and the tickets before it
		fmt.Println("resumed:", conn.SessionReused())
		conn.Close()
	}
	// Output:
	// resumed: false
	// resumed: true
}

// A server chooses its certificate by the name the client asks for (SNI).
func ExampleCtx_SetServerNameCallback() {
	files, remove := examplePKI()
	defer remove()
	sslCtx, err := openssl.NewCtxFromFiles(files.Cert, files.Key) // "localhost"
	if err != nil {
		log.Fatal(err)
	}
	other, err := testcert.New("other.example")
	if err != nil {
		log.Fatal(err)
	}
	otherCtx, err := openssl.NewCtx()
	if err != nil {
		log.Fatal(err)
	}
	cert, _ := openssl.LoadCertificateFromPEM(other.CertPEM)
	key, _ := openssl.LoadPrivateKeyFromPEM(other.KeyPEM)
	if err := otherCtx.UseCertificate(cert); err != nil {
		log.Fatal(err)
	}
	if err := otherCtx.UsePrivateKey(key); err != nil {
		log.Fatal(err)
	}
	sslCtx.SetServerNameCallback(func(serverName string) (*openssl.Ctx, error) {
		switch serverName {
		case "localhost":
			return nil, nil // this Ctx
		case "other.example":
			return otherCtx, nil
		}
		return nil, errors.New("unknown server name")
	})
	l, err := openssl.Listen("tcp", "127.0.0.1:0", sslCtx)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	names := []string{"localhost", "other.example", "unknown.example"}
	served := make(chan struct{})
	go func() {
		defer close(served)
		for range names {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conn.(*openssl.Conn).Handshake()
			conn.Close()
		}
	}()

	roots := tlstest.DefaultPKI().Pool.Clone()
	roots.AddCert(other.CA)
	for _, name := range names {
		c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: roots, ServerName: name})
		if err != nil {
			fmt.Println(name+":", "refused")
			continue
		}
		fmt.Println(name+":", c.ConnectionState().PeerCertificates[0].Subject.CommonName)
		c.Close()
	}
	<-served
	// Output:
	// localhost: localhost
	// other.example: other.example
	// unknown.example: refused
}
