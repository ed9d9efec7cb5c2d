// Package packaging checks what `sam build` and `make layer` produce, with
// debug/elf and archive/zip: the layer zips and trees (ELF machine for the
// architecture, static linking, executable bits, exact contents, at most
// 6 MB), the example functions' artifacts, samconfig.toml, and that SAM
// tried no outbound connection. It has no code of its own, only tests:
//
//   - on crafted artifacts (a wrong ELF machine, a missing executable bit,
//     a zip over 6 MB, ...), always, so that the checks are known to fail;
//   - on the real artifacts when CREDENTIAL_REFRESH_PACKAGING=1, which
//     scripts/check-packaging.sh sets after building them.
//
// trapproxy is the proxy that records outbound connection attempts.
package packaging
