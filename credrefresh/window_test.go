package credrefresh

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

func TestAdjustExpiresBy(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	p := &Provider{now: func() time.Time { return now }}
	tests := []struct {
		name      string
		canExpire bool
		lifetime  time.Duration
		want      time.Duration // remaining after the adjustment
	}{
		{"long lifetime keeps the full window", true, time.Hour, 55 * time.Minute},
		{"exactly twice the window", true, 10 * time.Minute, 5 * time.Minute},
		{"short lifetime gets half", true, 2 * time.Minute, time.Minute},
		{"already expired stays expired", true, -time.Minute, -time.Minute},
		{"static credentials untouched", false, time.Hour, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := aws.Credentials{AccessKeyID: "AKID", CanExpire: tt.canExpire, Expires: now.Add(tt.lifetime)}
			got, err := p.AdjustExpiresBy(in, -DefaultExpiryWindow)
			if err != nil {
				t.Fatal(err)
			}
			if rem := got.Expires.Sub(now); rem != tt.want {
				t.Errorf("remaining = %v, want %v", rem, tt.want)
			}
		})
	}
}
