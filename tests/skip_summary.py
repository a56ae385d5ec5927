#!/usr/bin/env python3
"""The end of `make test`: how many tests skipped and why.

cargo shows a test that skipped (its peer, tool or privilege missing) as `ok` and hides its
SKIP line. Each skip is appended to a log (GRACETLS_SKIP_LOG, see tests/common/skip.rs) as
`binary<TAB>test<TAB>reason`; this prints the skips grouped by reason, the tests under each,
and whether the run was a full one.

    skip_summary.py LOG [STATUS]

STATUS is cargo test's exit status; it is printed when not 0. The exit status of this script
is 0 unless LOG cannot be read; the caller keeps cargo's.
"""

import sys
import textwrap


def by_binary(tests):
    """{binary: names}, with tests that differ only in their last part (the TLS version)
    written once: `loss::escape::{tls1_2,tls1_3}`."""
    groups = {}
    for t in tests:
        binary, name = t.split(" ", 1)
        parent, _, leaf = name.rpartition("::")
        groups.setdefault(binary, {}).setdefault(parent, []).append(leaf)
    out = {}
    for binary, parents in groups.items():
        names = []
        for parent, leaves in sorted(parents.items()):
            leaves.sort()
            if not parent:
                names.extend(leaves)
            elif len(leaves) == 1:
                names.append(f"{parent}::{leaves[0]}")
            else:
                names.append(f"{parent}::{{{','.join(leaves)}}}")
        out[binary] = names
    return out


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: skip_summary.py LOG [STATUS]", file=sys.stderr)
        return 2
    log, status = argv[1], int(argv[2]) if len(argv) == 3 else 0
    try:
        with open(log, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = []  # no test skipped, so none wrote the log
    except OSError as e:
        print(f"skip summary: cannot read {log}: {e}", file=sys.stderr)
        return 1

    by_reason = {}
    for line in lines:
        parts = line.split("\t", 2)
        if len(parts) != 3:
            continue
        binary, test, reason = parts
        tests = by_reason.setdefault(reason, [])
        name = f"{binary} {test}"
        if name not in tests:
            tests.append(name)
    skipped = {t for tests in by_reason.values() for t in tests}

    print()
    print("=" * 72)
    if not skipped:
        # A failed run stopped early, or CI=true turned the skips into failures.
        print("0 tests skipped: full run" if status == 0 else "0 tests skipped")
    else:
        for reason, tests in sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            n = len(tests)
            print(f"SKIPPED {n} test{'s' if n != 1 else ''}: {reason}")
            for binary, names in sorted(by_binary(tests).items()):
                print(textwrap.fill(f"{binary}: " + ", ".join(names), width=100,
                                    initial_indent="    ", subsequent_indent="      ",
                                    break_long_words=False, break_on_hyphens=False))
        n = len(skipped)
        print(f"{n} test{'s' if n != 1 else ''} skipped (cargo counts them as passed): "
              "this was not a full run")
    if status != 0:
        print(f"cargo test failed (exit {status}): the failures are above (cargo stops at "
              "the first test binary that fails, so later ones may not have run)")
    print("=" * 72)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
