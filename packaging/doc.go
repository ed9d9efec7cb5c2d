// Package packaging checks what `sam build`, `make layer` and `make image`
// produce, with debug/elf, archive/zip, archive/tar and compress/gzip: the
// layer zips and trees (ELF machine for the architecture, static linking,
// executable bits, the in-layer Python and Node helpers readable by all and
// identical to layer/, exact contents and top level, at most 6 MB), the OCI
// image of the same trees (an OCI index with linux/amd64 and linux/arm64,
// verified digests, each platform's layer root-owned under /opt and holding
// exactly its zip's files, within 6 MB), the example functions' artifacts
// (Java: the handler's class file and lib/), samconfig.toml, and that SAM
// tried no outbound connection. It has no code of its own, only tests:
//
//   - on crafted artifacts (a wrong ELF machine, a missing executable bit,
//     a zip over 6 MB, a helper missing or edited, a Java 17 class file, an
//     image entry outside /opt, a blob that fails its digest, ...), always,
//     so that the checks are known to fail;
//   - on the real artifacts when CREDENTIAL_REFRESH_PACKAGING=1, which
//     scripts/check-packaging.sh sets after building them.
//
// trapproxy is the proxy that records outbound connection attempts.
package packaging
