package openssl_test

import (
	"crypto/x509"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/closenotify/openssl"
)

// TestCallbacksConcurrent: handshakes on shared Ctxs run every kind of
// callback at once while another goroutine replaces and removes them; the
// race detector watches, and every connection must succeed. (Removing a
// callback from the SSL_CTX itself, which OpenSSL reads twice, made this
// crash calling NULL.)
func TestCallbacksConcurrent(t *testing.T) {
	const dialers, dialsEach = 6, 3
	server := ctxOf(t, pki, 0)
	var serverKeys syncBuffer
	server.SetKeyLogWriter(&serverKeys)
	server.SetServerNameCallback(func(string) (*openssl.Ctx, error) { return nil, nil })
	addr, results := startOurServer(t, server)

	client := withSessionCache(t, ctxOf(t, clientPKI, 0), 2)
	verify := func(ok bool, _ *openssl.CertificateStoreCtx) bool { return ok }
	client.SetVerify(openssl.VerifyPeer, verify)
	peerChain := func([]*x509.Certificate) error { return nil }
	client.SetVerifyPeerCertificate(peerChain)
	choose := func(string) (*openssl.Ctx, error) { return nil, nil }

	stop := make(chan struct{})
	var churn sync.WaitGroup
	churn.Add(1)
	go func() {
		defer churn.Done()
		var keys syncBuffer
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%2 == 0 {
				client.SetKeyLogWriter(&keys)
				client.SetVerifyCallback(nil)
				client.SetVerifyPeerCertificate(nil)
				client.SetClientSessionCache(0)
				server.SetServerNameCallback(nil)
				server.SetKeyLogWriter(nil)
			} else {
				client.SetKeyLogWriter(nil)
				client.SetVerifyCallback(verify)
				client.SetVerifyPeerCertificate(peerChain)
				client.SetClientSessionCache(2)
				server.SetServerNameCallback(choose)
				server.SetKeyLogWriter(&serverKeys)
			}
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, dialers*dialsEach)
	for range dialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range dialsEach {
				d := openssl.DialConfig{ServerName: "localhost"}
				c, err := d.Dial("tcp", addr, client)
				if err == nil {
					err = c.Close()
				}
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(stop)
	churn.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for range dialers * dialsEach {
		// The server reads the request our clients never send: each
		// connection ends with our close_notify instead.
		<-results
	}
}
