"""Runs SQL statements, in order, on chdb's in-process ClickHouse engine.

    runsql.py --version   print the engine's version (SELECT version())
    runsql.py FILE        run the statements FILE lists

FILE is a JSON list of statements, each {"name", "sql"} and optionally
"expect" (the answer's lines, TabSeparated, compared in any order) or
"until" (run again, for up to 60 s, until the answer is this text). The
engine's data lives in a temporary folder, removed at the end. The first
statement that fails or answers otherwise ends the run: its name, its SQL
and the engine's error are printed and the exit status is 1.
sink/chwriter/currentengine_test.go writes FILE from the sink's own
statement builders.
"""

import json
import os
import sys
import tempfile
import time

# Dates as the sink's tests expect them, whatever the machine's zone.
os.environ["TZ"] = "UTC"
time.tzset()

import chdb  # noqa: E402
from chdb import session  # noqa: E402


def answer(s, sql):
    return s.query(sql, "TabSeparated").bytes().decode()


def lines(text):
    return sorted(line for line in text.split("\n") if line != "")


def run(s, version, statements):
    for i, st in enumerate(statements, 1):
        where = f"statement {i} of {len(statements)} ({st['name']}) on ClickHouse {version}"
        try:
            got = answer(s, st["sql"])
            if st.get("until") is not None:
                deadline = time.monotonic() + 60
                while got.strip() != st["until"] and time.monotonic() < deadline:
                    time.sleep(0.05)
                    got = answer(s, st["sql"])
        except Exception as e:  # chdb raises ChdbError, RuntimeError by version
            print(f"FAIL {where}: {e}\n--- SQL\n{st['sql']}", file=sys.stderr)
            return False
        if st.get("until") is not None and got.strip() != st["until"]:
            print(f"FAIL {where}: answered {got.strip()!r} after 60 s, want {st['until']!r}\n--- SQL\n{st['sql']}", file=sys.stderr)
            return False
        if st.get("expect") is not None and lines(got) != sorted(st["expect"]):
            print(f"FAIL {where}: wrong answer\n--- got\n" + "\n".join(lines(got)) +
                  "\n--- want\n" + "\n".join(sorted(st["expect"])) + f"\n--- SQL\n{st['sql']}", file=sys.stderr)
            return False
    return True


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with tempfile.TemporaryDirectory(prefix="chdb-") as path:
        s = session.Session(path)
        try:
            version = answer(s, "SELECT version()").strip()
            if sys.argv[1] == "--version":
                print(version)
                return
            with open(sys.argv[1]) as f:
                statements = json.load(f)
            if not run(s, version, statements):
                sys.exit(1)
            print(f"{len(statements)} statements ran on ClickHouse {version} (chdb-core {chdb.__version__})")
        finally:
            s.close()


if __name__ == "__main__":
    main()
