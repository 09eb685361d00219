"""What every test script shares: check() prints ok/FAIL for one check and remembers failures;
finish() prints how many failed and exits 1 when any did (ctest reads the exit code)."""
import sys

failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        failures.append(what)
    return ok


def finish():
    print(f"{len(failures)} failure(s)")
    sys.exit(1 if failures else 0)
