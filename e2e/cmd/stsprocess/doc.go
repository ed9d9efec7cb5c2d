// Command stsprocess is a credential process for the end-to-end tests: it
// assumes a role in moto (through the expiry-enforcing proxy, so the keys it
// hands out are tracked like the extension's own) with long-term keys read
// from a file, and prints AWS's credential_process JSON. It stands in for a
// vendor broker shipped in another layer.
//
//	stsprocess -endpoint URL -role-arn ARN -duration 6s -keys FILE
//
// FILE holds "ACCESS_KEY_ID SECRET_ACCESS_KEY". Failures go to stderr with
// a non-zero exit; nothing secret is printed there.
package main
