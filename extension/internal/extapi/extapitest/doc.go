// Package extapitest is a fake Lambda Extensions API following the wire model
// of the Runtime Interface Emulator's rapi package: register hands out an
// identifier that every later call must carry, /event/next blocks until the
// test sends an event, and the error reports answer 202.
package extapitest
