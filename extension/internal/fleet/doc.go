// Package fleet simulates a fleet of Lambda execution environments, each
// with a real creds.Keeper, assuming roles against one account's STS request
// quota, played by an in-process token bucket (STS). The windows, jitter,
// backoff, single flight and INVOKE/timer triggers are the keeper's own
// code, driven on a virtual clock; only the environments' traffic (when they
// start, when they are invoked, when their SDK asks) is modelled here.
// extension/cmd/fleetsim runs it and docs/fleet.md explains the model.
package fleet
