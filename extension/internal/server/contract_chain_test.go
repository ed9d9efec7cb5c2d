package server_test

// Default-chain contract: the exec wrapper unsets AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY but keeps AWS_SESSION_TOKEN (the execution role's,
// which the Parameters and Secrets extension checks). Each SDK's default
// chain, not its container provider alone, must still reach our endpoint
// and use all of the endpoint's credentials, its session token included,
// never the lone env token. The control adds the key id and secret: the
// chain must then pick the environment, so the test can tell the sources
// apart.
//
//   - boto3.Session().get_credentials()      test/contract/python/read_default_chain.py
//   - AWS CLI v1 `aws configure list`        test/contract/python/read_cli_creds.py
//   - JS v3 defaultProvider (Node chain)     test/contract/node/read_default_chain.mjs
//   - Go v2 config.LoadDefaultConfig         this test binary, run again (TestMain)
//
// Each runs as a child process with only the variables set here, so no
// source of this machine (IMDS, ~/.aws, AWS_* variables) interferes.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/extension/internal/server"
)

// goChainHelperEnv makes the test binary resolve the Go default chain,
// print one result line and exit, instead of running tests: the SDK reads
// the process environment, which parallel tests cannot set.
const goChainHelperEnv = "CONTRACT_GO_DEFAULT_CHAIN"

func TestMain(m *testing.M) {
	if os.Getenv(goChainHelperEnv) == "1" {
		os.Exit(goDefaultChain())
	}
	os.Exit(m.Run())
}

// chainResult is what a default chain resolved, in the scripts' JSON shape.
type chainResult struct {
	sdkResult
	Source      string `json:"source"`        // the SDK's own name for the provider that answered
	CLIType     string `json:"cli_type"`      // `aws configure list`: the access_key row's Type
	CLIKeyLast4 string `json:"cli_key_last4"` // and the last 4 characters of its masked Value
}

// goDefaultChain is the Go reader, in the child process.
func goDefaultChain() int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var res chainResult
	cfg, err := config.LoadDefaultConfig(ctx)
	var c aws.Credentials
	if err == nil {
		c, err = cfg.Credentials.Retrieve(ctx)
	}
	if err != nil {
		res.ErrorType, res.Error = fmt.Sprintf("%T", err), err.Error()
	} else {
		res.sdkResult = sdkResult{
			OK: true, AccessKey: c.AccessKeyID, HasSecret: c.SecretAccessKey != "", HasToken: c.SessionToken != "",
			SecretMatches: sha256hex(c.SecretAccessKey) == os.Getenv("CONTRACT_EXPECT_SECRET_SHA256"),
			TokenMatches:  sha256hex(c.SessionToken) == os.Getenv("CONTRACT_EXPECT_TOKEN_SHA256"),
		}
		res.Source = c.Source
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return 1
	}
	return 0
}

func goChainCommand(t *testing.T) []string {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{self}
}

// chainSDK is one SDK's default chain and the names it gives the two sources.
type chainSDK struct {
	name           string
	command        scriptCommand
	env            []string // added to chainEnv
	endpointSource string
	envSource      string
	cli            bool // the result also carries `aws configure list`'s row
}

func chainSDKs() []chainSDK {
	return []chainSDK{
		{name: "python-boto3", endpointSource: "container-role", envSource: "env",
			command: func(t *testing.T) []string { return pythonScript(t, "read_default_chain.py") }},
		{name: "aws-cli", endpointSource: "container-role", envSource: "env", cli: true, command: cliCommand},
		{name: "node-defaultProvider", endpointSource: "CREDENTIALS_HTTP", envSource: "CREDENTIALS_ENV_VARS",
			command: func(t *testing.T) []string {
				return nodeScript(t, "credential-provider-node", "read_default_chain.mjs")
			}},
		{name: "go-LoadDefaultConfig", endpointSource: endpointcreds.ProviderName, envSource: config.CredentialsSourceName,
			command: goChainCommand, env: []string{goChainHelperEnv + "=1"}},
	}
}

func cliCommand(t *testing.T) []string {
	argv := pythonScript(t, "read_cli_creds.py")
	requireFile(t, "the AWS CLI in the project venv (awscli)", filepath.Join(filepath.Dir(argv[0]), "aws"))
	return argv
}

// chainEnv is what a function sees after the exec wrapper, plus the env keys
// when envKeys, isolated from every other credential source and region.
func chainEnv(t *testing.T, ep contractEndpoint, lone, envKeys, want aws.Credentials) []string {
	dir := t.TempDir()
	absent := filepath.Join(dir, "absent")
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"PYTHONDONTWRITEBYTECODE=1",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + absent,
		"AWS_SHARED_CREDENTIALS_FILE=" + absent,
		"BOTO_CONFIG=" + absent, // botocore's boto2-config provider, before container-role
		"AWS_REGION=us-east-1",
		"AWS_DEFAULT_REGION=us-east-1",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI=" + ep.url(""),
		"AWS_CONTAINER_AUTHORIZATION_TOKEN=" + ep.token,
		"AWS_SESSION_TOKEN=" + lone.SessionToken,
		"CONTRACT_EXPECT_SECRET_SHA256=" + sha256hex(want.SecretAccessKey),
		"CONTRACT_EXPECT_TOKEN_SHA256=" + sha256hex(want.SessionToken),
	}
	if envKeys.AccessKeyID != "" {
		env = append(env, "AWS_ACCESS_KEY_ID="+envKeys.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+envKeys.SecretAccessKey)
	}
	return env
}

func TestContractDefaultChainsWithLoneSessionToken(t *testing.T) {
	// The key ids differ in their last 4 characters ("OINT", "VARS"), all
	// that `aws configure list` shows of a key.
	served := contractCreds(t, "ASIACHAINFROMENDPOINT", time.Now().Add(time.Hour))
	lambdaEnv := aws.Credentials{AccessKeyID: "ASIACHAINFROMENVVARS",
		SecretAccessKey: contractSecret(t, "env-secret-"), SessionToken: contractSecret(t, "env-session-")}
	if last4(served.AccessKeyID) == last4(lambdaEnv.AccessKeyID) {
		t.Fatal("the served and env key ids must differ in their last 4 characters")
	}
	ep := startContractServer(t, map[string]server.Role{server.DefaultRole: contractRole{creds: served}})
	secrets := append(slices.Clone(ep.secrets), lambdaEnv.SecretAccessKey, lambdaEnv.SessionToken)

	cases := []struct {
		name    string
		envKeys bool
		want    aws.Credentials // key id, secret and session token the chain must return
	}{
		{name: "lone session token", want: served},
		{name: "env keys too (control)", envKeys: true, want: lambdaEnv},
	}
	for _, sdk := range chainSDKs() {
		for _, tc := range cases {
			t.Run(sdk.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				var keys aws.Credentials
				if tc.envKeys {
					keys = lambdaEnv
				}
				var res chainResult
				env := append(chainEnv(t, ep, lambdaEnv, keys, tc.want), sdk.env...)
				output := runScript(t, sdk.command(t), env, &res)
				checkSDKNoLeak(t, output, secrets)
				wantSource := sdk.endpointSource
				if tc.envKeys {
					wantSource = sdk.envSource
				}
				checkChainResult(t, sdk, res, tc.want, wantSource)
			})
		}
	}
}

func checkChainResult(t *testing.T, sdk chainSDK, res chainResult, want aws.Credentials, wantSource string) {
	t.Helper()
	if !res.OK {
		t.Fatalf("default chain failed: %s: %s", res.ErrorType, res.Error)
	}
	if res.AccessKey != want.AccessKeyID || !res.HasSecret || !res.SecretMatches || !res.HasToken || !res.TokenMatches {
		t.Errorf("got key %q (secret present %v, matches %v; token present %v, matches %v), want key %q with its own secret and session token",
			res.AccessKey, res.HasSecret, res.SecretMatches, res.HasToken, res.TokenMatches, want.AccessKeyID)
	}
	if res.Source != wantSource {
		t.Errorf("source = %q, want %q", res.Source, wantSource)
	}
	if !sdk.cli {
		return
	}
	if res.CLIType != wantSource || res.CLIKeyLast4 != last4(want.AccessKeyID) {
		t.Errorf("aws configure list: access_key ...%s from %q, want ...%s from %q",
			res.CLIKeyLast4, res.CLIType, last4(want.AccessKeyID), wantSource)
	}
}

func last4(key string) string { return key[max(0, len(key)-4):] }
