// Package bench holds the side-by-side benchmark suite (`make
// bench-compare`): benchcompare drives it, barehandler is the reference
// it compares the extension with. Both are commands; this file only
// documents the directory.
package bench
