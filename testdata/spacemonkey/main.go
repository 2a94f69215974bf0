// Command spacemonkey is a small program written against the API of
// github.com/spacemonkeygo/openssl, as its users write them. The tests of
// github.com/closenotify/openssl copy it, change only the import path, build
// it against that package and run it against openssl s_server and
// crypto/tls (spacemonkey_test.go).
//
// Modes:
//
//	-mode client -addr HOST:PORT -ca CA [-host NAME]
//	    verifies the server with a verify callback, checks host names,
//	    exchanges a line, then resumes the session in a second connection
//	-mode sni -addr HOST:PORT -cert C -key K -cert2 C2 -key2 K2 -name2 NAME
//	    serves reversed lines, with C2 for clients asking for NAME (SNI)
//	-mode https -addr HOST:PORT -cert C -key K
//	    serves "hello over TLS" with ListenAndServeTLS
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spacemonkeygo/openssl"
)

func main() {
	mode := flag.String("mode", "client", "client, sni or https")
	addr := flag.String("addr", "", "address to dial or listen on")
	ca := flag.String("ca", "", "CA file (client)")
	host := flag.String("host", "", "name to check with VerifyHostname (client)")
	cert := flag.String("cert", "", "certificate chain file (servers)")
	key := flag.String("key", "", "key file (servers)")
	cert2 := flag.String("cert2", "", "second certificate file (sni)")
	key2 := flag.String("key2", "", "second key file (sni)")
	name2 := flag.String("name2", "", "server name of the second certificate (sni)")
	flag.Parse()
	log.SetFlags(0)
	switch *mode {
	case "client":
		client(*addr, *ca, *host)
	case "sni":
		sniServer(*addr, *cert, *key, *cert2, *key2, *name2)
	case "https":
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, "hello over TLS")
		})
		fmt.Println("serving", *addr)
		log.Fatal(openssl.ListenAndServeTLS(*addr, *cert, *key, nil))
	default:
		log.Fatalf("unknown mode %q", *mode)
	}
}

func commonName(cert *openssl.Certificate) string {
	name, err := cert.GetSubjectName()
	if err != nil {
		log.Fatal(err)
	}
	cn, _ := name.GetEntry(openssl.NID_commonName)
	return cn
}

func client(addr, ca, host string) {
	ctx, err := openssl.NewCtx()
	if err != nil {
		log.Fatal(err)
	}
	if err := ctx.LoadVerifyLocations(ca, ""); err != nil {
		log.Fatal(err)
	}
	ctx.SetVerify(openssl.VerifyPeer, func(ok bool, store *openssl.CertificateStoreCtx) bool {
		fmt.Printf("verify depth=%d ok=%t cn=%s\n", store.Depth(), ok, commonName(store.GetCurrentCert()))
		return ok
	})
	ctx.SetVerifyDepth(4)

	conn, err := openssl.Dial("tcp", addr, ctx, 0)
	if err != nil {
		log.Fatal(err)
	}
	if host != "" {
		fmt.Printf("hostname %s: %v\n", host, conn.VerifyHostname(host))
	}
	if err := conn.VerifyHostname("wrong.example"); err != nil {
		fmt.Println("hostname wrong.example: mismatch")
	}
	peer, err := conn.PeerCertificate()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("server:", commonName(peer), "verify result ok:", conn.VerifyResult() == openssl.Ok)
	exchange(conn)
	session, err := conn.GetSession()
	if err != nil {
		log.Fatal(err)
	}
	conn.Close()

	conn, err = openssl.DialSession("tcp", addr, ctx, 0, session)
	if err != nil {
		log.Fatal(err)
	}
	exchange(conn)
	fmt.Println("resumed:", conn.SessionReused())
	conn.Close()
}

// exchange sends a line and prints the answer.
func exchange(conn *openssl.Conn) {
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("hello\n")); err != nil {
		log.Fatal(err)
	}
	answer, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print("answer: ", answer)
}

func sniServer(addr, cert, key, cert2, key2, name2 string) {
	ctx, err := openssl.NewCtxFromFiles(cert, key)
	if err != nil {
		log.Fatal(err)
	}
	other, err := openssl.NewCtxFromFiles(cert2, key2)
	if err != nil {
		log.Fatal(err)
	}
	ctx.SetOptions(openssl.NoSSLv3 | openssl.NoTLSv1 | openssl.NoCompression)
	if err := ctx.SetEllipticCurve(openssl.Prime256v1); err != nil {
		log.Fatal(err)
	}
	if err := ctx.SetSessionId([]byte("spacemonkey")); err != nil {
		log.Fatal(err)
	}
	ctx.SetSessionCacheMode(openssl.SessionCacheServer)
	ctx.SetTimeout(5 * time.Minute)
	ctx.SetTLSExtServernameCallback(func(ssl *openssl.SSL) openssl.SSLTLSExtErr {
		if ssl.GetServername() == name2 {
			ssl.SetSSLCtx(other)
		}
		return openssl.SSLTLSExtErrOK
	})
	l, err := openssl.Listen("tcp", addr, ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("listening", l.Addr())
	for {
		c, err := l.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go serve(c)
	}
}

// serve answers each line with the line reversed, as s_server -rev does.
func serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		reversed := []rune(line)
		for i, j := 0, len(reversed)-1; i < j; i, j = i+1, j-1 {
			reversed[i], reversed[j] = reversed[j], reversed[i]
		}
		if _, err := fmt.Fprintf(c, "%s\n", string(reversed)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return
		}
	}
}
