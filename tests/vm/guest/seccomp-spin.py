#!/usr/bin/env python3
"""A CPU hog that spends most of its time with migration disabled.

It installs a stack of long seccomp filters and then calls getppid() in a
loop: the kernel runs seccomp filters between migrate_disable() and
migrate_enable(), so most ticks find it preempted there. The kernel aborts a
sched_ext scheduler that moves such a task to another CPU.
  usage: seccomp-spin.py   (runs until killed; the name it was started by
  becomes its comm, so config rules can match it)
"""
import ctypes
import os
import struct

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
BPF_LD_W_ABS = 0x20
BPF_RET_K = 0x06
SECCOMP_RET_ALLOW = 0x7FFF0000
# The kernel's limits: 4096 instructions per filter (BPF_MAXINSNS), and
# 32768 per syscall over the stack, each filter counting 4 more.
FILTER_LEN = 4096
FILTERS = 7


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def main():
    libc = ctypes.CDLL(None, use_errno=True)
    # Load the syscall number again and again, then allow the call.
    insns = struct.pack("<HBBI", BPF_LD_W_ABS, 0, 0, 0) * (FILTER_LEN - 1)
    insns += struct.pack("<HBBI", BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW)
    buf = ctypes.create_string_buffer(insns, len(insns))
    prog = SockFprog(FILTER_LEN, ctypes.cast(buf, ctypes.c_void_p))
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    for _ in range(FILTERS):
        if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")
    while True:
        os.getppid()


if __name__ == "__main__":
    main()
