package config

import "testing"

// TestPatternsCompile: the validation patterns compile (at first use now,
// so a typo would otherwise only show with the configuration that needs it).
func TestPatternsCompile(t *testing.T) {
	for _, p := range []*lazyRegexp{regionPattern, roleArnPattern, policyArnPattern, sessionNamePattern, externalIDPattern,
		sessionNameInvalid, tagTextPattern} {
		if p.get() == nil {
			t.Errorf("%s did not compile", p.pattern)
		}
	}
}
