package contract_test

import (
	"strings"
	"testing"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/contract"
)

func TestCheckRoleName(t *testing.T) {
	for name, ok := range map[string]bool{
		"reader": true, "a.b_c-D9": true, "default": true, strings.Repeat("r", 64): true,
		"": false, strings.Repeat("r", 65): false, ".": false, "..": false, "a/b": false, "a b": false, "ünï": false,
	} {
		if got := contract.CheckRoleName(name) == nil; got != ok {
			t.Errorf("CheckRoleName(%q) ok = %v, want %v", name, got, ok)
		}
	}
}

func TestParsePort(t *testing.T) {
	for s, want := range map[string]int{"2775": 2775, "1024": 1024, "65535": 65535,
		"1023": 0, "65536": 0, "02775": 0, "+2775": 0, " 2775": 0, "2773": 0, "2772": 0, "9001": 0, "x": 0, "": 0} {
		got, err := contract.ParsePort(s)
		if got != want || (err == nil) != (want != 0) {
			t.Errorf("ParsePort(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
}

func TestCredentialsURL(t *testing.T) {
	if u := contract.CredentialsURL(2775, ""); u != "http://127.0.0.1:2775/v1/credentials" {
		t.Error(u)
	}
	if u := contract.CredentialsURL(3000, "reader"); u != "http://127.0.0.1:3000/v1/credentials/reader" {
		t.Error(u)
	}
}
