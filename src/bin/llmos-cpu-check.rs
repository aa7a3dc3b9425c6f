// SPDX-License-Identifier: GPL-2.0
//! llmos-cpu-check: checks that the CPU the tests run on, usually an emulated
//! one, keeps RFLAGS right across `cmpxchg16b`.
//!
//! QEMU before 8.0 does not under TCG: its cmpxchg16b helper computes the
//! flags from a stale lazy-flags state, so right after an `add` at the start
//! of a translation block they come out as the add's operand. In a guest
//! kernel, SLUB's per-CPU fast path (`this_cpu_cmpxchg16b`) then leaves bits
//! such as VM (17) set in RFLAGS, the next interrupt raises #GP twice, and
//! the guest dies of a double fault in `kmem_cache_alloc` or `__kmalloc`.
//! tests/vm/setup.sh installs a newer QEMU; the portability test runs this
//! first on every kernel, so that a guest which would crash at random fails
//! at once instead.
//!
//! Prints one line and exits 0 when the flags are right or the CPU has no
//! cmpxchg16b, 1 when they are wrong.

use std::process::ExitCode;

/// The arithmetic flags, bit 1 (always set), IF and DF: what RFLAGS may hold
/// after `popfq` of 0x202 and a cmpxchg16b.
const SANE_FLAGS: u64 = 0x1 | 0x2 | 0x4 | 0x10 | 0x40 | 0x80 | 0x200 | 0x400 | 0x800;
const ZF: u64 = 0x40;

#[cfg(target_arch = "x86_64")]
#[repr(align(16))]
struct Pair([u64; 2]);

/// RFLAGS after a cmpxchg16b of {1, 2} against {expect_lo, 2}, preceded at
/// the start of a translation block by an add of @addend.
#[cfg(target_arch = "x86_64")]
fn flags_after_cmpxchg16b(expect_lo: u64, addend: u64) -> u64 {
    let mut pair = Pair([1, 2]);
    let flags: u64;
    // SAFETY: cmpxchg16b reads and may write the 16-byte aligned @pair; rbx
    // is saved in r9 and restored; the stack is used only for pushes that
    // are popped before the block ends.
    unsafe {
        std::arch::asm!(
            "push 0x202",
            "popfq",
            // A jump ends the translation block: the add starts the next one.
            "jmp 2f",
            "2:",
            "add r8, rsi",
            "mov r9, rbx",
            "mov rbx, 1",
            "mov rcx, 2",
            "cmpxchg16b xmmword ptr [rdi]",
            "pushfq",
            "pop r10",
            "mov rbx, r9",
            // Fixed registers: a `reg` operand may be given rbx, which the
            // exchange overwrites.
            in("rdi") pair.0.as_mut_ptr(),
            in("rsi") addend,
            inout("r8") 0u64 => _,
            out("r9") _,
            out("r10") flags,
            inout("rax") expect_lo => _,
            inout("rdx") 2u64 => _,
            out("rcx") _,
        );
    }
    flags
}

#[cfg(not(target_arch = "x86_64"))]
fn main() -> ExitCode {
    println!("not x86_64: nothing to check");
    ExitCode::SUCCESS
}

#[cfg(target_arch = "x86_64")]
fn main() -> ExitCode {
    if !std::arch::is_x86_feature_detected!("cmpxchg16b") {
        println!("no cmpxchg16b: the kernel uses its fallback");
        return ExitCode::SUCCESS;
    }
    let mut wrong = 0;
    let mut example = String::new();
    const PROBES: u64 = 1000;
    for i in 0..PROBES {
        let addend = 0x74000 + i;
        let failed = flags_after_cmpxchg16b(7, addend);
        let succeeded = flags_after_cmpxchg16b(1, addend);
        let right = failed & !SANE_FLAGS == 0
            && succeeded & !SANE_FLAGS == 0
            && failed & ZF == 0
            && succeeded & ZF != 0;
        if !right {
            wrong += 1;
            if example.is_empty() {
                example = format!(" (e.g. {failed:#x} after a failed exchange, {succeeded:#x} after one that succeeded)");
            }
        }
    }
    println!("cmpxchg16b: RFLAGS wrong after {wrong} of {PROBES} probes{example}");
    if wrong == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
