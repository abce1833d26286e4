#!/usr/bin/env python3
"""Run the workspace's test binaries several at a time: what `cargo test --workspace
--no-fail-fast` does, but with test binaries running side by side instead of one after another.

Most of the suite's time is spent waiting (on pcscd and the virtual chips, on PostgreSQL, on
child processes), and `cargo test` runs one binary at a time, so the few long PC/SC binaries
leave the two cores mostly idle. (cargo-nextest could schedule this too; it is not packaged for
Debian 12, and the lanes below need no extra tool.)

`--alongside CMD` starts the shell command CMD once the test build is done, at the lowest CPU
and I/O priority (nice 19, ionice idle), so that CPU-bound work (CI: the fuzz build and the
bounded fuzz runs) uses the cores the waiting tests leave idle without taking time from them.
Its output goes to a log that is printed when it ends; its failure fails the run.

Each binary runs as cargo runs it: through the target runner (scripts/cargo-runner.sh, a
private SoftHSM2 configuration per process), in its package's directory, with its own
`--test-threads` default. The binaries that use the virtual card readers (their source, or their
package's tests/common, leases a testrig slot) run one at a time in a lane of their own, as
under `cargo test`: pcscd, vpcd and OpenSC's reader enumeration are shared by every process, and
three PC/SC binaries at once on 2 cores made OpenSC's C_GetSlotList and pcscd's removal
reports fail under the load. The other binaries share the remaining lanes. The longest binaries
start first in each lane: the durations of the last run on this machine
(target/test-durations.json), else the list below. Every binary runs even when one fails; a
failed binary's whole output is printed; the exit status is 1 when any failed. Doc-tests run
afterwards through cargo.

Usage: scripts/run-tests.py [--jobs N] [--alongside CMD]   (IDSTATION_TEST_JOBS, default 3)
"""
import argparse
import concurrent.futures as cf
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / "scripts" / "cargo-runner.sh"
# The slowest binaries on a 2-core machine (2026-12-03), for a machine with no durations yet.
SLOW_FIRST = [
    "station/card_services",
    "station/issuance_e2e",
    "personalization/pcsc_e2e",
    "station/tear",
    "central/relying_parties",
    "central/egov_publisher",
    "station/centre_issuance_e2e",
]
# What marks a test source as a user of the virtual card readers.
PCSC = re.compile(r"Slot::lease|Slot::try_lease|ensure_pcscd|testrig::Slot")
RESULT = re.compile(r"test result: (\w+)\. (\d+) passed; (\d+) failed; (\d+) ignored")


def target_dir():
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )
    return Path(json.loads(meta.stdout)["target_directory"])


def build():
    """`cargo test --no-run`; the test executables with their package and target names."""
    proc = subprocess.Popen(
        ["cargo", "test", "--workspace", "--no-run",
         "--message-format=json-render-diagnostics"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    found = []
    for line in proc.stdout:
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
            continue
        if not msg["profile"]["test"]:
            continue
        pkg_dir = Path(msg["manifest_path"]).parent
        kind = msg["target"]["kind"][0]
        name = msg["target"]["name"] if kind != "lib" else "lib"
        label = f"{pkg_dir.name}/{name}" if kind != "bin" else f"{pkg_dir.name}/bin-{name}"
        pcsc = kind == "test" and uses_readers(Path(msg["target"]["src_path"]))
        found.append((label, msg["executable"], pkg_dir, pcsc))
    if proc.wait() != 0:
        sys.exit(f"== FAILED: cargo test --no-run exited {proc.returncode}")
    return found


def uses_readers(src):
    """Whether the integration test at `src`, or its package's tests/common, leases a reader."""
    text = src.read_text(errors="replace")
    if PCSC.search(text):
        return True
    common = src.parent / "common"
    if re.search(r"^\s*mod common;", text, re.M) and common.is_dir():
        return any(PCSC.search(f.read_text(errors="replace")) for f in common.rglob("*.rs"))
    return False


def order(tests, durations):
    def weight(t):
        label = t[0]
        if label in durations:
            return durations[label]
        if label in SLOW_FIRST:
            return 1000 - SLOW_FIRST.index(label)
        return 0
    return sorted(tests, key=weight, reverse=True)


def run_one(test, print_lock):
    label, exe, pkg_dir, _ = test
    start = time.monotonic()
    proc = subprocess.run(
        [str(RUNNER), exe], cwd=pkg_dir, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, errors="replace",
    )
    took = time.monotonic() - start
    counts = [0, 0, 0]
    for m in RESULT.finditer(proc.stdout):
        for i in range(3):
            counts[i] += int(m.group(i + 2))
    ok = proc.returncode == 0
    with print_lock:
        word = "ok  " if ok else "FAIL"
        print(f"== {word} {took:7.1f}s {label}: {counts[0]} passed, {counts[1]} failed, "
              f"{counts[2]} ignored", flush=True)
        if not ok:
            print(f"---- output of {label} ({exe}), exit {proc.returncode}")
            print(proc.stdout, flush=True)
    return label, ok, took, counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("IDSTATION_TEST_JOBS", "3")))
    ap.add_argument("--alongside", metavar="CMD",
                    help="a shell command to run at idle priority once the tests are built")
    args = ap.parse_args()
    if args.jobs < 1:
        sys.exit("--jobs: must be at least 1")
    target = target_dir()
    durations_file = target / "test-durations.json"
    try:
        durations = json.loads(durations_file.read_text())
    except (OSError, ValueError):
        durations = {}
    tests = order(build(), durations)
    alongside = start_alongside(args.alongside, target / "alongside.log")
    readers = [t for t in tests if t[3]]
    others = [t for t in tests if not t[3]]
    lanes = max(args.jobs - 1, 1)
    print(f"== running {len(tests)} test binaries: the {len(readers)} that use card readers one "
          f"at a time, the other {len(others)} {lanes} at a time beside them", flush=True)
    lock = threading.Lock()
    start = time.monotonic()
    with cf.ThreadPoolExecutor(max_workers=1) as serial, \
            cf.ThreadPoolExecutor(max_workers=lanes) as pool:
        card = [serial.submit(run_one, t, lock) for t in readers]
        rest = [pool.submit(run_one, t, lock) for t in others]
        results = [f.result() for f in card + rest]
    failed = [r[0] for r in results if not r[1]]
    totals = [sum(r[3][i] for r in results) for i in range(3)]
    durations.update({r[0]: round(r[2], 1) for r in results})
    durations_file.write_text(json.dumps(durations, indent=1, sort_keys=True))
    print(f"== test binaries: {totals[0]} passed, {totals[1]} failed, {totals[2]} ignored "
          f"in {time.monotonic() - start:.0f}s", flush=True)
    doc = subprocess.run(["cargo", "test", "--workspace", "--doc"], cwd=ROOT)
    side_ok = finish_alongside(alongside, start)
    if failed:
        print("== FAILED test binaries: " + ", ".join(failed), file=sys.stderr)
    if doc.returncode != 0:
        print(f"== FAILED: doc-tests exited {doc.returncode}", file=sys.stderr)
    return 1 if failed or doc.returncode != 0 or not side_ok else 0


def start_alongside(cmd, log_path):
    """Start `cmd` (a shell command) at idle priority, its output in `log_path`; None if no cmd."""
    if not cmd:
        return None
    log = open(log_path, "w+")
    print(f"== alongside the tests, at idle priority: {cmd} (log {log.name})", flush=True)
    proc = subprocess.Popen(
        ["nice", "-n", "19", "ionice", "-c", "3", "bash", "-c", cmd],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True,
    )
    return cmd, proc, log, time.monotonic()


def finish_alongside(alongside, tests_started):
    """Wait for the command started by `start_alongside`, print its log; whether it passed."""
    if alongside is None:
        return True
    cmd, proc, log, started = alongside
    waited = time.monotonic()
    rc = proc.wait()
    now = time.monotonic()
    log.seek(0)
    print(f"== output of the command alongside ({cmd}):", flush=True)
    sys.stdout.write(log.read())
    print(f"== alongside: exit {rc} after {now - started:.0f}s; the tests took "
          f"{waited - tests_started:.0f}s, it ended {now - waited:.0f}s after them", flush=True)
    if rc != 0:
        print(f"== FAILED: {cmd} exited {rc}", file=sys.stderr)
    return rc == 0


if __name__ == "__main__":
    sys.exit(main())
