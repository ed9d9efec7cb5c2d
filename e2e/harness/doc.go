// Package harness runs the credential-refresh layer the way Lambda runs it,
// without AWS and without Docker, for the end-to-end tests and `make demo`.
//
// It owns these pieces:
//   - [Moto]: a moto server on 127.0.0.1 standing in for IAM, STS and S3,
//     provisioned with an IAM user (the "execution role": may only call
//     sts:AssumeRole), a target role (the only principal that may write to the
//     bucket) and an admin user for verification, with auth enforced.
//   - [Proxy]: an expiry-enforcing reverse proxy in front of moto. moto accepts
//     expired temporary keys; the proxy answers 400 ExpiredToken for them, as
//     AWS does, counts AssumeRole calls, and can play "STS is down".
//   - [Function]: one Lambda execution environment: the Runtime Interface
//     Emulator (RIE) in a private mount namespace with the layer bind-mounted
//     over /opt, invoked sequentially, torn down by process group.
//   - [ExecutionRole] and [CredentialServer]: the execution identity as
//     temporary credentials, and SnapStart's way of delivering them (a
//     token-checking container-credentials endpoint).
//   - builders for the layer tree, a neighbour extension's layer and the
//     example functions.
//
// Nothing here talks to anything but 127.0.0.1.
package harness
