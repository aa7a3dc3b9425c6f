"""Cycles the running scx_llmos through every policy over its control socket.

usage: switch-driver.py SOCKET SECONDS LOG

One request every 100 ms (after the previous reply), from one long-lived
process: spawning `scx_llmos ctl` each time would measure process start-up
under emulation, not switching. Prints "<ok> <failed> <elapsed ms>".
"""
import socket
import sys
import time

POLICIES = ["mlfq", "vtime", "prio", "affinity", "fifo", "rr", "edf", "rms"]

path, seconds, log_path = sys.argv[1], float(sys.argv[2]), sys.argv[3]
ok = failed = 0
start = time.monotonic()
with open(log_path, "w") as log:
    while time.monotonic() - start < seconds:
        policy = POLICIES[(ok + failed) % len(POLICIES)]
        with socket.socket(socket.AF_UNIX) as conn:
            conn.connect(path)
            conn.sendall(f"policy {policy}\n".encode())
            reply = conn.makefile().read().strip()
        log.write(reply + "\n")
        if reply.startswith(f"ok: policy {policy}"):
            ok += 1
        else:
            failed += 1
        time.sleep(0.1)
print(ok, failed, int((time.monotonic() - start) * 1000))
