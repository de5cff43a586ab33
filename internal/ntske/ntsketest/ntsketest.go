// Package ntsketest makes throwaway certificates for NTS-KE tests: a test
// CA and a server certificate for localhost, 127.0.0.1 and ::1, as PEM
// files and as a tls.Config.
package ntsketest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a test CA and a server certificate it signed.
type PKI struct {
	// CAFile, CertFile and KeyFile are PEM files in a test directory:
	// the CA certificate, the server certificate and its private key.
	CAFile, CertFile, KeyFile string
	// Pool trusts the CA.
	Pool *x509.CertPool
	// Cert is the server certificate with its key.
	Cert tls.Certificate
}

// ServerConfig returns a tls.Config serving p.Cert.
func (p *PKI) ServerConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.Cert}}
}

// ClientConfig returns a tls.Config trusting only the test CA.
func (p *PKI) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: p.Pool}
}

// New creates a CA and a server certificate valid for an hour for
// localhost, 127.0.0.1 and ::1, and writes them to t.TempDir().
func New(t testing.TB) *PKI {
	t.Helper()
	p, err := Make(t.TempDir(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Make is New outside tests: it writes the PEM files to dir, with
// certificates valid for validity.
func Make(dir string, validity time.Duration) (*PKI, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ntsketest: %w", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ntpkit test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("ntsketest: %w", err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ntsketest: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("ntsketest: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("ntsketest: %w", err)
	}
	p := &PKI{
		CAFile:   filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, "server.pem"),
		KeyFile:  filepath.Join(dir, "server.key"),
		Pool:     x509.NewCertPool(),
	}
	p.Pool.AddCert(ca)
	write := func(name, typ string, der []byte) error {
		return os.WriteFile(name, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
	}
	if err := errors.Join(write(p.CAFile, "CERTIFICATE", caDER), write(p.CertFile, "CERTIFICATE", der), write(p.KeyFile, "PRIVATE KEY", keyDER)); err != nil {
		return nil, fmt.Errorf("ntsketest: %w", err)
	}
	p.Cert, err = tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("ntsketest: %w", err)
	}
	return p, nil
}
