package config

import (
	"regexp"
	"sync"
)

// lazyRegexp compiles its pattern at its first use, not at init. Compiled
// at init, the validation patterns cost every extension process 0.9 MB of
// heap and 5,000 allocations before main ran (GODEBUG=inittrace=1), most
// of it for the session tags' Unicode classes, which few configurations
// use; that memory stayed resident, since the heap of an extension that
// serves from cache seldom reaches the GC's first 4 MB goal.
type lazyRegexp struct {
	pattern string
	once    sync.Once
	re      *regexp.Regexp
}

func lazy(pattern string) *lazyRegexp { return &lazyRegexp{pattern: pattern} }

func (l *lazyRegexp) get() *regexp.Regexp {
	l.once.Do(func() { l.re = regexp.MustCompile(l.pattern) })
	return l.re
}

func (l *lazyRegexp) MatchString(s string) bool { return l.get().MatchString(s) }

func (l *lazyRegexp) ReplaceAllString(src, repl string) string {
	return l.get().ReplaceAllString(src, repl)
}
