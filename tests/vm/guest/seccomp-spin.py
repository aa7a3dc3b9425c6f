#!/usr/bin/env python3
"""A CPU hog that spends most of its time with migration disabled.

The kernel runs a seccomp filter, as any BPF program, between
migrate_disable() and migrate_enable(). This installs seven filters of 4096
instructions that read a syscall argument (so that the kernel cannot cache
their verdict) and then calls getppid() for ever: with full preemption, the
thread is preempted inside them at most ticks. Browsers and sandboxed
services run such filters at every syscall.
"""
import ctypes
import os

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
BPF_LD_W_ABS = 0x20
BPF_RET_K = 0x06
SECCOMP_RET_ALLOW = 0x7FFF0000
ARG0_OFFSET = 16
MAX_FILTER_LEN = 4096
# The kernel refuses filters whose instructions add up to more than 32768
# (each one counted with 4 more).
FILTERS = 7


class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte),
                ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]


def main():
    libc = ctypes.CDLL(None, use_errno=True)
    loads = [SockFilter(BPF_LD_W_ABS, 0, 0, ARG0_OFFSET)] * (MAX_FILTER_LEN - 1)
    insns = (SockFilter * MAX_FILTER_LEN)(*loads, SockFilter(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    prog = SockFprog(MAX_FILTER_LEN, insns)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0):
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    for _ in range(FILTERS):
        if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0):
            raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP")
    while True:
        os.getppid()


main()
