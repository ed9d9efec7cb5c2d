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
// Provider is the SDK's own endpointcreds provider, reading
// http://127.0.0.1:PORT/v1/credentials[/ROLE] with the token from the
// extension's token file (re-read on every fetch). Like the SDK's providers
// it is built by New with func(*Options) and does not cache: config wraps it
// in an aws.CredentialsCache, which config.WithCredentialsCacheOptions
// configures. Only LoadDefaultConfig reads the environment. Nothing here
// assumes a role or talks to STS.
package credrefresh
