// Command credential-refresh is a Lambda external extension that keeps STS
// AssumeRole credentials fresh and serves them on 127.0.0.1 in the AWS
// container-credentials format. It is built into the layer as
// extensions/credential-refresh. main only wires: configuration, logger,
// signals, agent, exit code; everything else is in internal/.
package main
