package creds

import (
	"context"
	"errors"
	"sync"
)

// Identity is the principal a credential set really is: STS
// GetCallerIdentity made with it.
type Identity struct {
	Account string `json:"Account"`
	Arn     string `json:"Arn"`
	UserID  string `json:"UserId"`
}

// ErrNoIdentity means the keeper was built without Options.Identify.
var ErrNoIdentity = errors.New("identity lookup is not configured")

// identityCache holds one entry's identity: looked up at most once per
// credential set, on the first request that asks. A failed lookup is not
// kept, so the next request tries again.
type identityCache struct {
	mu sync.Mutex
	id *Identity
}

// Identity returns the identity of the credentials the keeper serves now,
// fetching them first if needed. It costs at most one GetCallerIdentity per
// credential set, and the credentials path never waits on it.
func (k *Keeper) Identity(ctx context.Context) (Identity, error) {
	if k.opts.Identify == nil {
		return Identity{}, ErrNoIdentity
	}
	if _, err := k.Credentials(ctx); err != nil {
		return Identity{}, err
	}
	e := k.cur.Load()
	e.identity.mu.Lock()
	defer e.identity.mu.Unlock()
	if e.identity.id != nil {
		return *e.identity.id, nil
	}
	id, err := k.opts.Identify(ctx, e.creds)
	if err != nil {
		return Identity{}, k.classify(err)
	}
	e.identity.id = &id
	return id, nil
}
