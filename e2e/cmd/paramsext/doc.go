// Command paramsext is a fake "AWS Parameters and Secrets Lambda Extension"
// for the e2e neighbour scenario: a real external extension, built into a
// second layer next to credential-refresh, that checks what the real one
// checks. It registers with the Extensions API under its file name
// (fake-parameters-secrets) for INVOKE and SHUTDOWN, serves
// /systemsmanager/parameters/get and /secretsmanager/get on
// 127.0.0.1:$PARAMETERS_SECRETS_EXTENSION_HTTP_PORT (default 2773), and
// answers 200 only when the X-Aws-Parameters-Secrets-Token header equals
// the AWS_SESSION_TOKEN of its own environment (Lambda's, which no exec
// wrapper touches), 401 otherwise. It exits 0 on SHUTDOWN.
//
// The value it serves is $FAKE_PARAMETERS_SECRETS_VALUE, so a test can
// check that it never reaches a log. It never logs a token or the value.
package main
