// Package extapi is a client of the Lambda Extensions API: register, the
// blocking event loop (/event/next, which has no timeout), and the init and
// exit error reports (which answer 202). Every other call carries a timeout.
package extapi
