#!/usr/bin/env python3
"""Reads `go test -json` on stdin; prints one line per package as it ends,
the compiler's (or vet's) output of every package that did not build, the
output of every failed test, and a closing 'N passed, N failed, N skipped'.
Exits 1 if anything failed or did not build."""
import json
import sys

passed = failed = skipped = 0
output = {}  # (package, test) -> [lines]
build_output = {}  # import path as go test names it, e.g. "p [p.test]" -> [lines]
failures = []  # (package, test or None, failed build's import path or None)

for raw in sys.stdin:
    try:
        ev = json.loads(raw)
    except ValueError:
        print(raw, end="")  # anything go printed outside the JSON stream
        continue
    action = ev.get("Action")
    # Since Go 1.24 the build's output comes as events keyed by ImportPath:
    # show it at once, it is the only account of what broke.
    if action == "build-output":
        build_output.setdefault(ev.get("ImportPath", ""), []).append(ev.get("Output", ""))
        continue
    if action == "build-fail":
        path = ev.get("ImportPath", "")
        print(f"BUILD FAILED {path}\n" + "".join(build_output.get(path, [])), end="", flush=True)
        continue
    pkg, test = ev.get("Package", ""), ev.get("Test")
    key = (pkg, test)
    if action == "output":
        output.setdefault(key, []).append(ev.get("Output", ""))
        if test is None and ev.get("Output", "").startswith(("FAIL", "panic", "# ")):
            print(ev["Output"], end="")
        continue
    if action not in ("pass", "fail", "skip"):
        continue
    if test is None:
        word = {"pass": "ok  ", "fail": "FAIL", "skip": "--  "}[action]
        print(f"{word} {pkg} {ev.get('Elapsed', 0):.1f}s", flush=True)
        if action == "fail" and not any(p == pkg for p, _, _ in failures):
            failures.append((pkg, None, ev.get("FailedBuild")))
        continue
    if action == "pass":
        passed += 1
    elif action == "skip":
        skipped += 1
        reason = "".join(output.get(key, [])).strip().splitlines()
        print(f"SKIP {pkg} {test}: {reason[-1] if reason else ''}", flush=True)
    else:
        failed += 1
        failures.append((pkg, test, None))

unbuilt = 0
for pkg, test, failed_build in failures:
    if failed_build:
        unbuilt += 1
        print(f"\n=== DID NOT BUILD {pkg} ({failed_build})")
        print("".join(build_output.get(failed_build, [])) or "(go printed no build output)\n", end="")
        continue
    print(f"\n=== FAILED {pkg} {test or '(package)'}")
    print("".join(output.get((pkg, test), [])), end="")

summary = f"\ngo test: {passed} passed, {failed} failed, {skipped} skipped"
if unbuilt:
    summary += f", {unbuilt} package(s) did not build"
print(summary)
sys.exit(1 if failed or failures else 0)
