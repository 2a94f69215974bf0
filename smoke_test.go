package openssl_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"testing"

	"github.com/closenotify/openssl"
)

func TestSmokeEchoAndShutdown(t *testing.T) {
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			ours, peer := goServer(t, v)
			if got := ours.ConnectionState().Version; got != v {
				t.Fatalf("version %x", got)
			}
			go func() {
				buf := make([]byte, 5)
				io.ReadFull(peer, buf)
				peer.Write(buf)
				// crypto/tls answers close_notify only through Close.
				_, err := peer.Read(buf)
				t.Logf("peer read: %v", err)
				if err == io.EOF {
					peer.Close()
				}
			}()
			if _, err := ours.Write([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 5)
			if _, err := io.ReadFull(ours, buf); err != nil || string(buf) != "hello" {
				t.Fatalf("%q %v", buf, err)
			}
			if err := ours.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			st := ours.ShutdownState()
			if !st.Sent() || !st.Received() {
				t.Fatal(st)
			}
			if _, err := ours.Write(buf); !errors.Is(err, openssl.ErrWriteAfterShutdown) {
				t.Fatal(err)
			}
		})
	}
}
