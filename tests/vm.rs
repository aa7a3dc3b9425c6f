// SPDX-License-Identifier: GPL-2.0
//! Boots a sched_ext kernel in a VM (tests/vm/run.sh) and proves scx_llmos's
//! behaviour there. One boot runs many checks; every expected check must
//! report "ok", so a check that silently did not run fails the test.
//!
//! The kernels come from tests/vm/kernels.sh: SCX_LLMOS_KERNEL, else every
//! kernel of the matrix (the portability test boots each, the behaviour
//! tests the newest), else the running kernel. If a VM cannot start, the
//! test fails: it never passes by skipping.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// One test's VMs at a time: two emulated guests on two host cores would
/// disturb each other's timing. The hotplug test, whose boots check what the
/// scheduler does rather than how fast, runs them two at a time (run_in_vms).
static ONE_VM: Mutex<()> = Mutex::new(());

/// What tests/vm/guest/basic.sh must report as passed on every kernel.
const BASIC_CHECKS: &[&str] = &[
    "vm_has_sched_ext",
    "cpu_keeps_flags",
    "unknown_policy",
    "slice_too_small",
    "slice_too_large",
    "stats_out_of_range",
    "not_root",
    "no_sched_ext",
    "bad_config",
    "attach",
    "ops_name",
    "verifier_stats",
    "enabled_in_dmesg",
    "another_scheduler",
    "kworker_preempts_hog",
    "remote_wakeups_queued",
    "stress_completed",
    "stayed_attached",
    "pinned_cpu0_stays",
    "pinned_cpu1_stays",
    "ctl_every_policy",
    "threads_lists_rows",
    "hotplug_no_restart",
    "stats_reported",
    "mlfq_counters",
    "sigint_detaches",
    "reattach",
    "sigterm_detaches",
    "sigkill_falls_back",
    "no_stall",
    "clean_exits",
    "sigstop_keeps_scheduling",
    "restart_on_request",
    "error_falls_back",
    "error_dump_says_where",
    "faults_no_stall",
];

/// The kernel images tests/vm/kernels.sh lists, oldest first; empty when the
/// VM boots the running kernel.
fn kernels() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(root.join("tests/vm/kernels.sh"))
        .output()
        .expect("failed to start tests/vm/kernels.sh");
    assert!(
        output.status.success(),
        "tests/vm/kernels.sh: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(PathBuf::from)
        .collect()
}

/// The kernel's release, from its folder's name (the matrix names folders
/// after the release).
fn release(kernel: &Path) -> String {
    kernel.parent().and_then(Path::file_name).map_or_else(
        || kernel.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    )
}

/// Runs a guest script in a fresh VM and returns its output, after printing
/// it so the test log shows what happened in the guest. @vm_env sets
/// tests/vm/run.sh's variables: VM_CPUS, VM_QEMU_OPTS, VM_VNG_OPTS,
/// SCX_LLMOS_KERNEL (unset: the newest kernel). The script gets the
/// scheduler binary, the output directory and @script_args.
fn run_in_vm(
    script: &str,
    out: &Path,
    vm_env: &[(&str, &str)],
    script_args: &[&str],
) -> (bool, String) {
    let _one_vm = ONE_VM
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    boot(script, out, vm_env, script_args)
}

/// One boot of a guest script, as run_in_vm takes it.
struct Boot<'a> {
    script: &'a str,
    out: PathBuf,
    vm_env: Vec<(&'a str, &'a str)>,
    script_args: Vec<&'a str>,
}

/// Runs @boots, @at_once at a time (two: one per host core, which a
/// single-threaded TCG guest keeps busy), and returns their results in
/// order. Two only for boots whose checks hold with a neighbour: no latency,
/// CPU share or count of preemptions is compared there with a bound near
/// what it measures. Measured here: a hotplug boot of 6.16 took 195 s
/// beside one of 7.2 and 181 s alone.
fn run_in_vms(boots: &[Boot], at_once: usize) -> Vec<(bool, String)> {
    let _one_vm = ONE_VM
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let queue = Mutex::new(boots.iter().enumerate());
    let results = Mutex::new(vec![None; boots.len()]);
    std::thread::scope(|scope| {
        for _ in 0..at_once {
            scope.spawn(|| loop {
                let Some((i, b)) = queue.lock().unwrap().next() else {
                    break;
                };
                let result = boot(b.script, &b.out, &b.vm_env, &b.script_args);
                results.lock().unwrap()[i] = Some(result);
            });
        }
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.expect("every boot ran"))
        .collect()
}

/// Boots a VM that runs @script (see run_in_vm); the caller holds ONE_VM.
fn boot(script: &str, out: &Path, vm_env: &[(&str, &str)], script_args: &[&str]) -> (bool, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    empty_dir(out);
    let mut command = Command::new(root.join("tests/vm/run.sh"));
    command
        .arg(root.join(script))
        .arg(env!("CARGO_BIN_EXE_scx_llmos"))
        .arg(out)
        .args(script_args)
        .current_dir(root)
        .env("VM_OUT", out)
        .envs(vm_env.iter().copied());
    let started = std::time::Instant::now();
    let output = command.output().expect("failed to start tests/vm/run.sh");
    let mut stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    println!(
        "--- {script} in the VM (exit {:?}) ---",
        output.status.code()
    );
    stdout.push_str(&format!("metric vm_secs {}\n", started.elapsed().as_secs()));
    print!("{stdout}");
    print!("{}", String::from_utf8_lossy(&output.stderr));
    (output.status.success(), stdout)
}

fn out_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// Makes @dir an empty directory. Each boot starts from one: the guest
/// scripts append to their files (hotplug.sh's steps and misses) and stop
/// on a file's presence (checks.sh's watch_progress() on `stop`), so a
/// second run in the same tree read the first run's files and failed.
fn empty_dir(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            panic!("cannot empty {}: {e}", dir.display())
        }
        _ => std::fs::create_dir_all(dir).unwrap(),
    }
}

/// The expected checks that did not report "ok", with the guest's words.
fn missing_or_failed(expected: &[&str], output: &str) -> Vec<String> {
    expected
        .iter()
        .filter(|name| {
            !output
                .lines()
                .any(|l| l.starts_with(&format!("ok {name}:")))
        })
        .map(|name| {
            output
                .lines()
                .find(|l| l.starts_with(&format!("FAIL {name}:")))
                .map_or(format!("{name}: never reported"), str::to_string)
        })
        .collect()
}

/// What went wrong in a guest's output: expected checks that did not report
/// "ok", unlisted checks that failed, and a non-zero exit.
fn guest_problems(success: bool, output: &str, expected: &[&str]) -> Vec<String> {
    let mut problems = missing_or_failed(expected, output);
    let unlisted: Vec<String> = output
        .lines()
        .filter(|l| l.starts_with("FAIL ") && !problems.iter().any(|p| p == l))
        .map(str::to_string)
        .collect();
    problems.extend(unlisted);
    if !success {
        problems.push("the guest script or the VM exited non-zero".into());
    }
    problems
}

/// Runs a guest script in a fresh VM of the newest kernel and fails unless
/// every expected check reported "ok", no other check failed and the guest
/// exited 0. Returns the directory the guest wrote its files to.
fn run_guest_checks(
    script: &str,
    out_name: &str,
    vm_env: &[(&str, &str)],
    script_args: &[&str],
    expected: &[&str],
) -> PathBuf {
    let out = out_dir(out_name);
    let (success, output) = run_in_vm(script, &out, vm_env, script_args);
    let problems = guest_problems(success, &output, expected);
    assert!(
        problems.is_empty(),
        "VM checks failed:\n{}",
        problems.join("\n")
    );
    out
}

/// A "metric NAME VALUE" line's value.
fn metric(output: &str, name: &str) -> Option<String> {
    output.lines().find_map(|l| {
        let rest = l.strip_prefix("metric ")?.strip_prefix(name)?;
        rest.strip_prefix(' ').map(str::to_string)
    })
}

/// A boot of each kernel of @kernels, or of the running kernel (None) when
/// there is no matrix.
fn boots(kernels: &[PathBuf]) -> Vec<Option<&Path>> {
    if kernels.is_empty() {
        vec![None]
    } else {
        kernels.iter().map(|k| Some(k.as_path())).collect()
    }
}

/// @vm_env with SCX_LLMOS_KERNEL set to @kernel, if it is not the running
/// kernel.
fn kernel_env<'a>(
    kernel: Option<&'a Path>,
    vm_env: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut env = vm_env.to_vec();
    if let Some(kernel) = kernel {
        env.push(("SCX_LLMOS_KERNEL", kernel.to_str().unwrap()));
    }
    env
}

fn boot_name(kernel: Option<&Path>) -> String {
    kernel.map_or_else(|| "running kernel".to_string(), release)
}

/// bench/verifier.md: the instructions the verifier walked in all, per kernel.
const VERIFIER_TABLE: &str = "bench/verifier.md";

/// How much more than bench/verifier.md records a kernel's verifier may walk
/// before the portability test calls the BPF program bloated: 20%.
const VERIFIER_GROWTH_PERCENT: u64 = 20;

/// The total recorded for @kernel in a table of `| KERNEL | total | N | ... |`
/// rows, if it has one.
fn recorded_verified_insns(table: &str, kernel: &str) -> Option<u64> {
    table.lines().find_map(|line| {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        match cells.as_slice() {
            ["", k, "total", n, ..] if *k == kernel => n.parse().ok(),
            _ => None,
        }
    })
}

/// A problem if @verified exceeds @recorded by more than
/// VERIFIER_GROWTH_PERCENT; None for a kernel the table does not have.
fn verifier_growth(kernel: &str, verified: u64, recorded: Option<u64>) -> Option<String> {
    let recorded = recorded?;
    (verified * 100 > recorded * (100 + VERIFIER_GROWTH_PERCENT)).then(|| {
        format!(
            "the verifier walked {verified} instructions on {kernel}, {recorded} in {VERIFIER_TABLE}: \
             over {VERIFIER_GROWTH_PERCENT}% more (a program grew; see which in the test's verifier lines, \
             and update the table if the growth is meant)"
        )
    })
}

/// The portability test: tests/vm/guest/basic.sh in one boot of each kernel
/// of the matrix. Every kernel runs even when an earlier one fails, so one
/// report names every kernel that does not pass.
#[test]
fn vm_portability_on_every_kernel() {
    let kernels = kernels();
    let verifier_table = std::fs::read_to_string(VERIFIER_TABLE).unwrap_or_default();
    let mut summary = Vec::new();
    let mut failed = Vec::new();
    let kernels = boots(&kernels);
    let basic_boots: Vec<Boot> = kernels
        .iter()
        .map(|kernel| Boot {
            script: "tests/vm/guest/basic.sh",
            out: out_dir(&format!("vm-basic-{}", boot_name(*kernel))),
            vm_env: kernel_env(*kernel, &[("VM_CPUS", "2")]),
            script_args: vec![],
        })
        .collect();
    // Two at a time: basic.sh compares no latency, share or count with a
    // bound near what it measures. The one check that did,
    // hog_wakeups_do_not_preempt (beside another boot the preemptions the
    // reader caused came to -27..+108 in 8 boots, bound ~130; alone -97..+21
    // in 20), runs in the policies boot, alone.
    let results = run_in_vms(&basic_boots, 2);
    for (kernel, (success, output)) in kernels.into_iter().zip(results) {
        let name = boot_name(kernel);
        let mut problems = guest_problems(success, &output, BASIC_CHECKS);
        let verified = metric(&output, "verified_insns").and_then(|v| v.parse().ok());
        let recorded = recorded_verified_insns(&verifier_table, &name);
        if let Some(verified) = verified {
            problems.extend(verifier_growth(&name, verified, recorded));
        }
        summary.push(format!(
            "{name}: {}, attach {} ms, boot and checks {} s, {} instructions verified ({} recorded)",
            if problems.is_empty() { "pass" } else { "FAIL" },
            metric(&output, "attach_ms").unwrap_or_else(|| "-".into()),
            metric(&output, "vm_secs").unwrap_or_else(|| "-".into()),
            verified.map_or_else(|| "-".into(), |v: u64| v.to_string()),
            recorded.map_or_else(|| "none".into(), |v| v.to_string()),
        ));
        failed.extend(problems.into_iter().map(|p| format!("{name}: {p}")));
    }
    println!("--- portability ---\n{}", summary.join("\n"));
    assert!(
        failed.is_empty(),
        "portability failures:\n{}",
        failed.join("\n")
    );
}

/// What tests/vm/guest/policies.sh must report as passed.
const POLICY_CHECKS: &[&str] = &[
    "config_error_names_line",
    "attach_prio",
    "prio_nice_share",
    "prio_low_progresses",
    "prio_rule_by_comm",
    "prio_rule_by_cgroup",
    "prio_rule_by_uid",
    "ctl_reload_applies",
    "ctl_reload_refuses_mistakes",
    "priority_inheritance_prio",
    "priority_inheritance_mlfq",
    "hog_wakeups_do_not_preempt",
    "switch_to_affinity",
    "affinity_group_cpu_when_free",
    "affinity_group_waits_out_kworkers",
    "affinity_group_spills",
    "affinity_group_in_map",
    "affinity_never_outside_cpumask",
    "rt_hog_others_progress_affinity",
    "rt_hog_others_progress_mlfq",
    "rt_hog_stays_attached",
    "migration_disabled_affinity",
    "migration_disabled_mlfq",
    "cgroup_weight_vtime",
    "cgroup_weight_affinity",
    "cgroup_weight_mlfq",
    "cgroup_weight_follows_a_move",
    "cgroup_rule_follows_a_move",
    "switch_cycle",
    "switch_stays_enabled",
    "switch_every_thread_progresses",
    "switch_stress_completed",
    "switch_settled_in_bpf",
    "ctl_refused_unprivileged",
    "ctl_set_tunable",
    "ctl_set_rejects",
    "threads_waiting",
    "top_in_a_pty",
    "rms_claims_fit_online_cpus",
    "detached",
    "no_stall",
];

#[test]
fn vm_prio_affinity_config_and_live_switching() {
    run_guest_checks(
        "tests/vm/guest/policies.sh",
        "vm-policies",
        &[("VM_CPUS", "2")],
        &[],
        POLICY_CHECKS,
    );
}

/// The policies tests/vm/guest/topology.sh runs against EEVDF in the 2-LLC
/// boot: vtime (vtime-keyed) and prio (FIFO-keyed, preempting), two of the
/// kinds the core tells apart (policy.bpf.h's traits). The other two, mlfq
/// (vtime-keyed, preempting, banks) and affinity (its own placement), run
/// the same checks in the 2-node boot, whose LLCs are also nodes: each
/// policy is about a minute of a boot, and the suite must stay under 45
/// minutes. fifo and rr are FIFO-keyed without preemption, the core's
/// placement: prio's queues and vtime's placement cover them.
const TOPOLOGY_POLICIES: &[&str] = &["vtime", "prio"];

/// What tests/vm/guest/topology.sh must report as passed when it runs
/// @policies: the shape, then for each policy work conservation, hogs
/// stolen over to both LLCs, LLC locality and a clean detach, then the
/// wakeup checks of mlfq and prio, and affinity's own.
fn topology_checks(policies: &[&str]) -> Vec<String> {
    let mut checks: Vec<String> = ["guest_has_two_llcs", "loader_sees_two_llcs", "no_stall"]
        .iter()
        .map(|c| c.to_string())
        .collect();
    for policy in policies {
        for check in [
            "work_conserved",
            "llcs_share_hogs",
            "llc_locality",
            "stayed_attached",
            "detached",
        ] {
            checks.push(format!("{check}_{policy}"));
        }
        match *policy {
            "mlfq" | "prio" => checks.push(format!("wakeup_preempts_in_llc_{policy}")),
            "affinity" => checks.push("affinity_stays_on_cpu".into()),
            _ => {}
        }
    }
    checks
}

/// 4 vCPUs in 2 sockets of 2 cores: the guest sees two L3 caches, 0-1 and
/// 2-3. Single-threaded TCG, whatever the timing: multi-threaded TCG oopsed
/// (int3 in text patching) at the second detach of this boot.
const TWO_LLCS: (&str, &str) = ("VM_QEMU_OPTS", "-smp 4,sockets=2,cores=2,threads=1");

#[test]
fn vm_topology_two_llcs() {
    let checks = topology_checks(TOPOLOGY_POLICIES);
    let expected: Vec<&str> = checks.iter().map(String::as_str).collect();
    let mut args = vec!["eevdf"];
    args.extend(TOPOLOGY_POLICIES);
    run_guest_checks(
        "tests/vm/guest/topology.sh",
        "vm-topology",
        &[("VM_CPUS", "4"), TWO_LLCS],
        &args,
        &expected,
    );
}

/// The same shape with each socket a NUMA node of its own, where stealing
/// across nodes takes a backlog of two (REMOTE_STEAL_MIN_QUEUED): this boot
/// proves that the loader and scheduler take a NUMA machine and that the
/// hogs still spread to the other node, under the two placements there are:
/// the core's (mlfq, the default; vtime and prio, which differ from it in
/// their keys and preemption, take the core's placement in the 2-LLC boot)
/// and affinity's.
#[test]
fn vm_topology_two_numa_nodes() {
    let policies = ["mlfq", "affinity"];
    let mut checks = topology_checks(&policies);
    checks.push("guest_has_two_numa_nodes".into());
    let expected: Vec<&str> = checks.iter().map(String::as_str).collect();
    let mut args = vec!["eevdf"];
    args.extend(policies);
    run_guest_checks(
        "tests/vm/guest/topology.sh",
        "vm-topology-numa",
        &[
            ("VM_CPUS", "4"),
            TWO_LLCS,
            ("VM_VNG_OPTS", "--numa 1G,cpus=0-1 --numa 1G,cpus=2-3"),
        ],
        &args,
        &expected,
    );
}

/// What a machine does to a running scheduler, in a boot of the 2-LLC shape
/// (tests/vm/guest/hotplug.sh) on each of the oldest and the newest kernel
/// of the matrix, whose hotplug paths differ (6.16 asks a CPU that has left
/// the active mask for no dispatch): a start with a CPU offline, which
/// restarts once when it comes online; cycles of CPUs 3, 2 and 1 going
/// offline and back, five of CPU 3 alone with RCU readers in its affinity
/// group, and a "suspend" to CPU 0, under stress, without a restart; then a
/// task stranded in another policy's queue after a switch, found with no
/// further switch. Single-threaded TCG, as every 2-LLC boot.
#[test]
fn vm_hotplug_and_strays() {
    let kernels = kernels();
    let ends: Vec<PathBuf> = match (kernels.first(), kernels.last()) {
        (Some(oldest), Some(newest)) if oldest != newest => vec![oldest.clone(), newest.clone()],
        _ => kernels,
    };
    let kernels = boots(&ends);
    let hotplug_boots: Vec<Boot> = kernels
        .iter()
        .map(|kernel| {
            // Four cycles on each (half mlfq, half affinity): the races
            // that cycling finds were found on the newest (a watchdog stall
            // in 1 of 7 affinity cycles before its fix; the soak test's 75 s
            // cycle CPUs too, about 40 steps), and every step takes the
            // oldest's own path (no dispatch on a CPU leaving the active
            // mask). A cycle is about 12-23 s, the rest of a boot about
            // 150 s; the two boots run side by side.
            Boot {
                script: "tests/vm/guest/hotplug.sh",
                out: out_dir(&format!("vm-hotplug-{}", boot_name(*kernel))),
                vm_env: kernel_env(*kernel, &[("VM_CPUS", "4"), TWO_LLCS]),
                script_args: vec!["4"],
            }
        })
        .collect();
    let mut failed = Vec::new();
    for (kernel, (success, output)) in kernels.iter().zip(run_in_vms(&hotplug_boots, 2)) {
        let problems = guest_problems(success, &output, HOTPLUG_CHECKS);
        failed.extend(
            problems
                .into_iter()
                .map(|p| format!("{}: {p}", boot_name(*kernel))),
        );
    }
    assert!(
        failed.is_empty(),
        "VM checks failed:\n{}",
        failed.join("\n")
    );
}

/// What tests/vm/guest/hotplug.sh must report as passed.
const HOTPLUG_CHECKS: &[&str] = &[
    "attach_with_cpu_offline",
    "cpu_online_restarts_once",
    "hotplug_no_restart",
    "hotplug_pushes_seen",
    "hotplug_ctl_answers",
    "hotplug_loader_steady",
    "hotplug_group_runs_off_its_cpus",
    "hotplug_every_thread_progresses",
    "stranded_hog_goes_home",
    "stray_found",
    "stray_every_thread_progresses",
    "detached",
    "no_stall",
];

/// Everything at once for 75 seconds (tests/vm/guest/soak.sh, whose
/// 10-minute runs are in bench/SOAK.md): the stress recipe, a fork/exit
/// storm, a policy switch every 100 ms (edf's turns with reserved threads),
/// hotplug and a `threads` read every second, on the 2-LLC shape.
#[test]
fn vm_soak() {
    run_guest_checks(
        "tests/vm/guest/soak.sh",
        "vm-soak",
        &[("VM_CPUS", "4"), TWO_LLCS],
        &["75"],
        &[
            "soak_attached",
            "soak_switches",
            "soak_reserved_threads_ran",
            "soak_hotplug",
            "soak_threads_reads",
            "soak_every_hog_progresses",
            "soak_loader_flat",
            "detached",
            "no_stall",
        ],
    );
}

#[test]
fn boot_output_dir_starts_empty() {
    let dir = out_dir("empty-dir-test");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("stop"), "").unwrap();
    empty_dir(&dir);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    std::fs::remove_dir(&dir).unwrap();
    empty_dir(&dir);
    assert!(dir.is_dir());
}

#[test]
fn guest_problems_and_metrics_parse() {
    let output = "ok a: fine\nFAIL x: unlisted\nmetric attach_ms 2050\nmetric attach_ms_max 9\n";
    assert_eq!(
        guest_problems(false, output, &["a", "b"]),
        vec![
            "b: never reported".to_string(),
            "FAIL x: unlisted".to_string(),
            "the guest script or the VM exited non-zero".to_string()
        ]
    );
    assert!(guest_problems(true, output, &["a"]).len() == 1);
    assert_eq!(metric(output, "attach_ms").as_deref(), Some("2050"));
    assert_eq!(metric(output, "attach"), None);
}

#[test]
fn verifier_totals_parse_and_growth_is_judged() {
    let table = "| kernel | program | verified | xlated |\n|---|---|---|---|\n\
                 | 6.16.12+deb13-amd64 | llmos_enqueue | 900 | 4000 |\n\
                 | 6.16.12+deb13-amd64 | total | 1000 | |\n\
                 | 7.2.13+deb14-amd64 | total | 2000 | |\n";
    assert_eq!(
        recorded_verified_insns(table, "6.16.12+deb13-amd64"),
        Some(1000)
    );
    assert_eq!(
        recorded_verified_insns(table, "7.2.13+deb14-amd64"),
        Some(2000)
    );
    assert_eq!(recorded_verified_insns(table, "6.17.13+deb13-amd64"), None);
    assert_eq!(verifier_growth("k", 1200, Some(1000)), None);
    assert!(verifier_growth("k", 1201, Some(1000)).is_some());
    assert_eq!(verifier_growth("k", 5000, None), None);
}

#[test]
fn missing_checks_are_failures() {
    let output = "ok a: fine\nFAIL b: broke\n";
    assert_eq!(
        missing_or_failed(&["a", "b", "c"], output),
        vec!["FAIL b: broke".to_string(), "c: never reported".to_string()]
    );
}

/// The kernel log lines the guest scripts' no_stall checks fail a boot on
/// (tests/vm/guest/checks.sh), from real logs: the scheduler's and the
/// kernel's complaints count, the emulator's clock does not.
#[test]
fn kernel_complaints_skip_the_clocksource_watchdog() {
    let log = "\
[   27.388692] tsc: Marking TSC unstable due to clocksource watchdog
[   27.390001] clocksource: timekeeping watchdog on CPU1: Marking clocksource 'tsc' as unstable because the skew is too large:
[   40.000001] sched_ext: BPF scheduler \"scx_llmos\" disabled (runtime error)
[   40.000002] sched_ext: scx_llmos: runnable task stall (kworker/0:1[12] failed to run for 30.1s)
[   41.000000] watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [hog:99]
[   42.000000] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:
[   43.000000] INFO: task kworker/1:2:77 blocked for more than 120 seconds.
[   43.500000] WARNING: kernel/sched/ext/ext.c:5211 at scx_sched_free_rcu_work+0x3c3/0x480, CPU#0: kworker/u8:1/29
[   43.600000] list_del corruption, ff93d983bfd00838->next is NULL
[   44.000000] sched_ext: BPF scheduler \"scx_llmos\" enabled
";
    let checks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vm/guest/checks.sh");
    let mut child = Command::new("bash")
        .args(["-c", ". \"$1\"; complaints_in", "bash"])
        .arg(&checks)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("bash runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(log.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let found: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    let expected: Vec<&str> = log.lines().skip(2).take(7).collect();
    assert_eq!(found, expected);
}

/// MLFQ shape of the test run: the scheduler's default levels, the latency
/// rounds per policy, and the length of the levels probe.
const MLFQ_LEVELS: u32 = 4;
const LATENCY_ROUNDS: u32 = 3;
const LEVELS_SECS: u64 = 12;
/// Rounds per policy of the start-up burst shape (mlfq.sh's last phase).
/// Three, so that the median p99 is a middle round: of two it was the worse,
/// and one round hit by something outside the scheduler decided. 7.2,
/// 1 vCPU: 1 round in 8 measured a 10.2 ms p99 (the others 1.5-2.0 ms) and
/// failed the start-up check; 24 rounds in one boot since: 2.2-3.0 ms.
const STARTUP_ROUNDS: u32 = 3;

/// What tests/vm/guest/mlfq.sh must report as passed.
fn mlfq_guest_checks() -> Vec<String> {
    let mut checks: Vec<String> = vec!["attach".into()];
    for round in 1..=LATENCY_ROUNDS {
        for policy in ["vtime", "mlfq"] {
            checks.push(format!("switch_to_{policy}_{round}"));
            checks.push(format!("probe_ran_{policy}_{round}"));
        }
    }
    for check in [
        "probe_ran_levels",
        "probe_ran_burst",
        "nice_weights_within_level",
        "renice_is_no_wakeup",
        "set_boost_100ms",
        "hogs_take_turns_after_boost",
        "set_boost_2s",
    ] {
        checks.push(check.into());
    }
    for round in 1..=STARTUP_ROUNDS {
        for policy in ["vtime", "mlfq"] {
            checks.push(format!("startup_switch_to_{policy}_{round}"));
            checks.push(format!("startup_probe_ran_{policy}_{round}"));
            checks.push(format!("fast_probe_ran_{policy}_{round}"));
        }
    }
    for check in [
        "hog_runs_below_busy_top",
        "stayed_attached",
        "threads_read",
        "detached",
        "no_stall",
    ] {
        checks.push(check.into());
    }
    checks
}

/// Share of samples that must see the sleeper on level 0 (see judge_mlfq()).
const SLEEPER_ON_TOP_PERCENT: usize = 95;
/// The same for the start-up burst shape, whose first ~200 ms the sleeper
/// spends climbing (see judge_mlfq()).
const STARTUP_ON_TOP_PERCENT: usize = 80;

/// The fields the checks read of a row of the stats socket's `threads`
/// target, by name.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
struct ThreadRow {
    tid: u32,
    level: u32,
    runtime_ns: u64,
    runs: u64,
    boosts: u64,
    demotions: u64,
}

#[derive(serde::Deserialize)]
struct Threads {
    threads: Vec<ThreadRow>,
}

/// Parses what `scx_llmos threads --json` prints, one JSON object per
/// sample: one map from tid to row per sample.
fn parse_thread_tables(text: &str) -> Vec<HashMap<u32, ThreadRow>> {
    text.lines()
        .map(|line| {
            let sample: Threads = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a threads sample ({e}): {line}"));
            sample
                .threads
                .into_iter()
                .map(|row| (row.tid, row))
                .collect()
        })
        .collect()
}

/// The level of thread `tid` in each table that lists it.
fn levels_of(tables: &[HashMap<u32, ThreadRow>], tid: u32) -> Vec<u32> {
    tables
        .iter()
        .filter_map(|t| t.get(&tid))
        .map(|r| r.level)
        .collect()
}

/// What llmos-probe printed: thread tids by name, p99 latency, and each
/// spinner's iterations per interval.
#[derive(Debug, Default, PartialEq)]
struct ProbeReport {
    tids: HashMap<String, u32>,
    p99_us: u64,
    wait_p99_us: u64,
    progress: Vec<Vec<u64>>,
}

/// The value of the "p99=" field of a split line.
fn p99_field(fields: &[&str]) -> u64 {
    let p99 = fields
        .iter()
        .find_map(|kv| kv.strip_prefix("p99="))
        .unwrap();
    p99.parse().unwrap()
}

fn parse_probe(text: &str) -> ProbeReport {
    let mut report = ProbeReport::default();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.first() {
            Some(&"thread") => {
                let tid = f[2].trim_start_matches("tid=").parse().unwrap();
                report.tids.insert(f[1].to_string(), tid);
            }
            Some(&"latency_us") => report.p99_us = p99_field(&f),
            Some(&"queue_wait_us") => report.wait_p99_us = p99_field(&f),
            Some(&"progress") => report
                .progress
                .push(f[2].split(',').map(|n| n.parse().unwrap()).collect()),
            _ => {}
        }
    }
    report
}

/// /proc/<tid>/schedstat lines prefixed with the tid: tid -> ns on CPU.
fn parse_schedstat(text: &str) -> HashMap<u32, u64> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            Some((f.first()?.parse().ok()?, f.get(1)?.parse().ok()?))
        })
        .collect()
}

/// A verdict over interleaved rounds: the median of mlfq's p99s of `what`
/// must be at least `factor` times lower than the median of vtime's. The
/// worst round's ratio is printed beside it.
fn compare_p99s(what: &str, mlfq: &[u64], vtime: &[u64], factor: f64) -> (String, bool) {
    let median = |v: &[u64]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v[v.len() / 2]
    };
    let ratio = |v: u64, m: u64| v as f64 / m.max(1) as f64;
    let (m, v) = (median(mlfq), median(vtime));
    let worst = mlfq
        .iter()
        .zip(vtime)
        .map(|(&m, &v)| ratio(v, m))
        .fold(f64::INFINITY, f64::min);
    (
        format!(
            "{what} median p99 {m} us under mlfq, {v} us under vtime: {:.1}x, need {factor}x \
             (worst round {worst:.1}x; p99s mlfq {mlfq:?}, vtime {vtime:?})",
            ratio(v, m)
        ),
        ratio(v, m) >= factor,
    )
}

/// Judges the MLFQ run's files; returns "ok ..." / "FAIL ..." lines.
/// A main-thread shape of mlfq.sh's last phase (files `probe-SHAPE-...` and
/// `threads-SHAPE-...`): each policy's p99 by round, and the main thread's
/// level in each sample of each mlfq round.
fn main_thread_rounds(
    read: &dyn Fn(&str) -> String,
    shape: &str,
) -> (HashMap<&'static str, Vec<u64>>, Vec<Vec<u32>>) {
    let mut p99s: HashMap<&str, Vec<u64>> = HashMap::new();
    let mut levels = Vec::new();
    for round in 1..=STARTUP_ROUNDS {
        for policy in ["vtime", "mlfq"] {
            let report = parse_probe(&read(&format!("probe-{shape}-{policy}-{round}.txt")));
            p99s.entry(policy).or_default().push(report.p99_us);
            if policy == "mlfq" {
                let tables =
                    parse_thread_tables(&read(&format!("threads-{shape}-mlfq-{round}.txt")));
                levels.push(levels_of(&tables, report.tids["sleeper"]));
            }
        }
    }
    (p99s, levels)
}

/// Whether a main thread's sampled levels show it on top nearly throughout.
fn climbed(levels: &[u32]) -> (bool, String) {
    let on_top = levels.iter().filter(|&&l| l == 0).count();
    (
        levels.len() >= 20 && on_top * 100 >= levels.len() * STARTUP_ON_TOP_PERCENT,
        format!(
            "main thread on level 0 in {on_top} of {} samples (need \
             {STARTUP_ON_TOP_PERCENT}%): {levels:?}",
            levels.len()
        ),
    )
}

fn judge_mlfq(out: &Path) -> Vec<String> {
    let read = |name: &str| {
        std::fs::read_to_string(out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let mlfq = parse_probe(&read("probe-levels.txt"));
    // The last table of a file of `scx_llmos threads` output.
    let last_table = |name: &str| parse_thread_tables(&read(name)).pop().unwrap_or_default();
    let samples = parse_thread_tables(&read("threads-levels.txt"));
    let last = last_table("threads-final.txt");
    let schedstat = parse_schedstat(&read("schedstat.txt"));
    let sleeper = mlfq.tids["sleeper"];
    let spinners: Vec<u32> = mlfq
        .tids
        .iter()
        .filter(|(name, _)| name.starts_with("spinner"))
        .map(|(_, &tid)| tid)
        .collect();
    let bottom = MLFQ_LEVELS - 1;
    let mut verdicts = Vec::new();
    let mut verdict = |name: &str, pass: bool, detail: String| {
        verdicts.push(format!(
            "{} {name}: {detail}",
            if pass { "ok" } else { "FAIL" }
        ));
    };

    let sleeper_levels = levels_of(&samples, sleeper);
    // The sleeper works 100 us per 10 ms period, charged 0.35-0.7 ms a run
    // under TCG. A run that goes to sleep keeps its level whatever it was
    // charged (mlfq_charge()); only a run that loses the CPU after a whole
    // top-level slice (1 ms) drops it, which under emulation happens when
    // the emulator stalls mid-run, and it climbs back at its next wakeup.
    // Measured with tb-size=8 (a 2x slower emulator): 8-9 such runs of 1227,
    // the sleeper on top in 117-118 of 120 samples, once two levels down
    // after two such runs in a row. It must never sink to the spinners' level.
    let on_top = sleeper_levels.iter().filter(|&&l| l == 0).count();
    verdict(
        "sleeper_stays_on_top",
        sleeper_levels.len() >= 50
            && on_top * 100 >= sleeper_levels.len() * SLEEPER_ON_TOP_PERCENT
            && sleeper_levels.iter().all(|&l| l < bottom),
        format!(
            "on level 0 in {on_top} of {} samples (need {SLEEPER_ON_TOP_PERCENT}%), lowest level {:?}",
            sleeper_levels.len(),
            sleeper_levels.iter().max()
        ),
    );

    for &tid in &spinners {
        let levels = levels_of(&samples, tid);
        let at_bottom = levels.iter().filter(|&&l| l == bottom).count();
        verdict(
            &format!("spinner_{tid}_sinks"),
            levels.len() >= 50 && at_bottom * 4 >= levels.len() * 3,
            format!(
                "at level {bottom} in {at_bottom} of {} samples",
                levels.len()
            ),
        );
        let row = last.get(&tid);
        let (boosts, demotions) = row.map_or((0, 0), |r| (r.boosts, r.demotions));
        // A boost a second, and each sinks the spinner through every level
        // again; except a last one that finds it parked after the probe
        // (seen with a slow emulator: 13 boosts, 37 demotions).
        verdict(
            &format!("spinner_{tid}_boosted_and_sinks_again"),
            boosts + 2 >= LEVELS_SECS && demotions >= u64::from(bottom) * (boosts - 1),
            format!("{boosts} boosts, {demotions} demotions"),
        );
    }

    // Work beyond the allotment before a long sleep is not a CPU hog's: a
    // run that goes to sleep is charged but not demoted (mlfq_charge()).
    // Before that rule 94% of this sleeper's runs demoted it (500 of 530);
    // since, 2.3-13.2% over 5 boots: those that lose the CPU after the
    // allotment is used, to a preempting kworker or lifted spinners.
    let burst_sleeper = parse_probe(&read("probe-burst.txt")).tids["sleeper"];
    let burst = last_table("threads-burst.txt");
    let (runs, demotions) = burst
        .get(&burst_sleeper)
        .map_or((0, 0), |r| (r.runs, r.demotions));
    verdict(
        "burst_sleeper_rarely_demoted",
        runs >= 200 && demotions * 5 < runs,
        format!(
            "2 ms of work per 10 ms period: {demotions} demotions in {runs} runs (need < 1 in 5)"
        ),
    );

    let mut lateness: HashMap<&str, Vec<u64>> = HashMap::new();
    let mut waits: HashMap<&str, Vec<u64>> = HashMap::new();
    for round in 1..=LATENCY_ROUNDS {
        for policy in ["vtime", "mlfq"] {
            let report = parse_probe(&read(&format!("probe-{policy}-{round}.txt")));
            let starved: Vec<usize> = report
                .progress
                .iter()
                .enumerate()
                .filter(|(_, p)| p.is_empty() || p.contains(&0))
                .map(|(i, _)| i)
                .collect();
            verdict(
                &format!("spinners_progress_every_interval_{policy}_{round}"),
                report.progress.len() == spinners.len() && starved.is_empty(),
                format!(
                    "{} spinners, starved in some interval: {starved:?}",
                    report.progress.len()
                ),
            );
            lateness.entry(policy).or_default().push(report.p99_us);
            waits.entry(policy).or_default().push(report.wait_p99_us);
        }
    }
    // The sleeper's time in a run queue: what the scheduler chose. Median
    // ratios measured 55-135x over 6 boots, one of them with a 2x slower
    // emulator (tb-size=8); the worst single round 12x.
    let (text, pass) = compare_p99s("queue wait", &waits["mlfq"], &waits["vtime"], 10.0);
    verdict("sleeper_waits_10x_less_than_under_vtime", pass, text);
    // Lateness adds the timer's delay, which the emulator makes noisy (the
    // host runs the guest's timers, and mlfq's p99 of 1-5 ms is mostly that
    // delay): median ratios measured 5.3-14.2x over the same boots, single
    // rounds down to 2.1x. One round, as this test used to judge, measured
    // 3.5x in CI.
    let (text, pass) = compare_p99s("lateness", &lateness["mlfq"], &lateness["vtime"], 3.0);
    verdict("sleeper_late_3x_less_than_under_vtime", pass, text);

    // The last phase's main threads, each against vtime in the same rounds:
    // (files, what, climb check, lateness check, lowest p99 ratio).
    let shapes = [
        // A main thread that starts with a 50 ms burst and then wakes every
        // 2 ms must climb back to the top at once, not wait for a boost (2 s
        // here). Before sleeps paid back CPU time and added up
        // (mlfq_wakeup()), it sat on the bottom level until the boost: on top
        // in 18-19 of 38 samples in 6 of 6 rounds, p99 10.4-10.6 ms from
        // 300 ms on against vtime's 22.2-22.5 ms (2.1x). Since, on top from
        // the third or fourth sample (35-36 of 38 in 6 of 6 rounds), p99
        // 0.41-0.85 ms against 22.3-23.5 ms (27.8-31.6x); on the host of
        // 2026-12-07 2.2-3.0 ms against 22.3-22.9 ms (9.7x, worst round
        // 7.6x). Under TCG the thread's own loop costs ~0.2-0.5 ms a wakeup,
        // so under vtime it is no lighter than each spinner and waits its
        // turn. The threshold is the next shape's, for the same reason.
        (
            "startup",
            "start-up burst, 2 ms period: lateness",
            "startup_burst_sleeper_climbs",
            "startup_burst_sleeper_late_3_5x_less_than_under_vtime",
            3.5,
        ),
        // The latency matrix's worst shape: a main thread woken every 1 ms
        // beside 4 spinners per CPU, from its first wakeup on. Before a
        // waking task could preempt a spinner of its own level on the bottom
        // level (mlfq_preempts_within()), it waited out a spinner's 8 ms
        // slice at each wakeup there and climbed only after 300-900 ms: p99
        // 9.4 and 11.0 ms against vtime's 23.1 and 23.8 ms (2.2-2.5x), on
        // top in 34 and 30 of 38 samples. Since, 3 boots: p99 0.89-1.38 ms
        // against 23.1-23.6 ms (medians 17.1-25x), on top from the second
        // sample (37 of 38). On the CI machines of 2026-12 the p99 is
        // 2.0-2.5 ms against 23.1-23.7 ms (9.3-11.5x, 4 boots, one of them of
        // the code before end_turn()): a 10x threshold failed two of them.
        // CI of 2026-12-07 had 3.1, 4.8 and 8.7 ms against 23.2-23.5 ms
        // (4.9x), and failed a 5x threshold (its queue wait is most of it:
        // here 1.8-2.1 of 2.4-2.7 ms). 3.5x sits between the old code's
        // 2.5x and that 4.9x, 1.4x from each.
        (
            "fast",
            "main thread, 1 ms period, 4 spinners per CPU: lateness",
            "fast_main_thread_climbs",
            "fast_main_thread_late_3_5x_less_than_under_vtime",
            3.5,
        ),
    ];
    for (shape, what, climbs, late, ratio) in shapes {
        let (p99s, levels) = main_thread_rounds(&read, shape);
        for (round, levels) in (1..).zip(&levels) {
            let (pass, text) = climbed(levels);
            verdict(&format!("{climbs}_{round}"), pass, text);
        }
        let (text, pass) = compare_p99s(what, &p99s["mlfq"], &p99s["vtime"], ratio);
        verdict(late, pass, text);
    }

    let mut compared = 0;
    for (tid, row) in &last {
        let Some(&kernel_ns) = schedstat.get(tid) else {
            continue;
        };
        if kernel_ns < 10_000_000 {
            continue;
        }
        compared += 1;
        let map_ns = row.runtime_ns as f64;
        let off = (map_ns - kernel_ns as f64).abs() / kernel_ns as f64;
        verdict(
            &format!("runtime_{tid}_matches_schedstat"),
            off <= 0.10,
            format!(
                "map {:.1} ms, schedstat {:.1} ms ({:.1}% apart)",
                map_ns / 1e6,
                kernel_ns as f64 / 1e6,
                off * 100.0
            ),
        );
    }
    verdict(
        "runtimes_compared",
        compared > spinners.len(),
        format!("{compared} threads"),
    );
    verdict(
        "spinners_seen",
        spinners.len() == 2 && samples.len() >= 50,
        format!("{} spinners, {} map samples", spinners.len(), samples.len()),
    );
    verdicts
}

/// What tests/vm/guest/edf.sh must report as passed.
const EDF_CHECKS: &[&str] = &[
    "edf_admission_refused",
    "stayed_attached_mlfq",
    "stayed_attached_edf",
    "edf_meets_deadlines",
    "stayed_attached_rms",
    "rms_meets_deadlines",
    "rms_finds_new_threads",
    "rms_detects_periods",
    "rms_claims_capped",
    "rms_budget_ends_between_ticks",
    "edf_budget_holds_overrun",
    "no_stall",
];

/// The edf and rms policies (tests/vm/guest/edf.sh): admission, three
/// periodic threads among CPU hogs under EEVDF, mlfq, edf and rms (which
/// must find their periods itself), and a reserved thread that overruns. One vCPU, which the emulator does not share with another;
/// the guest as a whole still stops for milliseconds at times (a trace: 11.6
/// ms without an event), which llmos-periodic tells apart from the
/// scheduler's misses where it can (late timers, overrun reservations, an
/// overrun's debt); a stop while a thread waits it cannot, hence the bound
/// in edf.sh.
#[test]
fn vm_edf_deadlines_and_budgets() {
    run_guest_checks(
        "tests/vm/guest/edf.sh",
        "vm-edf",
        &[("VM_CPUS", "1")],
        &[],
        EDF_CHECKS,
    );
}

#[test]
fn vm_mlfq_levels_boost_latency_and_accounting() {
    // One vCPU: under TCG it is never descheduled by the emulator, so the
    // latencies are the scheduler's (see tests/vm/guest/mlfq.sh).
    let out = run_guest_checks(
        "tests/vm/guest/mlfq.sh",
        "vm-mlfq",
        &[("VM_CPUS", "1")],
        &[
            &LATENCY_ROUNDS.to_string(),
            &LEVELS_SECS.to_string(),
            &STARTUP_ROUNDS.to_string(),
        ],
        &mlfq_guest_checks()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let verdicts = judge_mlfq(&out);
    println!("--- judged from the files in {} ---", out.display());
    for line in &verdicts {
        println!("{line}");
    }
    let failed: Vec<&String> = verdicts.iter().filter(|l| l.starts_with("FAIL")).collect();
    assert!(failed.is_empty(), "MLFQ checks failed:\n{failed:#?}");
}

#[test]
fn latency_verdict_compares_medians_and_names_the_worst_round() {
    let (text, pass) = compare_p99s("lateness", &[1000, 9000, 2000], &[20000, 21000, 18000], 5.0);
    assert!(pass);
    assert_eq!(
        text,
        "lateness median p99 2000 us under mlfq, 20000 us under vtime: 10.0x, need 5x \
         (worst round 2.3x; p99s mlfq [1000, 9000, 2000], vtime [20000, 21000, 18000])"
    );
    let (_, pass) = compare_p99s("x", &[4100, 4000, 9000], &[20000, 21000, 18000], 5.0);
    assert!(!pass, "a median ratio of 4.9x is below 5x");
    let (text, pass) = compare_p99s("queue wait", &[0, 0, 60], &[23000, 23000, 23000], 10.0);
    assert!(pass, "a p99 of 0 us counts as 1 us: {text}");
}

#[test]
fn thread_tables_and_probe_output_parse() {
    let tables = parse_thread_tables(
        "{\"threads\":[{\"tid\":239,\"tgid\":235,\"comm\":\"llmos-probe\",\"level\":3,\"priority\":19,\"group\":-1,\"cpu\":0,\"runtime_ns\":4125050000,\"wait_ns\":8028785000,\"runs\":671,\"voluntary\":4,\"involuntary\":667,\"migrations\":0,\"demotions\":39,\"boosts\":12}]}\n{\"threads\":[]}\n",
    );
    assert_eq!(
        tables,
        vec![
            HashMap::from([(
                239,
                ThreadRow {
                    tid: 239,
                    level: 3,
                    runtime_ns: 4_125_050_000,
                    runs: 671,
                    boosts: 12,
                    demotions: 39
                }
            )]),
            HashMap::new()
        ]
    );
    let probe = parse_probe(
        "thread sleeper tid=7\nthread spinner0 tid=5\nHOLD\nlatency_us p50=1 p99=23 max=40 samples=9 late_over_1ms=0.1\nqueue_wait_us p50=0 p99=17 max=30 wakeups=9\nprogress spinner0 3,0,4\n",
    );
    assert_eq!(
        probe,
        ProbeReport {
            tids: HashMap::from([("sleeper".into(), 7), ("spinner0".into(), 5)]),
            p99_us: 23,
            wait_p99_us: 17,
            progress: vec![vec![3, 0, 4]],
        }
    );
    assert_eq!(
        parse_schedstat("12 345 6 7\nbad\n"),
        HashMap::from([(12, 345)])
    );
}
