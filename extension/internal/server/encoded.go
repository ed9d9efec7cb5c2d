package server

import (
	"encoding/json"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// servedRole is a configured role with the response body of the
// credential set it served last, encoded once: every GET of the same set
// writes the same bytes.
type servedRole struct {
	Role
	last atomic.Pointer[encodedCredentials]
}

// encodedCredentials is one credential set in the container-credentials
// format, with its Content-Length value.
type encodedCredentials struct {
	creds  aws.Credentials
	body   []byte
	length []string
}

// encoded returns c's body: the cached one if c is the set encoded last
// (the same keys, token, expiry and account: the strings compare by
// pointer first, so that check costs nanoseconds), else a new encoding,
// which replaces it.
func (r *servedRole) encoded(c aws.Credentials) *encodedCredentials {
	if e := r.last.Load(); e != nil && e.matches(c) {
		return e
	}
	b, err := json.Marshal(credentialsBody{
		AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, Token: c.SessionToken,
		Expiration: c.Expires.UTC().Format(time.RFC3339), AccountID: c.AccountID,
	})
	if err != nil { // strings always encode; keep the shape of writeJSON anyway
		b = []byte(`{"Code":"InternalError","Message":"could not encode the response"}`)
	}
	b = append(b, '\n')
	e := &encodedCredentials{creds: c, body: b, length: []string{strconv.Itoa(len(b))}}
	r.last.Store(e)
	return e
}

func (e *encodedCredentials) matches(c aws.Credentials) bool {
	return e.creds.AccessKeyID == c.AccessKeyID && e.creds.SecretAccessKey == c.SecretAccessKey &&
		e.creds.SessionToken == c.SessionToken && e.creds.AccountID == c.AccountID && e.creds.Expires.Equal(c.Expires)
}
