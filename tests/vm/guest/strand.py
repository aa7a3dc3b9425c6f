#!/usr/bin/env python3
"""Strands a CPU hog on CPU 0 with CPU 1 alone allowed.

usage: strand.py PID SECONDS

Flips PID's cpumask between CPU 0 and CPU 1 while the caller takes CPU 1
offline. A flip to CPU 1 that the kernel accepted (CPU 1 was active) but
could not carry out (CPU 1 had left the active mask by the time the
stopper moved the task) leaves the task on CPU 0, allowed only CPU 1: then
it prints "stranded FLIPS" and exits 0. Otherwise, after SECONDS, "not
stranded FLIPS" and exit 1. A flip to CPU 1 refused (CPU 1 inactive) is
skipped.

It runs on CPU 1 itself. Under single-threaded TCG the vCPUs take turns,
switching when one idles: asked from CPU 2 or 3, the stopper on CPU 0 moved
the hog before CPU 1's hotplug thread ran (1 strand in 136 tries; from CPU
0: 0 in 75; where the kernel put it: 2 in 124, and none in 40 in a CI run);
asked from CPU 1, the flip waits there and CPU 1's hotplug thread takes the
CPU first: 10 strands in 33 tries, 8 of them in the first (7.2). Right after
CPU 1 comes back, the cpuset may not list it yet (EINVAL): it retries.
Once on CPU 1 it prints "flipping", for the caller to start the offline
then: a CI run whose caller started it a fixed 0.5 s after python found no
strand in 60 tries (a start slower than that would leave no flip in
flight; it was not measured).
"""
import os
import sys
import time


def task_cpu(pid):
    """The CPU the task is on: field 39 of /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[36])


def main():
    pid, secs = int(sys.argv[1]), float(sys.argv[2])
    end, flips = time.monotonic() + secs, 0
    while True:
        try:
            os.sched_setaffinity(0, {1})
            break
        except OSError:
            if time.monotonic() >= end:
                raise
            time.sleep(0.01)
    print("flipping", flush=True)
    while time.monotonic() < end:
        os.sched_setaffinity(pid, {0})
        try:
            os.sched_setaffinity(pid, {1})
        except OSError:
            continue
        flips += 1
        if task_cpu(pid) == 0:
            print(f"stranded {flips}", flush=True)
            return 0
    print(f"not stranded {flips}", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
