package harness

import (
	"fmt"
	"path/filepath"
)

// LayerHelpers are the in-layer helper files, as paths under layer/ in the
// repository and under /opt in a function: the Python package
// (/opt/python is on the Python runtime's sys.path) and the Node package
// (/opt/nodejs/node_modules is on the Node runtime's NODE_PATH). The
// Makefile's HELPERS and scripts/check-packaging.sh list the same files.
var LayerHelpers = []string{
	"python/credential_refresh/__init__.py",
	"nodejs/node_modules/credential-refresh/package.json",
	"nodejs/node_modules/credential-refresh/index.js",
	"nodejs/node_modules/credential-refresh/index.mjs",
	"nodejs/node_modules/credential-refresh/index.d.ts",
}

// copyHelpers puts the helpers into the layer tree dir, readable by all
// (the managed-instances path runs as uid 993).
func copyHelpers(root, dir string) error {
	for _, rel := range LayerHelpers {
		if err := copyFile(filepath.Join(root, "layer", filepath.FromSlash(rel)), filepath.Join(dir, filepath.FromSlash(rel)), 0o644); err != nil {
			return fmt.Errorf("layer helper %s: %w", rel, err)
		}
	}
	return nil
}
