// Package credrefresh gives Go functions on provided.al2023 the credentials
// that the credential-refresh Lambda extension keeps fresh.
//
// On managed runtimes the layer's exec wrapper points each SDK's container
// provider at the extension. A provided.* function has no wrapper, and the
// reserved AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN
// variables (the execution role) would win in the SDK's default chain. This
// package puts the extension's endpoint first instead:
//
//	cfg, err := credrefresh.LoadDefaultConfig(ctx)
//	client := s3.NewFromConfig(cfg)
//
// The provider is the SDK's own endpointcreds provider, reading
// http://127.0.0.1:PORT/v1/credentials[/ROLE] with the token from the
// extension's token file (re-read on every fetch), behind an
// aws.CredentialsCache. Nothing here assumes a role or talks to STS.
package credrefresh
