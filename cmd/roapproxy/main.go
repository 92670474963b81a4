// Command roapproxy is an interception proxy and live debugger for OMA DRM traffic: ROAP, ROAP
// triggers, SCE/RDP and token messages. This file is only the subcommand dispatcher; each
// subcommand lives in its own file and registers itself from an init function, so adding one
// (run, demo, sim, ca, …) never means editing this file.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand. run receives the arguments after the subcommand name and returns
// the process exit status; it must return promptly once ctx is cancelled (SIGINT, SIGTERM).
type command struct {
	name    string
	summary string // one line, shown by `roapproxy help`
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// commands is filled by init functions and read-only afterwards.
var commands = map[string]command{}

// register adds a subcommand. A duplicate name is a programming error that the first test run
// catches, so it panics.
func register(c command) {
	if c.name == "" || c.run == nil {
		panic("roapproxy: register needs a name and a run function")
	}
	if _, dup := commands[c.name]; dup {
		panic("roapproxy: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

func main() {
	// A second signal while shutting down is not caught any more (stop restores the default), so
	// an impatient Ctrl-C twice still ends a stuck process.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// dispatch runs the subcommand named by args[0]. Asking for help succeeds (exit 0, stdout);
// anything else that is not a command is a usage error (exit 2, stderr).
func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if name == "help" && len(args) > 1 {
			c, ok := commands[args[1]]
			if !ok {
				fmt.Fprintf(stderr, "roapproxy: no help for unknown command %q\n\n", args[1])
				usage(stderr)
				return 2
			}
			return c.run(ctx, []string{"-h"}, stdout, stderr)
		}
		usage(stdout)
		return 0
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "roapproxy: unknown command %q\n\n", sanitize(name))
		usage(stderr)
		return 2
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprint(w, "roapproxy intercepts, decodes and verifies OMA DRM traffic (ROAP, ROAP triggers, SCE/RDP, tokens).\n\n")
	fmt.Fprint(w, "Usage:\n\n\troapproxy <command> [flags] [arguments]\n\nCommands:\n\n")
	names := make([]string, 0, len(commands))
	width := 0
	for n := range commands {
		names = append(names, n)
		width = max(width, len(n))
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "\t%-*s  %s\n", width, n, commands[n].summary)
	}
	fmt.Fprint(w, "\nRun 'roapproxy help <command>' (or 'roapproxy <command> -h') for its flags.\n")
}

// newFlagSet returns a flag set for a subcommand whose usage text starts with synopsis (for
// example "inspect [flags] FILE...") and the command's summary.
func newFlagSet(name, synopsis, about string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: roapproxy %s\n\n", synopsis)
		if about != "" {
			fmt.Fprintf(w, "%s\n\n", strings.TrimSpace(about))
		}
		var any bool
		fs.VisitAll(func(*flag.Flag) { any = true })
		if any {
			fmt.Fprint(w, "Flags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses args into fs. It returns ok=false with the exit status to use when the
// command must stop: 0 after -h (usage on stdout), 2 after a bad flag (error and usage on
// stderr). The flag package writes before we know which case it is, so it writes to a buffer.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (ok bool, code int) {
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	err := fs.Parse(args)
	switch {
	case err == nil:
		fs.SetOutput(stderr)
		return true, 0
	case errors.Is(err, flag.ErrHelp):
		_, _ = stdout.Write(buf.Bytes())
		return false, 0
	default:
		_, _ = stderr.Write(buf.Bytes())
		return false, 2
	}
}
