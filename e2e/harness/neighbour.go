package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"strconv"
	"time"
)

// The fake Parameters and Secrets extension of e2e/cmd/paramsext: its name
// (file name in the layer), the real extension's port variable and token
// header, and the variable that sets the value it serves.
const (
	NeighbourName        = "fake-parameters-secrets"
	EnvNeighbourPort     = "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"
	NeighbourTokenHeader = "X-Aws-Parameters-Secrets-Token"
	EnvNeighbourValue    = "FAKE_PARAMETERS_SECRETS_VALUE"
)

// BuildNeighbourLayer builds the fake extension's own layer in dir:
// extensions/fake-parameters-secrets, as a second layer would bring it.
func BuildNeighbourLayer(ctx context.Context, root, dir string) error {
	return goBuild(ctx, root, filepath.Join(dir, "extensions", NeighbourName), "./e2e/cmd/paramsext")
}

// MergeLayers lays the layers out in dst in order, as Lambda extracts a
// function's layers into /opt: a later layer's file replaces an earlier
// one's. The result goes in [Options.LayerDir].
func MergeLayers(dst string, layers ...string) error {
	for _, layer := range layers {
		err := filepath.WalkDir(layer, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(layer, path)
			if err != nil {
				return err
			}
			return copyFile(path, filepath.Join(dst, rel), info.Mode().Perm())
		})
		if err != nil {
			return fmt.Errorf("merge layer %s: %w", layer, err)
		}
	}
	return nil
}

// NeighbourURL is the fake extension's parameter endpoint on port.
func NeighbourURL(port int) string {
	return "http://127.0.0.1:" + strconv.Itoa(port) + "/systemsmanager/parameters/get?name=e2e-parameter"
}

// CallNeighbour GETs url with token as X-Aws-Parameters-Secrets-Token (no
// header if token is empty) and returns the status. The body, which holds
// the value on 200, is discarded.
func CallNeighbour(ctx context.Context, url, token string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set(NeighbourTokenHeader, token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("call neighbour: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// SecretsCall is what the Python and Node.js examples report about their
// call to the neighbour when the event has "secretsEndpoint": its HTTP
// status and whether AWS_SESSION_TOKEN was set in the function's process.
type SecretsCall struct {
	Status          int  `json:"status"`
	SessionTokenSet bool `json:"sessionTokenSet"`
}

// UploadCallingSecrets is [Environment.Upload] with "secretsEndpoint" added
// to the event, so the function also calls the neighbour at endpoint.
func (e *Environment) UploadCallingSecrets(ctx context.Context, prefix string, count int, endpoint string) (Upload, SecretsCall, error) {
	var sc SecretsCall
	payload, err := e.stack.Event(e.Opts.Runtime, e.stack.Account.Bucket, prefix, count)
	if err != nil {
		return Upload{}, sc, err
	}
	var ev map[string]any
	if err := json.Unmarshal(payload, &ev); err != nil {
		return Upload{}, sc, err
	}
	ev["secretsEndpoint"] = endpoint
	if payload, err = json.Marshal(ev); err != nil {
		return Upload{}, sc, err
	}
	inv, err := e.Invoke(ctx, payload)
	u := Upload{Invocation: inv}
	if err != nil {
		return u, sc, err
	}
	if fe := inv.Error(); fe != nil {
		return u, sc, fmt.Errorf("function error %s: %s", fe.ErrorType, fe.ErrorMessage)
	}
	var out struct {
		Secrets *SecretsCall `json:"secrets"`
	}
	if json.Unmarshal(inv.Body, &u) != nil || json.Unmarshal(inv.Body, &out) != nil || u.Runtime == "" || out.Secrets == nil {
		return u, sc, fmt.Errorf("unexpected invoke response (HTTP %d): %.500s", inv.Status, inv.Body)
	}
	return u, *out.Secrets, nil
}

// NeighbourLogs returns the fake extension's log records.
func (e *Environment) NeighbourLogs() []LogRecord {
	var out []LogRecord
	for _, r := range e.JSONLogs() {
		if r.Str("extension") == NeighbourName {
			out = append(out, r)
		}
	}
	return out
}
