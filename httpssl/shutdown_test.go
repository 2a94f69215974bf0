package httpssl_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"

	"github.com/closenotify/openssl/internal/tlstest"
)

// TestGracefulShutdownUnderLoad: http.Server.Shutdown while requests are
// in flight and clients keep sending. No request is lost: every request a
// handler answered reached its client whole, the held ones included, and
// every request that failed did so before any answer: it could not
// connect after the listener closed, or (rarely) the server's close of an
// idle kept-alive connection reset it under the request's write. Every
// connection ends with our close_notify: the crypto/tls
// client reads io.EOF, not io.ErrUnexpectedEOF, unless it closed first
// (after GOAWAY or "Connection: close"), and every server Conn sent it;
// with the default ClosePolicy and with Lingering, which reads until the
// client closes.
func TestGracefulShutdownUnderLoad(t *testing.T) {
	policies := []struct {
		name   string
		policy openssl.ClosePolicy
	}{{"default", openssl.ClosePolicy{}}, {"lingering", openssl.ClosePolicy{Lingering: true}}}
	for _, h2 := range []bool{false, true} {
		for _, pol := range policies {
			t.Run(alpnName(h2)+"/"+pol.name, func(t *testing.T) {
				gracefulShutdownUnderLoad(t, h2, pol.policy)
			})
		}
	}
}

func gracefulShutdownUnderLoad(t *testing.T, h2 bool, policy openssl.ClosePolicy) {
	const (
		held      = 4        // requests inside the handler when Shutdown starts
		busy      = 4        // clients sending requests one after the other
		maxEach   = 2000     // bound on each busy client's requests
		warmUp    = 20       // requests answered before Shutdown starts
		replySize = 32 << 10 // bytes of each answer
	)
	shuttingDown := make(chan struct{})
	var ours tlstest.Ends
	srv := &http.Server{}
	srv.RegisterOnShutdown(func() { close(shuttingDown) })
	inside := make(chan struct{}, held)
	var answered atomic.Int64
	reply := tlstest.Pattern(replySize)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/held" {
			inside <- struct{}{}
			<-shuttingDown
		}
		answered.Add(1)
		w.Write(reply)
	})
	sslCtx := serverCtx(t, 0)
	sslCtx.SetClosePolicy(policy)
	s := startServer(t, sslCtx, h, srv, &ours)
	rec := &tlstest.Ends{}
	client := goClient(t, h2, nil, rec)

	// get returns nil for a whole answer, or the request's error;
	// an answer cut short or wrong is an error too, which the
	// checks below tell from a failure to connect.
	get := func(path string) error {
		resp, err := client.Get(s.url + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		switch {
		case err != nil:
			return fmt.Errorf("answer cut short: %w", err)
		case resp.StatusCode != http.StatusOK || !bytes.Equal(body, reply):
			return fmt.Errorf("answer %d with %d bytes, want 200 with %d", resp.StatusCode, len(body), len(reply))
		}
		return nil
	}

	// One request first: an HTTP/2 client then multiplexes on its
	// connection rather than dial one per request and drop the
	// extras unused.
	require.NoError(t, get("/"))
	var received atomic.Int64
	received.Store(1)
	warm := make(chan struct{})
	var warmOnce sync.Once
	var wg sync.WaitGroup
	heldErrs := make(chan error, held)
	for range held {
		wg.Go(func() {
			err := get("/held")
			if err == nil {
				received.Add(1)
			}
			heldErrs <- err
		})
	}
	busyErrs := make(chan error, busy)
	for range busy {
		wg.Go(func() {
			for range maxEach {
				if err := get("/"); err != nil {
					busyErrs <- err
					return
				}
				if received.Add(1) >= warmUp {
					warmOnce.Do(func() { close(warm) })
				}
			}
			busyErrs <- nil
		})
	}
	for range held {
		select {
		case <-inside:
		case <-time.After(wait):
			t.Fatal("the held requests did not reach the handler")
		}
	}
	select {
	case <-warm:
	case <-time.After(wait):
		t.Fatal("the busy clients got no answers")
	}

	// Shutdown closes a connection that never sent a request only
	// once it is 5 seconds old.
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
	defer cancel()
	require.NoError(t, srv.Shutdown(ctx))
	wg.Wait()

	for range held {
		require.NoError(t, <-heldErrs, "a request in flight at Shutdown")
	}
	for range busy {
		err := <-busyErrs
		require.Error(t, err, "a busy client sent %d requests and Shutdown did not stop it", maxEach)
		require.True(t, failedBeforeAnswer(err), "a request failed otherwise than before its answer: %v", err)
	}
	require.Equal(t, answered.Load(), received.Load(), "answers lost")
	// net/http's HTTP/2 client closes an idle connection as soon as
	// GOAWAY arrives, before the server, which waits a second for
	// that; its close_notify is then seen on our side.
	t.Logf("%d connections read our close_notify; the client closed the others first", rec.RequireCloseNotify(t))
	if n := ours.RequireCloseNotifySent(t, false); n > 0 {
		t.Logf("%d connections reset or closed without close_notify by the client first", n)
	}
}
