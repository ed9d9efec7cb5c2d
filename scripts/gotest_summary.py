#!/usr/bin/env python3
"""Reads `go test -json` on stdin; prints one line per package as it ends,
the output of every failed test, and a closing 'N passed, N failed, N skipped'.
Exits 1 if anything failed."""
import json
import sys

passed = failed = skipped = 0
output = {}  # (package, test) -> [lines]
failures = []

for raw in sys.stdin:
    try:
        ev = json.loads(raw)
    except ValueError:
        print(raw, end="")  # build errors arrive as plain text
        continue
    pkg, test, action = ev.get("Package", ""), ev.get("Test"), ev.get("Action")
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
        if action == "fail" and not any(p == pkg for p, _ in failures):
            failures.append((pkg, None))
        continue
    if action == "pass":
        passed += 1
    elif action == "skip":
        skipped += 1
        reason = "".join(output.get(key, [])).strip().splitlines()
        print(f"SKIP {pkg} {test}: {reason[-1] if reason else ''}", flush=True)
    else:
        failed += 1
        failures.append(key)

for pkg, test in failures:
    print(f"\n=== FAILED {pkg} {test or '(package)'}")
    print("".join(output.get((pkg, test), [])), end="")

print(f"\ngo test: {passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed or failures else 0)
