// Package layer holds the sources of the Lambda layer tree that are not
// built from Go: the exec wrapper (credential-refresh/exec-wrapper) and the
// named-role helpers for Python (python/credential_refresh) and Node.js
// (nodejs/node_modules/credential-refresh). Its Go code is the wrapper's
// tests, run under sh, dash and bash; the helpers' tests are in
// test/helpers (pytest, node --test). The Go code itself is not copied into
// the layer.
package layer
