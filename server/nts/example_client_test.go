package nts_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/ntpkit/ntpkit/internal/ntske"
	"github.com/ntpkit/ntpkit/ntpwire"
)

// The examples' helpers: a throwaway certificate and an NTS client, so
// that the examples run against loopback servers.

// exampleCertificate returns a self-signed certificate for localhost and
// 127.0.0.1, valid for an hour, and a pool that trusts it. A real server
// loads its certificate with tls.LoadX509KeyPair.
func exampleCertificate() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}

// ntsQuery is an NTS client: it runs NTS-KE with the server at keAddr,
// trusting roots, then sends one NTS-protected request to the NTP server
// the key exchange named and returns the authenticated reply and how many
// cookies the client holds afterwards.
func ntsQuery(keAddr string, roots *x509.CertPool) (ntpwire.Packet, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sess, err := ntske.Exchange(ctx, keAddr, &tls.Config{RootCAs: roots, ServerName: "localhost"}, 0)
	if err != nil {
		return ntpwire.Packet{}, 0, err
	}
	conn, err := net.Dial("udp", sess.Address())
	if err != nil {
		return ntpwire.Packet{}, 0, fmt.Errorf("dial %s: %w", sess.Address(), err)
	}
	defer conn.Close()
	res, err := sess.Query(ctx, conn, nil)
	if err != nil {
		return ntpwire.Packet{}, 0, err
	}
	return res.Reply, len(sess.Cookies), nil
}
