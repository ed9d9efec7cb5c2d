// Package agent owns the extension's lifecycle: token file, loopback
// listener, registration (with the eager prefetch running alongside it), the
// event loop that returns to /event/next at once, and a graceful shutdown
// inside the SHUTDOWN deadline. Configuration errors are reported through
// /extension/init/error before anything is served.
package agent
