#!/usr/bin/env python3
"""Turns the interop matrix results into Markdown.

`cargo test --test interop` writes one JSON file per column (peer x TLS
version) into target/tmp/interop/. This prints the table (exit paths as rows,
peers as columns) and the versions of the peers, and with --write FILE also
replaces the part of FILE between the `<!-- interop:begin -->` and
`<!-- interop:end -->` markers.
"""

import argparse
import datetime
import json
import os
import platform
import sys

# Column order: the OpenSSL family first, then the independent stacks.
ORDER = ["s_server", "nginx", "gnutls", "jsse", "go", "rustls"]
BEGIN = "<!-- interop:begin -->"
END = "<!-- interop:end -->"


def load(results):
    columns = []
    for name in sorted(os.listdir(results)):
        if name.endswith(".json"):
            with open(os.path.join(results, name)) as f:
                columns.append(json.load(f))

    def key(col):
        k = col["key"]
        rank = ORDER.index(k) if k in ORDER else len(ORDER)
        return (rank, k, col["tls"] != "1.3")

    return sorted(columns, key=key)


def cell(text):
    return text.replace("|", "\\|")


def render(columns):
    if not columns:
        return "No results: run `cargo test --test interop` first.\n"
    # Rows in the order the columns list them, matched by label: a column
    # left over from a run with other rows shows `missing`, never a cell of
    # another row.
    rows = []
    for col in columns:
        for c in col["cells"]:
            if c["row"] not in rows:
                rows.append(c["row"])
    out = []
    out.append("| exit path | " + " | ".join(c["column"] for c in columns) + " |")
    out.append("|---" * (len(columns) + 1) + "|")
    notes = []
    for row in rows:
        cells = []
        for col in columns:
            c = next((c for c in col["cells"] if c["row"] == row), None)
            if c is None:
                cells.append("missing")
                continue
            text = cell(c["text"])
            if c.get("note"):
                if c["note"] not in notes:
                    notes.append(c["note"])
                text += f" [^{notes.index(c['note']) + 1}]"
            cells.append(text)
        out.append(f"| {cell(row)} | " + " | ".join(cells) + " |")
    if notes:
        out.append("")
        for n, note in enumerate(notes, 1):
            out.append(f"[^{n}]: {note}")
    bad = sum(1 for col in columns for c in col["cells"] if not c["ok"])
    out.append("")
    out.append(f"{len(columns)} columns, {sum(len(c['cells']) for c in columns)} cells, "
               f"{bad} failed. Run on {datetime.date.today().isoformat()}, "
               f"{platform.system()} {platform.release()}, {os.cpu_count()} cores.")
    out.append("")
    out.append("Peers:")
    seen = set()
    for col in columns:
        if col["key"] in seen:
            continue
        seen.add(col["key"])
        out.append(f"- {col['column'].rsplit(' ', 1)[0]}: {col['version'] or 'version unknown'}")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("results", help="directory with the column JSON files")
    ap.add_argument("--write", metavar="FILE", help="update FILE between the markers")
    args = ap.parse_args()
    table = render(load(args.results))
    sys.stdout.write(table)
    if args.write:
        with open(args.write) as f:
            text = f.read()
        start, end = text.find(BEGIN), text.find(END)
        if start < 0 or end < start:
            sys.exit(f"{args.write}: markers {BEGIN} / {END} not found")
        text = text[: start + len(BEGIN)] + "\n" + table + text[end:]
        with open(args.write, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
