package openssl_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/closenotify/openssl"
)

// Dial verifies the server's certificate and host name; CloseWrite sends
// close_notify and FIN while reading goes on; ErrTruncated tells a
// complete answer from one cut short.
func ExampleDial() {
	sslCtx, err := openssl.NewCtx()
	if err != nil {
		log.Fatal(err)
	}
	if err := sslCtx.SetDefaultVerifyPaths(); err != nil {
		log.Fatal(err)
	}
	conn, err := openssl.Dial("tcp", "example.com:443", sslCtx, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	if _, err := io.WriteString(conn, "GET / HTTP/1.0\r\nHost: example.com\r\n\r\n"); err != nil {
		log.Fatal(err)
	}
	if err := conn.CloseWrite(); err != nil {
		log.Fatal(err)
	}
	body, err := io.ReadAll(conn)
	switch {
	case errors.Is(err, openssl.ErrTruncated):
		log.Printf("answer cut short after %d bytes", len(body))
	case err != nil:
		log.Fatal(err)
	}
}

// ShutdownOnce answers exactly as SSL_shutdown does; Retry waits in the
// netpoller whenever the answer is want-read or want-write.
func ExampleConn_ShutdownOnce() {
	var conn *openssl.Conn // a connection whose handshake completed

	res, err := conn.ShutdownOnce()
	fmt.Println(res, err) // sent <nil>: our close_notify is in the kernel

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err = conn.Retry(ctx, func() error {
		res, err = conn.ShutdownOnce()
		return err
	})
	switch {
	case err == nil:
		fmt.Println(res) // complete: both alerts exchanged
	case errors.Is(err, context.DeadlineExceeded):
		fmt.Println("the peer never answered")
	case errors.Is(err, openssl.ErrTruncated):
		fmt.Println("the peer closed TCP without close_notify")
	}
}

// A ClosePolicy makes Close wait for the peer's close_notify, bounded.
func ExampleClosePolicy() {
	sslCtx, err := openssl.NewCtx()
	if err != nil {
		log.Fatal(err)
	}
	sslCtx.SetClosePolicy(openssl.ClosePolicy{WaitForPeer: true, Timeout: 2 * time.Second})
	// Conns made from sslCtx now close bidirectionally, in 2 s at most.
}
