package nts_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"net"
	"time"

	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/nts"
)

// An NTS server: NTS-KE over TLS and NTS-authenticated NTP, sharing one
// KeyStore (servers given the same seed form a fleet). Here both listen
// on free loopback ports and an NTS client asks once; a real server uses
// ":4460" and ":123" (ListenAndServe) and its own certificate.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cert, roots, err := exampleCertificate() // tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		log.Fatal(err)
	}
	keys, err := nts.NewKeyStore(nil, 24*time.Hour, nil) // nil seed: random
	if err != nil {
		log.Fatal(err)
	}

	// NTP with NTS, in front of the plain responder.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &server.Server{Handler: server.Chain(server.Responder(), nts.NewMiddleware(keys).Wrap)}
	ntpDone := make(chan error, 1)
	go func() { ntpDone <- srv.Serve(ctx, pc) }()

	// NTS-KE, telling clients where the NTP server is.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	ke := &nts.KEServer{
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Keys:      keys,
		NTPServer: "127.0.0.1",
		NTPPort:   pc.LocalAddr().(*net.UDPAddr).Port,
	}
	keDone := make(chan error, 1)
	go func() { keDone <- ke.Serve(ctx, ln) }()

	reply, cookies, err := ntsQuery(ln.Addr().String(), roots)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("authenticated reply: stratum %d, refid %v, %d cookies left\n", reply.Stratum, reply.RefID, cookies)

	// Shutdown stops both; each Serve closes its socket and says why it
	// returned. Once they have, the counters are final.
	_ = srv.Shutdown(ctx)
	_ = ke.Shutdown(ctx)
	fmt.Println("NTP:", <-ntpDone)
	fmt.Println("NTS-KE:", <-keDone)
	fmt.Printf("key exchanges served: %d, NTP replies: %d\n", ke.Stats().Served, srv.Stats().Replies)
	// Output:
	// authenticated reply: stratum 10, refid 127.127.1.1, 8 cookies left
	// NTP: server: closed
	// NTS-KE: server: closed
	// key exchanges served: 1, NTP replies: 1
}
