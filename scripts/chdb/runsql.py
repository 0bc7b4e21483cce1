"""Runs SQL statements, in order, on chdb's in-process ClickHouse engine.

    runsql.py --version   print the engine's version (SELECT version())
    runsql.py FILE        run the statements FILE lists

FILE is a JSON list of statements, each {"name", "sql"} and optionally
"expect" (the answer's lines, TabSeparated, compared in any order),
"until" (run again, for up to 60 s, until the answer is this text) or
"fails_with" (the statement must fail, with one of these error codes), and
"settings" (set for that statement alone, as a client sends them). The
engine's data lives in a temporary folder (in /dev/shm where it can),
removed at the end. The first
statement that fails or answers otherwise ends the run: its name, its SQL
and the engine's error are printed and the exit status is 1.
sink/chwriter/currentengine_test.go writes FILE from the sink's own
statement builders.
"""

import json
import os
import re
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


def setting(s, name):
    return answer(s, f"SELECT value FROM system.settings WHERE name = '{name}'").strip()


def literal(value):
    text = str(value)
    return text if text.isdigit() else "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def lines(text):
    return sorted(line for line in text.split("\n") if line != "")


def run(s, version, statements):
    for i, st in enumerate(statements, 1):
        where = f"statement {i} of {len(statements)} ({st['name']}) on ClickHouse {version}"
        start = time.monotonic()
        saved = {name: setting(s, name) for name in st.get("settings", {})}
        try:
            for name, value in st.get("settings", {}).items():
                s.query(f"SET {name} = {literal(value)}")
            got = answer(s, st["sql"])
            if st.get("until") is not None:
                deadline = time.monotonic() + 60
                while got.strip() != st["until"] and time.monotonic() < deadline:
                    time.sleep(0.05)
                    got = answer(s, st["sql"])
        except Exception as e:  # chdb raises ChdbError, RuntimeError by version
            code = re.search(r"Code: (\d+)\.", str(e))
            if st.get("fails_with") and code and int(code.group(1)) in st["fails_with"]:
                continue
            print(f"FAIL {where}: {e}\n--- SQL\n{st['sql']}", file=sys.stderr)
            return False
        finally:
            for name, value in saved.items():
                s.query(f"SET {name} = {literal(value)}")
            took = time.monotonic() - start
            if took > 0.5:
                print(f"slow: {where} took {took:.1f} s")
        if st.get("fails_with"):
            print(f"FAIL {where}: succeeded, want it to fail with one of the codes {st['fails_with']}\n--- SQL\n{st['sql']}", file=sys.stderr)
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
    # In memory where there is a tmpfs: the split check writes 100 parts.
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="chdb-", dir=base) as path:
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
