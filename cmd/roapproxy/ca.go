package main

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"os"

	"github.com/roapproxy/roapproxy/intercept"
)

func init() {
	register(command{
		name:    "ca",
		summary: "show, export or create the interception CA (ca show|export|init)",
		run:     runCA,
	})
}

const caAbout = `ca show     prints the CA's subject, validity, SHA-256 fingerprint and where it is stored
ca export   writes the CA certificate (PEM, or DER with --der) to stdout or --out FILE
ca init     creates the CA if it does not exist (--force replaces an existing one)

Devices can also fetch the certificate through the proxy at http://roapproxy.ca/.`

func runCA(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("ca", "ca show|export|init [flags]", caAbout)
	dir := fs.String("config-dir", intercept.DefaultConfigDir(), "`folder` holding the CA")
	der := fs.Bool("der", false, "export: DER instead of PEM (what Android's installer wants as .crt)")
	out := fs.String("out", "", "export: write to this `file` instead of stdout")
	force := fs.Bool("force", false, "init: replace an existing CA")
	if len(args) == 0 {
		fs.Usage()
		return 2
	}
	sub := args[0]
	if ok, code := parseFlags(fs, args[1:], stdout, stderr); !ok {
		return code
	}
	switch sub {
	case "init":
		if *force {
			ca, err := intercept.NewCA(*dir)
			if err != nil {
				fmt.Fprintf(stderr, "roapproxy ca: %v\n", err)
				return 1
			}
			fmt.Fprintf(stdout, "created a new CA in %s\nSHA-256 %s\n", *dir, ca.Fingerprint())
			return 0
		}
		ca, created, err := intercept.LoadOrCreateCA(*dir)
		if err != nil {
			fmt.Fprintf(stderr, "roapproxy ca: %v\n", err)
			return 1
		}
		if created {
			fmt.Fprintf(stdout, "created a new CA in %s\n", *dir)
		} else {
			fmt.Fprintf(stdout, "a CA already exists in %s (use --force to replace it)\n", *dir)
		}
		fmt.Fprintf(stdout, "SHA-256 %s\n", ca.Fingerprint())
		return 0
	case "show", "export":
		ca, err := intercept.LoadCA(*dir)
		if err != nil {
			fmt.Fprintf(stderr, "roapproxy ca: no CA in %s (run 'roapproxy ca init'): %v\n", *dir, err)
			return 1
		}
		if sub == "show" {
			fmt.Fprintf(stdout, "subject     %s\nnot before  %s\nnot after   %s\nSHA-256     %s\nfolder      %s\n",
				ca.Cert.Subject, ca.Cert.NotBefore.UTC().Format("2006-01-02"), ca.Cert.NotAfter.UTC().Format("2006-01-02"), ca.Fingerprint(), *dir)
			return 0
		}
		data := ca.Cert.Raw
		if !*der {
			data = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
		}
		if *out == "" {
			_, _ = stdout.Write(data)
			return 0
		}
		if err := os.WriteFile(*out, data, 0o644); err != nil {
			fmt.Fprintf(stderr, "roapproxy ca: %v\n", err)
			return 1
		}
		return 0
	default:
		fmt.Fprintf(stderr, "roapproxy ca: unknown subcommand %q (show, export or init)\n", sub)
		return 2
	}
}
