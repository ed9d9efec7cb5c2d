// Command demo is `make demo`: it runs the credential-refresh layer with
// the Go, Python and Node.js example functions under the Runtime Interface
// Emulator, against moto (IAM, STS, S3 with auth on) behind the
// expiry-enforcing proxy, with credentials that live 8 seconds. For each
// function it prints a timeline of invocations, STS calls, refreshes and
// the expiry of the credentials served, then checks that every object
// landed, that no expired key was used, and that SHUTDOWN was clean. It
// exits non-zero if any check fails.
//
// Run it through scripts/demo.sh (which installs the tools first), as root:
//
//	make demo
package main
