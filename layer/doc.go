// Package layer holds the sources of the Lambda layer tree that are not
// built from Go: the exec wrapper (credential-refresh/exec-wrapper). Its Go
// code is the wrapper's tests, run under sh, dash and bash; nothing here is
// copied into the layer but the wrapper itself.
package layer
