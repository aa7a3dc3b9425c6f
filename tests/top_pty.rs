// SPDX-License-Identifier: GPL-2.0
//! `scx_llmos top` in a pseudo-terminal: tmux runs it against a stats socket
//! served here with canned data, and the test reads the screen as a user
//! would, presses keys, and checks that `q` leaves the terminal as it was.
//! Needs tmux (Debian package tmux; tests/vm/setup.sh installs it) and root,
//! as `top` does.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::scratch_dir;
use scx_stats::prelude::*;
use serde_json::{json, Value};

mod common;

/// The canned threads: name, tid, and their growth per poll of CPU time,
/// runs and migrations; each sort key puts them in another order.
const THREADS: [(&str, u64, u64, u64, u64); 3] = [
    ("idle-napper", 101, 5_000_000, 100, 2),
    ("spin-hog", 102, 250_000_000, 5, 0),
    ("wanderer", 103, 100_000_000, 50, 30),
];

/// The policy the canned `top` target reports.
const POLICY: &str = "affinity";

/// How often `top` polls here: two polls give rates in a second.
const INTERVAL: &str = "0.5";

/// How long the screen may take to show what a step expects.
const PATIENCE: Duration = Duration::from_secs(10);

/// The `top` target after `polls` polls, every field as scx_llmos serves it.
fn metrics(polls: u64) -> Value {
    json!({
        "policy": POLICY,
        "tunables": {
            "slice_us": 20000, "mlfq_levels": 4, "mlfq_slices_us": [1000, 2000, 4000, 8000],
            "boost_ms": 1000, "prio_aging_ms": 10, "priority_inheritance": 1,
        },
        "idle_dispatches": 300 * polls, "kthread_dispatches": 10 * polls,
        "pinned_dispatches": 0, "shared_dispatches": 90 * polls, "steals": 4 * polls,
        "slice_refills": 7 * polls, "preemptions": 3 * polls, "boosts": polls,
        "boost_ns": 2000 * polls, "cpu_queued": 0, "policy_switches": 0, "carried_over": 0,
        "llc_migrations": 2 * polls, "pushed_offline": 0,
        "level_runs": [40 * polls, 20 * polls, 10 * polls, 5 * polls],
    })
}

/// The `threads` target after `polls` polls: each counter grows at its rate.
fn threads(polls: u64) -> Value {
    let rows: Vec<Value> = THREADS
        .iter()
        .enumerate()
        .map(|(level, &(comm, tid, runtime_ns, runs, migrations))| {
            json!({
                "tid": tid, "tgid": 100, "comm": comm, "level": level, "priority": 20,
                "group": -1, "cpu": 0, "runtime_ns": runtime_ns * polls,
                "wait_ns": 1_000_000 * polls, "runs": runs * polls, "voluntary": 0,
                "involuntary": 0, "migrations": migrations * polls, "demotions": 0, "boosts": 0,
            })
        })
        .collect();
    // Read at the polls' own pace, as the scheduler would.
    json!({ "threads": rows, "read_at_ns": polls * 500_000_000 })
}

/// A stats server on `socket` that answers as a running scx_llmos whose
/// counters grow by the same amounts between any two polls.
fn serve(socket: &Path) -> StatsServer<(), ()> {
    let answer = |target: fn(u64) -> Value| {
        let mut polls = 0;
        let read: Box<dyn StatsReaderSend<(), ()>> = Box::new(move |_args, _channels| {
            polls += 1;
            Ok(target(polls))
        });
        read
    };
    let data = StatsServerData::new()
        .add_stats("top", answer(metrics))
        .add_stats("threads", answer(threads));
    StatsServer::new(data).set_path(socket).launch().unwrap()
}

/// A tmux server of this test's own (on `socket`, without the user's
/// config), killed on drop, whatever the test's outcome.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> Output {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux must be installed to test `top` in a terminal (Debian package tmux)");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The pane's text: its scrollback, then its screen. tmux's note that
    /// the pane is dead scrolls the screen, and may scroll the last words
    /// of the shell off it.
    fn screen(&self) -> String {
        let capture = self.run(&["capture-pane", "-p", "-S", "-", "-t", "top"]);
        String::from_utf8(capture.stdout).unwrap()
    }

    /// Waits until the screen shows what `step` expects; fails with the
    /// screen if it does not within `PATIENCE`.
    fn wait_for(&self, step: &str, shown: impl Fn(&str) -> bool) -> String {
        wait_until(step, || {
            let screen = self.screen();
            if shown(&screen) {
                Ok(screen)
            } else {
                Err(screen)
            }
        })
    }

    /// Whether the pane's command has exited.
    fn pane_dead(&self) -> bool {
        let out = self.run(&["display-message", "-p", "-t", "top", "#{pane_dead}"]);
        out.stdout == b"1\n"
    }
}

/// Polls `probe` until it succeeds, for at most `PATIENCE`; fails naming
/// `step` and what the probe saw last.
fn wait_until<T>(step: &str, probe: impl Fn() -> Result<T, String>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match probe() {
            Ok(found) => return found,
            Err(seen) => assert!(
                Instant::now() < deadline,
                "after {PATIENCE:?}, no {step}:\n{seen}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

/// The canned threads in the order their rows appear on `screen`.
fn row_order(screen: &str) -> Vec<&'static str> {
    screen
        .lines()
        .filter_map(|line| THREADS.iter().find(|t| line.contains(t.0)).map(|t| t.0))
        .collect()
}

/// `scx_llmos top` in a tmux pane of its own, against canned stats served
/// on a socket in `dir`. After `top`, the pane's shell tells how it exited
/// and whether the terminal is cooked again (line editing and echo on); the
/// pane stays to be read after its command ends.
fn start_top(dir: &Path) -> (Tmux, StatsServer<(), ()>) {
    let stats_socket = dir.join("stats");
    let server = serve(&stats_socket);
    let tmux = Tmux {
        socket: dir.join("tmux"),
    };
    let command = format!(
        "'{}' top --stats-socket '{}' --interval {INTERVAL}; \
         echo \"top exited $?, terminal $(stty -a | tr ' ;' '\\n\\n' | grep -xE -- '-?(icanon|echo)' | paste -sd' ')\"",
        env!("CARGO_BIN_EXE_scx_llmos"),
        stats_socket.display()
    );
    tmux.run(&[
        "start-server",
        ";",
        "set-option",
        "-g",
        "remain-on-exit",
        "on",
        ";",
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "160",
        "-y",
        "40",
        &command,
    ]);
    (tmux, server)
}

/// Waits for the pane's command to end; its screen then.
fn screen_after_exit(tmux: &Tmux) -> String {
    wait_until("end of the pane's command", || {
        if tmux.pane_dead() {
            Ok(())
        } else {
            Err(tmux.screen())
        }
    });
    tmux.screen()
}

#[test]
fn top_draws_sorts_and_quits_in_a_terminal() {
    let dir = scratch_dir("top-pty");
    let (tmux, server) = start_top(&dir);

    tmux.wait_for("policy and threads", |screen| {
        screen.contains(&format!("policy {POLICY}")) && screen.contains("spin-hog")
    });
    // The first poll has no rates yet; from the second, most CPU first.
    let by_cpu = ["spin-hog", "wanderer", "idle-napper"];
    tmux.wait_for("threads by CPU %", |screen| {
        screen.contains("sorted by CPU%") && row_order(screen) == by_cpu
    });

    tmux.run(&["send-keys", "-t", "top", "r"]);
    let by_runs = ["idle-napper", "wanderer", "spin-hog"];
    tmux.wait_for("threads by runs/s", |screen| {
        screen.contains("sorted by RUNS/s") && row_order(screen) == by_runs
    });
    tmux.run(&["send-keys", "-t", "top", "t"]);
    let by_tid = ["idle-napper", "spin-hog", "wanderer"];
    tmux.wait_for("threads by tid", |screen| {
        screen.contains("sorted by TID") && row_order(screen) == by_tid
    });

    tmux.run(&["send-keys", "-t", "top", "q"]);
    let screen = screen_after_exit(&tmux);
    assert!(
        screen.contains("top exited 0, terminal icanon echo"),
        "top did not exit cleanly or left the terminal raw:\n{screen}"
    );
    // Off the alternate screen: nothing of top's view is left.
    assert!(!screen.contains("sorted by"), "{screen}");
    drop((tmux, server));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// SIGTERM (a `kill`, a closed SSH session's SIGHUP alike) ends top as q
/// does: the terminal is cooked again, not left raw on the alternate screen.
#[test]
fn top_gives_the_terminal_back_on_sigterm() {
    let dir = scratch_dir("top-sigterm");
    let (tmux, server) = start_top(&dir);
    tmux.wait_for("policy", |screen| {
        screen.contains(&format!("policy {POLICY}"))
    });
    let pattern = format!("top --stats-socket {}", dir.join("stats").display());
    let killed = Command::new("pkill")
        .args(["-TERM", "-f", &pattern])
        .status()
        .expect("pkill runs");
    assert!(killed.success(), "no process matched {pattern}");
    let screen = screen_after_exit(&tmux);
    assert!(
        screen.contains("top exited 0, terminal icanon echo"),
        "after SIGTERM top did not exit cleanly or left the terminal raw:\n{screen}"
    );
    drop((tmux, server));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn top_without_a_scheduler_is_one_line_and_leaves_the_terminal_alone() {
    let dir = scratch_dir("top-no-scheduler");
    let socket = dir.join("stats");
    let out = Command::new(env!("CARGO_BIN_EXE_scx_llmos"))
        .arg("top")
        .arg("--stats-socket")
        .arg(&socket)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(1));
    // Not a byte on stdout: no alternate screen, no escape sequence.
    assert!(out.stdout.is_empty(), "{:?}", out.stdout);
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!(
            "scx_llmos: error: cannot reach scx_llmos's statistics at {} (is it running?): \
             No such file or directory (os error 2)\n",
            socket.display()
        )
    );
}
