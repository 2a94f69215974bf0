package grpccreds_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/closenotify/openssl"
	"github.com/closenotify/openssl/grpccreds"
	"github.com/closenotify/openssl/internal/leakcheck"
	"github.com/closenotify/openssl/internal/testcert"
	"github.com/closenotify/openssl/internal/tlstest"
)

func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }

var pki = tlstest.DefaultPKI()

// maxMsg lets 16 MiB messages through (gRPC's default limit is 4 MiB).
const maxMsg = 32 << 20

// rawCodec sends []byte messages as they are, so that the tests need no
// generated code.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "raw" }

// echo is a service whose Unary method answers with the request, and
// whose Stream method, once the client closed its side, sends back all it
// received in the client's message sizes. Both put the peer's AuthType,
// ALPN protocol and certificate common name in the header.
var echo = grpc.ServiceDesc{
	ServiceName: "closenotify.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Unary",
		Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var in []byte
			if err := dec(&in); err != nil {
				return nil, err
			}
			if err := grpc.SetHeader(ctx, peerHeader(ctx)); err != nil {
				return nil, err
			}
			return &in, nil
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Stream",
		ServerStreams: true,
		ClientStreams: true,
		Handler: func(_ any, stream grpc.ServerStream) error {
			if err := stream.SetHeader(peerHeader(stream.Context())); err != nil {
				return err
			}
			var got [][]byte
			for {
				var in []byte
				err := stream.RecvMsg(&in)
				if err == io.EOF {
					break
				}
				if err != nil {
					return err
				}
				got = append(got, in)
			}
			for _, m := range got {
				if err := stream.SendMsg(&m); err != nil {
					return err
				}
			}
			return nil
		},
	}},
}

// peerHeader describes the peer as the handler sees it.
func peerHeader(ctx context.Context) metadata.MD {
	md := metadata.MD{}
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return md
	}
	md.Set("auth-type", p.AuthInfo.AuthType())
	if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
		md.Set("alpn", info.State.NegotiatedProtocol)
		if len(info.State.PeerCertificates) > 0 {
			md.Set("peer-cn", info.State.PeerCertificates[0].Subject.CommonName)
		}
	}
	return md
}

// side makes the credentials of one end: ours, or grpc's over crypto/tls.
type side struct {
	name   string
	server func(t *testing.T, mutual bool) credentials.TransportCredentials
	// client presents cert when it is not nil.
	client func(t *testing.T, cert *testcert.Bundle) credentials.TransportCredentials
}

var ours = side{
	name: "ours",
	server: func(t *testing.T, mutual bool) credentials.TransportCredentials {
		sslCtx := tlstest.ServerCtx(t)
		if mutual {
			files, err := tlstest.WriteFiles(pki, t.TempDir())
			require.NoError(t, err)
			require.NoError(t, sslCtx.LoadVerifyLocations(files.CA, ""))
			sslCtx.SetVerifyMode(openssl.VerifyPeer | openssl.VerifyFailIfNoPeerCert)
		}
		creds, err := grpccreds.New(sslCtx, 0)
		require.NoError(t, err)
		return creds
	},
	client: func(t *testing.T, cert *testcert.Bundle) credentials.TransportCredentials {
		sslCtx := tlstest.ClientCtx(t)
		if cert != nil {
			sslCtx = tlstest.CertClientCtx(t, cert)
		}
		creds, err := grpccreds.New(sslCtx, 0)
		require.NoError(t, err)
		return creds
	},
}

var goTLS = side{
	name: "crypto-tls",
	server: func(t *testing.T, mutual bool) credentials.TransportCredentials {
		cfg := &tls.Config{Certificates: []tls.Certificate{pki.TLSCert}}
		if mutual {
			cfg.ClientCAs, cfg.ClientAuth = pki.Pool, tls.RequireAndVerifyClientCert
		}
		return credentials.NewTLS(cfg)
	},
	client: func(t *testing.T, cert *testcert.Bundle) credentials.TransportCredentials {
		cfg := &tls.Config{RootCAs: pki.Pool}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{cert.TLSCert}
		}
		return credentials.NewTLS(cfg)
	},
}

// pairs are the client/server combinations: ours on both ends, and ours
// facing grpc's crypto/tls credentials on either.
var pairs = []struct{ client, server side }{{ours, ours}, {ours, goTLS}, {goTLS, ours}}

// grpcServer serves echo with creds on 127.0.0.1 and returns its address.
// It is stopped at cleanup.
func grpcServer(t *testing.T, creds credentials.TransportCredentials) (*grpc.Server, string) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer(grpc.Creds(creds), grpc.ForceServerCodec(rawCodec{}),
		grpc.MaxRecvMsgSize(maxMsg), grpc.MaxSendMsgSize(maxMsg))
	srv.RegisterService(&echo, nil)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Stop()
		require.NoError(t, <-served)
	})
	return srv, l.Addr().String()
}

// grpcClient connects to addr as "localhost" with creds; it is closed at
// cleanup.
func grpcClient(t *testing.T, addr string, creds credentials.TransportCredentials, opts ...grpc.DialOption) *grpc.ClientConn {
	opts = append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithAuthority("localhost"),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}),
			grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)),
	}, opts...)
	conn, err := grpc.NewClient(addr, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// unary calls Unary with msg and requires its echo; it returns the
// server's header.
func unary(t *testing.T, conn *grpc.ClientConn, msg []byte) metadata.MD {
	var md metadata.MD
	var out []byte
	require.NoError(t, conn.Invoke(tlstest.Context(t), "/closenotify.Echo/Unary", &msg, &out, grpc.Header(&md)))
	require.True(t, bytes.Equal(msg, out), "the echo differs")
	return md
}

// TestUnaryAndStream16MiB: a unary call and a bidirectional stream each
// carry 16 MiB both ways; the server's handler sees TLS with "h2".
func TestUnaryAndStream16MiB(t *testing.T) {
	const size = 16 << 20
	msg := tlstest.Pattern(size)
	for _, p := range pairs {
		t.Run(p.client.name+"/"+p.server.name, func(t *testing.T) {
			_, addr := grpcServer(t, p.server.server(t, false))
			conn := grpcClient(t, addr, p.client.client(t, nil))

			md := unary(t, conn, msg)
			require.Equal(t, []string{"tls"}, md.Get("auth-type"))
			require.Equal(t, []string{"h2"}, md.Get("alpn"))

			stream, err := conn.NewStream(tlstest.Context(t), &echo.Streams[0], "/closenotify.Echo/Stream")
			require.NoError(t, err)
			const chunk = 64 << 10
			for off := 0; off < size; off += chunk {
				m := msg[off : off+chunk]
				require.NoError(t, stream.SendMsg(&m))
			}
			require.NoError(t, stream.CloseSend())
			h := sha256.New()
			n := 0
			for {
				var in []byte
				err := stream.RecvMsg(&in)
				if err == io.EOF {
					break
				}
				require.NoError(t, err)
				h.Write(in)
				n += len(in)
			}
			require.Equal(t, size, n)
			require.Equal(t, sha256.Sum256(msg), [32]byte(h.Sum(nil)))
		})
	}
}

// TestMutualTLS: the handler sees the client's certificate in the peer's
// credentials.TLSInfo, and our client sees the server's.
func TestMutualTLS(t *testing.T) {
	client, err := pki.ClientBundle("client.test")
	require.NoError(t, err)
	for _, p := range pairs {
		t.Run(p.client.name+"/"+p.server.name, func(t *testing.T) {
			_, addr := grpcServer(t, p.server.server(t, true))
			conn := grpcClient(t, addr, p.client.client(t, client))
			var pr peer.Peer
			var out []byte
			msg := []byte("who")
			var md metadata.MD
			require.NoError(t, conn.Invoke(tlstest.Context(t), "/closenotify.Echo/Unary", &msg, &out, grpc.Header(&md), grpc.Peer(&pr)))
			require.Equal(t, []string{"client.test"}, md.Get("peer-cn"))
			info, ok := pr.AuthInfo.(credentials.TLSInfo)
			require.True(t, ok, "AuthInfo is %T", pr.AuthInfo)
			require.True(t, info.State.PeerCertificates[0].Equal(pki.Leaf))
			require.Equal(t, credentials.PrivacyAndIntegrity, info.SecurityLevel)
			require.NoError(t, info.ValidateAuthority("localhost"))

			// Without a client certificate the server refuses.
			noCert := grpcClient(t, addr, p.client.client(t, nil))
			require.Error(t, noCert.Invoke(tlstest.Context(t), "/closenotify.Echo/Unary", &msg, &out))
		})
	}
}

// TestServerName: the client verifies the server's certificate against
// the authority, which OverrideServerName (through Info) or
// grpc.WithAuthority sets; Clone copies without sharing it.
func TestServerName(t *testing.T) {
	_, addr := grpcServer(t, ours.server(t, false))
	creds := ours.client(t, nil)
	require.Equal(t, credentials.ProtocolInfo{SecurityProtocol: "tls", SecurityVersion: "1.2"}, creds.Info())

	wrong := creds.Clone()
	require.NoError(t, wrong.OverrideServerName("wrong.example"))
	require.Equal(t, "wrong.example", wrong.Info().ServerName)
	require.Empty(t, creds.Info().ServerName, "the clone's name is its own")

	msg := []byte("x")
	var out []byte
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(wrong), grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	require.NoError(t, err)
	defer conn.Close()
	err = conn.Invoke(tlstest.Context(t), "/closenotify.Echo/Unary", &msg, &out)
	require.ErrorContains(t, err, "certificate is valid for localhost, not wrong.example")

	right := creds.Clone()
	require.NoError(t, right.OverrideServerName("localhost"))
	conn2, err := grpc.NewClient(addr, grpc.WithTransportCredentials(right), grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	require.NoError(t, err)
	defer conn2.Close()
	require.NoError(t, conn2.Invoke(tlstest.Context(t), "/closenotify.Echo/Unary", &msg, &out))
}

// TestNoALPN: a TLS client that offers no ALPN is refused, as grpc's own
// credentials refuse it.
func TestNoALPN(t *testing.T) {
	_, addr := grpcServer(t, ours.server(t, false))
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pki.Pool, ServerName: "localhost"})
	if err == nil {
		// With TLS 1.3 the client finishes first; the server's refusal
		// shows when reading.
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	require.Error(t, err)
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "refused, not timed out: %v", err)
}

// recording records the connections its handshakes return in ends.
type recording struct {
	credentials.TransportCredentials
	ends *tlstest.Ends
}

func (r recording) ClientHandshake(ctx context.Context, authority string, rawConn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	c, info, err := r.TransportCredentials.ClientHandshake(ctx, authority, rawConn)
	if err != nil {
		return nil, nil, err
	}
	return r.ends.Add(c), info, nil
}

func (r recording) ServerHandshake(rawConn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	c, info, err := r.TransportCredentials.ServerHandshake(rawConn)
	if err != nil {
		return nil, nil, err
	}
	return r.ends.Add(c), info, nil
}

func (r recording) Clone() credentials.TransportCredentials {
	return recording{r.TransportCredentials.Clone(), r.ends}
}

// TestGracefulStopCloseNotify: GracefulStop lets a stream in flight
// finish, and every connection ends with close_notify. gRPC's server waits
// for its clients to close on its GOAWAY: a client reads the server's
// close_notify (io.EOF, not a truncation) or, as gRPC's clients do, closes
// first with its own. Our server, the peer of that close, read the
// client's close_notify and sent its own on every connection.
func TestGracefulStopCloseNotify(t *testing.T) {
	const clients = 3
	for _, p := range pairs {
		t.Run(p.client.name+"/"+p.server.name, func(t *testing.T) {
			var serverEnds, clientEnds tlstest.Ends
			srv, addr := grpcServer(t, recording{p.server.server(t, false), &serverEnds})
			var conns []*grpc.ClientConn
			for range clients {
				conn := grpcClient(t, addr, recording{p.client.client(t, nil), &clientEnds})
				unary(t, conn, []byte("before"))
				conns = append(conns, conn)
			}
			stream, err := conns[0].NewStream(tlstest.Context(t), &echo.Streams[0], "/closenotify.Echo/Stream")
			require.NoError(t, err)
			msg := []byte("in flight")
			require.NoError(t, stream.SendMsg(&msg))

			stopped := tlstest.Go(func() error { srv.GracefulStop(); return nil })
			require.NoError(t, stream.CloseSend())
			var in []byte
			require.NoError(t, stream.RecvMsg(&in))
			require.Equal(t, msg, in)
			require.ErrorIs(t, stream.RecvMsg(&in), io.EOF)
			tlstest.Wait(t, stopped, "GracefulStop")

			t.Logf("%d of %d client connections read the server's close_notify; the others closed first",
				clientEnds.RequireCloseNotify(t), clients)
			if p.server.name == ours.name {
				serverEnds.RequireCloseNotifySent(t, true)
			}
		})
	}
}

// TestClientSNI: our client sends the authority's host name as SNI, and
// none for an IP address, which it verifies all the same.
func TestClientSNI(t *testing.T) {
	for _, tc := range []struct{ authority, sni string }{
		{"localhost", "localhost"},
		{"127.0.0.1", ""},
	} {
		t.Run(tc.authority, func(t *testing.T) {
			hellos := make(chan string, 1)
			cfg := &tls.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
				hellos <- hello.ServerName
				return &pki.TLSCert, nil
			}}
			_, addr := grpcServer(t, credentials.NewTLS(cfg))
			conn := grpcClient(t, addr, ours.client(t, nil), grpc.WithAuthority(tc.authority))
			unary(t, conn, []byte("hello"))
			require.Equal(t, tc.sni, <-hellos)
		})
	}
}
