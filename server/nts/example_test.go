package nts_test

import (
	"context"
	"crypto/tls"
	"log"
	"time"

	"github.com/ntpkit/ntpkit/clock"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/nts"
)

// An NTS server: NTS-KE on port 4460 and NTS-authenticated NTP on 123,
// sharing one KeyStore. Servers given the same seed form a fleet.
func Example() {
	ctx := context.Background()
	cert, err := tls.LoadX509KeyPair("/etc/ntpkit/cert.pem", "/etc/ntpkit/key.pem")
	if err != nil {
		log.Print(err)
		return
	}
	keys, err := nts.NewKeyStore(nil, 24*time.Hour, nil) // random seed
	if err != nil {
		log.Fatal(err)
	}
	ke := &nts.KEServer{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, Keys: keys}
	go ke.ListenAndServe(ctx, ":4460")

	src := server.NewLocalSource(clock.System{}, 10)
	mw := nts.NewMiddleware(keys)
	srv := &server.Server{Source: src, Handler: server.Chain(server.Responder(), mw.Wrap)}
	log.Fatal(srv.ListenAndServe(ctx, ":123"))
}
