#!/usr/bin/env python3
"""A CPU hog that wakes a reader through a pipe after every 1 ms of spinning.

usage: hog-wakes.py SECS [--no-reader]; prints the number of writes.
The reader sleeps between them: each write wakes it. With --no-reader the
writes go to /dev/null: the same hog, waking nobody.
"""
import os
import sys
import time

secs = float(sys.argv[1])
if "--no-reader" in sys.argv:
    w = os.open("/dev/null", os.O_WRONLY)
    reader = None
else:
    r, w = os.pipe()
    reader = os.fork()
    if reader == 0:
        os.close(w)
        while os.read(r, 1):
            pass
        os._exit(0)
    os.close(r)
writes = 0
end = time.monotonic() + secs
while time.monotonic() < end:
    spin_until = time.perf_counter() + 0.001
    while time.perf_counter() < spin_until:
        pass
    os.write(w, b"x")
    writes += 1
os.close(w)
if reader:
    os.waitpid(reader, 0)
print(writes)
