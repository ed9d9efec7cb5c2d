package layer_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/lambda-credential-refresh/lambda-credential-refresh/contract"
)

// TestWrapperFollowsContract reads the exec wrapper and the contract
// package, and fails if they disagree on a name, a default or a rule: the
// variables the wrapper reads, its default port and token file, the role
// names and ports it accepts (tried, in every shell), and the URL it
// exports for them.
func TestWrapperFollowsContract(t *testing.T) {
	src, err := os.ReadFile(wrapperPath)
	if err != nil {
		t.Fatal(err)
	}
	script := string(src)
	for _, want := range []string{
		"${" + contract.EnvPort + ":-" + strconv.Itoa(contract.DefaultPort) + "}",
		"${" + contract.EnvTokenFile + ":-" + contract.DefaultTokenFile + "}",
		"${" + contract.EnvClientRole + ":-}",
		"*[!" + contract.RoleNameChars + "]*",
		`-lt ` + strconv.Itoa(contract.MinPort), `-gt ` + strconv.Itoa(contract.MaxPort),
		`-gt ` + strconv.Itoa(contract.MaxRoleNameLen),
		`url="http://127.0.0.1:$port` + contract.PathCredentials + `"`,
	} {
		if !strings.Contains(script, want) {
			t.Errorf("the wrapper does not contain %q", want)
		}
	}
	for port := range contract.ReservedPorts {
		if !strings.Contains(script, strconv.Itoa(port)) {
			t.Errorf("the wrapper does not refuse reserved port %d", port)
		}
	}
	token := writeToken(t, "tok")
	roles := []string{"", "reader", "a.b_c-D9", strings.Repeat("r", contract.MaxRoleNameLen), strings.Repeat("r", contract.MaxRoleNameLen+1),
		".", "..", "...", "a/b", "a b", "ünï", "a*", "-x"}
	ports := []string{"", "2775", "1024", "65535", "1023", "65536", "02775", "+2775", "2773", "2772", "9001", "x"}
	for _, shell := range shells(t) {
		for _, role := range roles {
			for _, port := range ports {
				env := map[string]string{contract.EnvTokenFile: token, contract.EnvClientRole: role, contract.EnvPort: port}
				r := runWrapper(t, shell, env, "--x")
				wantOK := role == "" || contract.CheckRoleName(role) == nil
				p := contract.DefaultPort
				if port != "" {
					var perr error
					p, perr = contract.ParsePort(port)
					wantOK = wantOK && perr == nil
				}
				name := fmt.Sprintf("%s: role %q port %q", shell, role, port)
				if (r.code == 0) != wantOK {
					t.Errorf("%s: wrapper exit %d, contract says ok=%v (%s)", name, r.code, wantOK, strings.TrimSpace(r.stderr))
					continue
				}
				if wantOK {
					if got := decode(t, r).Env["AWS_CONTAINER_CREDENTIALS_FULL_URI"]; got != contract.CredentialsURL(p, role) {
						t.Errorf("%s: exported %q, contract %q", name, got, contract.CredentialsURL(p, role))
					}
				}
			}
		}
	}
}
