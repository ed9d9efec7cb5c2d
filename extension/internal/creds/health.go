package creds

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Health is a role's state for /v1/health. It holds no credential material.
type Health struct {
	RoleArn             string     `json:"roleArn,omitempty"`
	Source              string     `json:"source"`
	State               string     `json:"state"`
	Refreshing          bool       `json:"refreshing"`
	AccessKeyID         string     `json:"accessKeyId,omitempty"`
	Expiration          *time.Time `json:"expiration,omitempty"`
	RefreshAt           *time.Time `json:"refreshAt,omitempty"`
	LastRefresh         *time.Time `json:"lastRefresh,omitempty"`
	LastErrorCode       string     `json:"lastErrorCode,omitempty"`
	LastErrorMessage    string     `json:"lastErrorMessage,omitempty"`
	ConsecutiveFailures int        `json:"consecutiveFailures"`
	STSCalls            int64      `json:"stsCalls"`
	STSFailures         int64      `json:"stsFailures"`
	Served              int64      `json:"served"`
	Waited              int64      `json:"waited"`

	// STS's request ids (AWS Support asks for them): of the last call,
	// ok or not, and of the last error's.
	LastRequestID      string `json:"lastRequestId,omitempty"`
	LastErrorRequestID string `json:"lastErrorRequestId,omitempty"`
}

// The states Health reports.
const (
	StateEmpty      = "empty"       // nothing fetched yet (deferred mode before the first request)
	StateFresh      = "fresh"       // valid, not yet due for refresh
	StateRefreshDue = "refresh-due" // valid, inside the refresh window
	StateFailing    = "failing"     // nothing servable, and the last STS call failed
	StateExpired    = "expired"     // nothing servable; the next request fetches
)

// Health reports the keeper's state at the current time.
func (k *Keeper) Health() Health {
	now := k.opts.Now()
	h := Health{Source: k.source.Describe(), STSCalls: k.calls.Load(),
		STSFailures: k.failures.Load(), Served: k.served.Load(), Waited: k.waited.Load()}
	if s, ok := k.source.(*AssumeRoleSource); ok {
		h.RoleArn = aws.ToString(s.Input.RoleArn)
	}
	k.mu.Lock()
	f := k.fail
	h.Refreshing = k.flight != nil
	h.LastRequestID = k.lastReqID
	k.mu.Unlock()
	h.ConsecutiveFailures = f.count
	if f.last != nil {
		h.LastErrorCode, h.LastErrorMessage, h.LastErrorRequestID = f.last.Code, f.last.Message, f.last.RequestID
	}
	if !f.lastRefresh.IsZero() {
		t := f.lastRefresh.UTC()
		h.LastRefresh = &t
	}
	e := k.cur.Load()
	switch {
	case e != nil && now.Before(e.floorAt):
		h.State = StateFresh
		if !now.Before(e.refreshAt) {
			h.State = StateRefreshDue
		}
	case f.count > 0:
		h.State = StateFailing
	case e == nil:
		h.State = StateEmpty
	default:
		h.State = StateExpired
	}
	if e != nil {
		exp, ra := e.creds.Expires.UTC(), e.refreshAt.UTC()
		h.AccessKeyID, h.Expiration, h.RefreshAt = e.creds.AccessKeyID, &exp, &ra
	}
	return h
}
