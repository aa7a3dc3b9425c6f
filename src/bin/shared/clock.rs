// SPDX-License-Identifier: GPL-2.0
//! Clocks and absolute sleeps, shared by the measuring tools in src/bin
//! (llmos-probe, llmos-periodic) with `#[path]`: each is a binary of its own.

pub const NSEC_PER_SEC: u64 = 1_000_000_000;

/// @clock's time in ns.
pub fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write to.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * NSEC_PER_SEC + ts.tv_nsec as u64
}

/// CLOCK_MONOTONIC in ns.
pub fn now_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// Sleeps until @deadline on CLOCK_MONOTONIC, through signals.
pub fn sleep_until_ns(deadline: u64) {
    let ts = libc::timespec {
        tv_sec: (deadline / NSEC_PER_SEC) as libc::time_t,
        tv_nsec: (deadline % NSEC_PER_SEC) as libc::c_long,
    };
    // SAFETY: ts is a valid timespec; a null remainder is allowed with TIMER_ABSTIME.
    while unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &ts,
            std::ptr::null_mut(),
        )
    } == libc::EINTR
    {}
}
