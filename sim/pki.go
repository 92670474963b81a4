package sim

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"
)

// Key purposes (extended key usage OIDs) of OMA DRM certificates: sce-token.md §4 (OMNA registry)
// and roap-core.md §8.2.
var (
	OIDKPRightsIssuer = asn1.ObjectIdentifier{2, 23, 43, 6, 1, 1}  // oma-kp-rightsIssuer
	OIDKPDRMAgent     = asn1.ObjectIdentifier{2, 23, 43, 6, 1, 2}  // oma-kp-drmAgent
	OIDKPSCEDRMAgent  = asn1.ObjectIdentifier{2, 23, 43, 6, 1, 4}  // oma-kp-sceDrmAgent
	OIDKPDEANetwork   = asn1.ObjectIdentifier{2, 23, 43, 6, 1, 11} // oma-kp-domainEnforcementAgentNetwork
	OIDKPOCSPSigning  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 9}
)

var (
	oidExtExtKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 37}
	// id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1): tells clients not to ask for the status of the
	// responder certificate itself, which would otherwise be an endless regress.
	oidExtOCSPNoCheck = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}
)

// Names of the identities NewPKI creates; they are also the file names Write uses.
const (
	NameRoot      = "root"
	NameCA        = "ca"
	NameSCEDevice = "sce-device"
	NameDEA       = "dea"
	NameOCSP      = "ocsp"
)

// RIName and DeviceName give the names of the i-th (1-based) RI and device identity.
func RIName(i int) string     { return fmt.Sprintf("ri-%d", i) }
func DeviceName(i int) string { return fmt.Sprintf("device-%d", i) }

// PKIOptions shapes NewPKI.
type PKIOptions struct {
	Bits    int       // RSA modulus size, default 2048; 1024 allowed (fielded PKIs)
	SHA1    bool      // sign certificates with SHA1WithRSA (fielded DRM PKIs); default SHA256WithRSA
	Now     time.Time // validity is [Now-1h, Now+2y] (zero: time.Now())
	Devices int       // number of plain DRM Agent device identities (default 2)
	RIs     int       // number of RI identities (default 2)
}

// Identity is a key pair with its certificate and the chain a peer sends for it.
type Identity struct {
	Name  string
	Key   *rsa.PrivateKey
	Cert  *x509.Certificate
	Chain []*x509.Certificate // leaf first, then intermediates, NO root (what ROAP messages carry)
}

// ID returns the ROAP key identifier of the identity: base64 of SHA-1 over the DER
// SubjectPublicKeyInfo of its certificate (deviceID, riID, key identifiers).
func (id *Identity) ID() string { return KeyID(id.Cert) }

// ChainDER returns the DER encodings of Chain, leaf first.
func (id *Identity) ChainDER() [][]byte {
	out := make([][]byte, len(id.Chain))
	for i, c := range id.Chain {
		out[i] = c.Raw
	}
	return out
}

// KeyID returns the ROAP key identifier of any certificate (see Identity.ID).
func KeyID(c *x509.Certificate) string {
	h := sha1.Sum(c.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(h[:])
}

// CheckIssuedBy reports whether child names parent as its issuer and carries a valid signature by
// parent's key. Unlike x509.Certificate.CheckSignatureFrom it accepts SHA1WithRSA, which fielded
// DRM PKIs use; it checks neither validity periods nor basic constraints.
func CheckIssuedBy(child, parent *x509.Certificate) error {
	if !bytes.Equal(child.RawIssuer, parent.RawSubject) {
		return fmt.Errorf("sim: %q is not issued by %q (issuer name differs)", child.Subject, parent.Subject)
	}
	if err := parent.CheckSignature(child.SignatureAlgorithm, child.RawTBSCertificate, child.Signature); err != nil {
		return fmt.Errorf("sim: signature of %q by %q: %w", child.Subject, parent.Subject, err)
	}
	return nil
}

// PKI is a two-level test PKI (root, issuing CA) with the identities the simulated peers use.
type PKI struct {
	Root, CA  *Identity   // self-signed root; intermediate CA issued by Root
	RIs       []*Identity // oma-kp-rightsIssuer (+ digitalSignature KeyUsage, critical EKU as CMLA profiles do)
	Devices   []*Identity // oma-kp-drmAgent
	SCEDevice *Identity   // oma-kp-drmAgent AND oma-kp-sceDrmAgent (negative case for seed 000)
	DEA       *Identity   // oma-kp-domainEnforcementAgentNetwork
	OCSP      *Identity   // delegated OCSP responder, id-kp-OCSPSigning, issued by CA
	Opts      PKIOptions
}

// LeafOptions shapes a certificate made by PKI.NewLeaf. Zero values take the PKI's defaults.
type LeafOptions struct {
	KeyPurposes []asn1.ObjectIdentifier // OMA key purposes; none and !OCSPSigning: no EKU extension at all
	NotBefore   time.Time               // zero: Opts.Now-1h
	NotAfter    time.Time               // zero: Opts.Now+2y
	Bits        int                     // zero: Opts.Bits; ignored when Key is set
	SHA1        bool                    // sign with SHA1WithRSA (also when Opts.SHA1 is set)
	OCSPSigning bool                    // add id-kp-OCSPSigning and id-pkix-ocsp-nocheck
	Issuer      *Identity               // default p.CA

	CriticalEKU bool            // mark the extended key usage extension critical (CMLA RI profile)
	KeyUsage    x509.KeyUsage   // zero: digitalSignature
	NoKeyUsage  bool            // leave the KeyUsage extension out
	Key         *rsa.PrivateKey // certify this existing key instead of generating one
	Subject     *pkix.Name      // default CN "roapproxy <name>", O "roapproxy test PKI"
}

// NewPKI generates a fresh root, issuing CA and the identities listed in PKI. RSA key generation
// dominates the cost (about 50 ms per 2048-bit key); callers that need many PKIs should build one
// and share it.
//
// Keys of 1024 bits and more need nothing special. Go refuses keys under 1024 bits unless
// GODEBUG=rsa1024min=0 is set in the environment when the program starts, or a
// "//go:debug rsa1024min=0" directive sits in the main package or in a _test.go file of the package
// under test; setting it with os.Setenv at run time has no effect. NewPKI reports that in its error.
func NewPKI(opts PKIOptions) (*PKI, error) {
	if opts.Bits == 0 {
		opts.Bits = 2048
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.Devices == 0 {
		opts.Devices = 2
	}
	if opts.RIs == 0 {
		opts.RIs = 2
	}
	if opts.Devices < 0 || opts.RIs < 0 {
		return nil, fmt.Errorf("sim: negative identity count (Devices %d, RIs %d)", opts.Devices, opts.RIs)
	}
	p := &PKI{Opts: opts}

	// Root, CA, RIs, devices, SCE device, DEA, OCSP responder.
	keys, err := generateKeys(2+opts.RIs+opts.Devices+3, opts.Bits)
	if err != nil {
		return nil, err
	}
	next := func() *rsa.PrivateKey { k := keys[0]; keys = keys[1:]; return k }

	p.Root, err = p.issue(NameRoot, next(), &x509.Certificate{
		Subject:               pkix.Name{CommonName: "roapproxy Test Root CA", Organization: []string{"roapproxy test PKI"}},
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            1,
		// digitalSignature because the root signs OCSP responses about the CA itself.
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}, nil, false)
	if err != nil {
		return nil, err
	}
	p.CA, err = p.issue(NameCA, next(), &x509.Certificate{
		Subject:               pkix.Name{CommonName: "roapproxy Test Issuing CA", Organization: []string{"roapproxy test PKI"}},
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}, p.Root, false)
	if err != nil {
		return nil, err
	}

	leaf := func(name string, o LeafOptions) (*Identity, error) {
		o.Key = next()
		return p.NewLeaf(name, o)
	}
	for i := 1; i <= opts.RIs; i++ {
		id, err := leaf(RIName(i), LeafOptions{KeyPurposes: []asn1.ObjectIdentifier{OIDKPRightsIssuer}, CriticalEKU: true})
		if err != nil {
			return nil, err
		}
		p.RIs = append(p.RIs, id)
	}
	// keyEncipherment: Rights Objects are wrapped to the device key (RSA-KEM).
	devKU := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	for i := 1; i <= opts.Devices; i++ {
		id, err := leaf(DeviceName(i), LeafOptions{KeyPurposes: []asn1.ObjectIdentifier{OIDKPDRMAgent}, KeyUsage: devKU})
		if err != nil {
			return nil, err
		}
		p.Devices = append(p.Devices, id)
	}
	if p.SCEDevice, err = leaf(NameSCEDevice, LeafOptions{KeyPurposes: []asn1.ObjectIdentifier{OIDKPDRMAgent, OIDKPSCEDRMAgent}, KeyUsage: devKU}); err != nil {
		return nil, err
	}
	if p.DEA, err = leaf(NameDEA, LeafOptions{KeyPurposes: []asn1.ObjectIdentifier{OIDKPDEANetwork}}); err != nil {
		return nil, err
	}
	if p.OCSP, err = leaf(NameOCSP, LeafOptions{OCSPSigning: true}); err != nil {
		return nil, err
	}
	return p, nil
}

// NewLeaf issues an end-entity certificate, by default from the CA with the PKI's key size,
// signature hash and validity. Tests use it for negative cases: expired, missing or extra key
// purpose, 1024-bit key, SHA-1 signature, issued by the wrong CA. The identity is not added to p.
func (p *PKI) NewLeaf(name string, o LeafOptions) (*Identity, error) {
	issuer := o.Issuer
	if issuer == nil {
		issuer = p.CA
	}
	if issuer == nil || issuer.Key == nil || issuer.Cert == nil {
		return nil, errors.New("sim: NewLeaf needs an issuer with a key and a certificate")
	}
	key := o.Key
	if key == nil {
		bits := o.Bits
		if bits == 0 {
			bits = p.Opts.Bits
		}
		var err error
		if key, err = generateKey(bits); err != nil {
			return nil, err
		}
	}
	subject := pkix.Name{CommonName: "roapproxy " + name, Organization: []string{"roapproxy test PKI"}}
	if o.Subject != nil {
		subject = *o.Subject
	}
	tmpl := &x509.Certificate{
		Subject:               subject,
		BasicConstraintsValid: true,
		NotBefore:             o.NotBefore,
		NotAfter:              o.NotAfter,
	}
	if !o.NoKeyUsage {
		tmpl.KeyUsage = o.KeyUsage
		if tmpl.KeyUsage == 0 {
			tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		}
	}
	// The EKU extension is written by hand: the x509 package never marks it critical, and CMLA
	// RI certificates need it critical.
	purposes := append([]asn1.ObjectIdentifier(nil), o.KeyPurposes...)
	if o.OCSPSigning {
		purposes = append(purposes, OIDKPOCSPSigning)
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: oidExtOCSPNoCheck, Value: asn1.NullBytes})
	}
	if len(purposes) > 0 {
		v, err := asn1.Marshal(purposes)
		if err != nil {
			return nil, fmt.Errorf("sim: encoding key purposes of %s: %w", name, err)
		}
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: oidExtExtKeyUsage, Critical: o.CriticalEKU, Value: v})
	}
	return p.issue(name, key, tmpl, issuer, o.SHA1)
}

// issue fills serial, validity and signature algorithm into tmpl and signs it by issuer, or
// self-signs when issuer is nil.
func (p *PKI) issue(name string, key *rsa.PrivateKey, tmpl *x509.Certificate, issuer *Identity, useSHA1 bool) (*Identity, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = p.Opts.Now.Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = p.Opts.Now.AddDate(2, 0, 0)
	}
	tmpl.SignatureAlgorithm = x509.SHA256WithRSA
	if useSHA1 || p.Opts.SHA1 {
		tmpl.SignatureAlgorithm = x509.SHA1WithRSA
	}
	parent, signer := tmpl, key
	if issuer != nil {
		parent, signer = issuer.Cert, issuer.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("sim: issuing certificate %s: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("sim: parsing new certificate %s: %w", name, err)
	}
	id := &Identity{Name: name, Key: key, Cert: cert, Chain: []*x509.Certificate{cert}}
	if issuer != nil && !isSelfSigned(issuer.Cert) {
		id.Chain = append(id.Chain, issuer.Chain...)
	}
	return id, nil
}

func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && CheckIssuedBy(c, c) == nil
}

func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("sim: serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

func generateKey(bits int) (*rsa.PrivateKey, error) {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		if bits < 1024 {
			return nil, fmt.Errorf("sim: generating %d-bit RSA key: %w (keys under 1024 bits need GODEBUG=rsa1024min=0 in the environment at program start, or a //go:debug rsa1024min=0 directive in the main package or a _test.go file)", bits, err)
		}
		return nil, fmt.Errorf("sim: generating %d-bit RSA key: %w", bits, err)
	}
	return k, nil
}

// generateKeys makes n keys on all CPUs: key generation is most of NewPKI's time.
func generateKeys(n, bits int) ([]*rsa.PrivateKey, error) {
	keys := make([]*rsa.PrivateKey, n)
	errs := make([]error, n)
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(n, runtime.GOMAXPROCS(0)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				keys[i], errs[i] = generateKey(bits)
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// Roots returns the trust anchors of the PKI.
func (p *PKI) Roots() []*x509.Certificate { return []*x509.Certificate{p.Root.Cert} }

// Identities lists every identity of the PKI in a stable order: root, CA, RIs, devices, SCE
// device, DEA, OCSP responder. Missing ones are skipped.
func (p *PKI) Identities() []*Identity {
	var out []*Identity
	add := func(ids ...*Identity) {
		for _, id := range ids {
			if id != nil {
				out = append(out, id)
			}
		}
	}
	add(p.Root, p.CA)
	add(p.RIs...)
	add(p.Devices...)
	add(p.SCEDevice, p.DEA, p.OCSP)
	return out
}

// Identity returns the identity with the given name, or nil.
func (p *PKI) Identity(name string) *Identity {
	for _, id := range p.Identities() {
		if id.Name == name {
			return id
		}
	}
	return nil
}

// Write stores the PKI as PEM files in dir (created with mode 0700): for each identity <name>.pem
// (certificate), <name>.key (PKCS#8 private key, mode 0600) and, except for the root,
// <name>-chain.pem (leaf first, no root). Names: root, ca, ri-1…, device-1…, sce-device, dea, ocsp.
func (p *PKI) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	// MkdirAll leaves an existing directory's mode alone; private keys go in here.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	for _, id := range p.Identities() {
		keyDER, err := x509.MarshalPKCS8PrivateKey(id.Key)
		if err != nil {
			return fmt.Errorf("sim: encoding key %s: %w", id.Name, err)
		}
		if err := writeFile(filepath.Join(dir, id.Name+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(dir, id.Name+".pem"), certsPEM(id.Cert), 0o644); err != nil {
			return err
		}
		if id != p.Root {
			if err := writeFile(filepath.Join(dir, id.Name+"-chain.pem"), certsPEM(id.Chain...), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

func certsPEM(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// writeFile replaces path by a new file created with mode, so that a key never lands, even
// briefly, in an older file with a wider mode.
func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sim: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if werr != nil {
		return fmt.Errorf("sim: writing %s: %w", path, werr)
	}
	if cerr != nil {
		return fmt.Errorf("sim: writing %s: %w", path, cerr)
	}
	// The umask may have narrowed mode; the contract is the exact mode.
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	return nil
}

// LoadPKI reads a PKI stored by Write. Opts is reconstructed: Bits from the root key, SHA1 from the
// CA certificate's signature algorithm, Now from the root's NotBefore, counts from the files.
func LoadPKI(dir string) (*PKI, error) {
	p := &PKI{}
	var err error
	if p.Root, err = loadIdentity(dir, NameRoot, true); err != nil {
		return nil, err
	}
	if !isSelfSigned(p.Root.Cert) {
		return nil, fmt.Errorf("sim: %s: root certificate is not self-signed", filepath.Join(dir, "root.pem"))
	}
	if p.CA, err = loadIdentity(dir, NameCA, false); err != nil {
		return nil, err
	}
	if err := CheckIssuedBy(p.CA.Cert, p.Root.Cert); err != nil {
		return nil, err
	}
	numbered := func(name func(int) string) ([]*Identity, error) {
		var ids []*Identity
		for i := 1; ; i++ {
			if _, err := os.Stat(filepath.Join(dir, name(i)+".pem")); errors.Is(err, fs.ErrNotExist) {
				return ids, nil
			}
			id, err := loadIdentity(dir, name(i), false)
			if err != nil {
				return nil, err
			}
			ids = append(ids, id)
		}
	}
	if p.RIs, err = numbered(RIName); err != nil {
		return nil, err
	}
	if p.Devices, err = numbered(DeviceName); err != nil {
		return nil, err
	}
	for _, x := range []struct {
		dst  **Identity
		name string
	}{{&p.SCEDevice, NameSCEDevice}, {&p.DEA, NameDEA}, {&p.OCSP, NameOCSP}} {
		if *x.dst, err = loadIdentity(dir, x.name, false); err != nil {
			return nil, err
		}
	}
	p.Opts = PKIOptions{
		Bits:    p.Root.Key.N.BitLen(),
		SHA1:    p.CA.Cert.SignatureAlgorithm == x509.SHA1WithRSA,
		Now:     p.Root.Cert.NotBefore.Add(time.Hour),
		Devices: len(p.Devices),
		RIs:     len(p.RIs),
	}
	return p, nil
}

func loadIdentity(dir, name string, root bool) (*Identity, error) {
	certPath := filepath.Join(dir, name+".pem")
	certs, err := readCerts(certPath)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("sim: %s: want exactly one certificate, found %d", certPath, len(certs))
	}
	id := &Identity{Name: name, Cert: certs[0], Chain: certs}
	if id.Key, err = readKey(filepath.Join(dir, name+".key")); err != nil {
		return nil, err
	}
	if !id.Key.PublicKey.Equal(id.Cert.PublicKey) {
		return nil, fmt.Errorf("sim: %s.key does not belong to %s.pem", name, name)
	}
	if root {
		return id, nil
	}
	chainPath := filepath.Join(dir, name+"-chain.pem")
	if id.Chain, err = readCerts(chainPath); err != nil {
		return nil, err
	}
	if len(id.Chain) == 0 || !id.Chain[0].Equal(id.Cert) {
		return nil, fmt.Errorf("sim: %s does not start with the certificate in %s", chainPath, certPath)
	}
	return id, nil
}

func readCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("sim: %s: %w", path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("sim: %s: no PEM CERTIFICATE block", path)
	}
	return certs, nil
}

func readKey(path string) (*rsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("sim: %s: no PEM block", path)
	}
	switch b.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("sim: %s: %w", path, err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("sim: %s: not an RSA key (%T)", path, k)
		}
		return rk, nil
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("sim: %s: %w", path, err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("sim: %s: unexpected PEM block %q", path, b.Type)
}
