// SPDX-License-Identifier: GPL-2.0
//! The loader proper: opens, configures, loads and attaches the BPF
//! scheduler (`Scheduler::init`), serves control requests and stats queries
//! while it runs (`Scheduler::run`), and detaches it on drop; `Restarts`
//! paces the restarts the kernel asks for.

use std::collections::BTreeMap;
use std::mem::MaybeUninit;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use crossbeam::channel::{Receiver, Sender};
use libbpf_rs::OpenObject;
use log::{info, warn};
use scx_stats::ToJson;
use scx_utils::{
    compat, scx_ops_attach, scx_ops_load, scx_ops_open, uei_exited, uei_report, Topology,
    UserExitInfo,
};

use crate::bpf_intf;
use crate::bpf_skel::*;
use crate::ctl::{self, ControlRequest};
use crate::settings::{self, Policy, Settings};
use crate::{config, kconfig, ksym, rules, stats, threads, Opts, SCHEDULER_NAME};

/// How often the run loop wakes, between requests, to check for exit and signals.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The CPU topology as the BPF side reads it (see the rodata in
/// bpf/llmos.bpf.h).
#[derive(Debug, PartialEq)]
struct LlcLayout {
    /// The LLC of every CPU id, numbered densely from 0 in the order LLCs
    /// first appear (0 for ids that have no CPU).
    cpu_llc: Vec<u32>,
    /// The NUMA node of each LLC.
    llc_node: Vec<u32>,
    /// Every CPU, LLC by LLC: LLC l's are `llc_cpus[llc_first[l]..][..llc_nr_cpus[l]]`.
    llc_cpus: Vec<u32>,
    llc_first: Vec<u32>,
    llc_nr_cpus: Vec<u32>,
    /// Each CPU id's place among its LLC's CPUs in `llc_cpus`.
    cpu_pos: Vec<u32>,
}

/// The layout of CPUs given as CPU id -> (LLC id, NUMA node).
fn llc_layout(cpus: &BTreeMap<usize, (usize, usize)>) -> LlcLayout {
    let nr_cpu_ids = cpus.keys().next_back().map_or(0, |max| max + 1);
    let mut cpu_llc = vec![0u32; nr_cpu_ids];
    let mut dense: BTreeMap<usize, u32> = BTreeMap::new();
    let mut llc_node = Vec::new();
    for (&cpu, &(llc, node)) in cpus {
        cpu_llc[cpu] = *dense.entry(llc).or_insert_with(|| {
            llc_node.push(node as u32);
            llc_node.len() as u32 - 1
        });
    }
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); llc_node.len()];
    for &cpu in cpus.keys() {
        members[cpu_llc[cpu] as usize].push(cpu as u32);
    }
    let mut cpu_pos = vec![0u32; nr_cpu_ids];
    let mut llc_first = Vec::new();
    let mut llc_nr_cpus = Vec::new();
    let mut llc_cpus = Vec::new();
    for list in members {
        llc_first.push(llc_cpus.len() as u32);
        llc_nr_cpus.push(list.len() as u32);
        for (pos, &cpu) in list.iter().enumerate() {
            cpu_pos[cpu as usize] = pos as u32;
        }
        llc_cpus.extend(list);
    }
    LlcLayout {
        cpu_llc,
        llc_node,
        llc_cpus,
        llc_first,
        llc_nr_cpus,
        cpu_pos,
    }
}

/// How long a policy switch may take to settle before `ctl` reports an error;
/// the BPF tick settles it within 10 ms.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);

/*
 * How long `ctl reload` waits after putting a slot of rules in force before
 * it may fill the other one again: a classification still reading that one
 * finishes in microseconds.
 */
const RULES_QUIESCE: Duration = Duration::from_millis(10);

pub struct Scheduler<'a> {
    skel: BpfSkel<'a>,
    struct_ops: Option<libbpf_rs::Link>,
    pub settings: Settings,
    control: &'a ctl::Listener,
    stats_queries: Receiver<stats::Query>,
    stats_answers: Sender<stats::Answer>,
    /// The counters of the runs before a restart.
    earlier_counters: stats::Counters,
    /// The config in force: the file's at start, or at the last `ctl reload`.
    pub config: config::Config,
    /// Where it came from (--config), for `ctl reload`.
    config_path: Option<PathBuf>,
    /// The CPU ids a group may name.
    nr_cpu_ids: usize,
}

impl<'a> Scheduler<'a> {
    pub fn init(
        opts: &Opts,
        settings: &Settings,
        file: &config::Config,
        control: &'a ctl::Listener,
        stats_server: &stats::Server,
        earlier_counters: stats::Counters,
        open_object: &'a mut MaybeUninit<OpenObject>,
    ) -> Result<Self> {
        let topo = Topology::new().context("failed to read the CPU topology")?;
        let cpu_llcs: BTreeMap<usize, (usize, usize)> = topo
            .all_cpus
            .values()
            .map(|cpu| (cpu.id, (cpu.llc_id, cpu.node_id)))
            .collect();
        let layout = llc_layout(&cpu_llcs);
        let nr_llcs = layout.llc_node.len() as u32;
        if layout.cpu_llc.len() > bpf_intf::llmos_consts_LLMOS_MAX_CPUS as usize
            || nr_llcs > bpf_intf::llmos_consts_LLMOS_MAX_LLCS
        {
            bail!(
                "{} CPUs in {nr_llcs} LLCs is more than scx_llmos supports ({} CPUs, {} LLCs)",
                layout.cpu_llc.len(),
                bpf_intf::llmos_consts_LLMOS_MAX_CPUS,
                bpf_intf::llmos_consts_LLMOS_MAX_LLCS
            );
        }
        // A group may name a CPU that is offline now: the BPF side skips it
        // until it comes online.
        let nr_cpu_ids = libbpf_rs::num_possible_cpus()
            .context("failed to count the possible CPUs")?
            .min(bpf_intf::llmos_consts_LLMOS_MAX_CPUS as usize);
        let tables = rules::Tables::build(file, nr_cpu_ids)?;

        let mut skel_builder = BpfSkelBuilder::default();
        skel_builder.obj_builder.debug(opts.verbose > 0);
        let kconfig = kconfig::fallback();
        let open_opts =
            kconfig
                .as_ref()
                .map(|config| libbpf_rs::libbpf_sys::bpf_object_open_opts {
                    sz: std::mem::size_of::<libbpf_rs::libbpf_sys::bpf_object_open_opts>() as u64,
                    kconfig: config.as_ptr(),
                    ..Default::default()
                });
        let mut skel = scx_ops_open!(skel_builder, open_object, llmos_ops, open_opts)?;
        skel.struct_ops.llmos_ops_mut().exit_dump_len = opts.exit_dump_len;
        // A wakeup onto an idle CPU or another LLC goes through that CPU's
        // wake list, as under EEVDF: one function-call IPI, and the wakee's
        // CPU enqueues it, instead of the waker taking the remote runqueue's
        // lock and sending a reschedule IPI. ops.enqueue() then runs there,
        // sometimes without ops.select_cpu() (see cpu_was_selected()).
        skel.struct_ops.llmos_ops_mut().flags |= *compat::SCX_OPS_ALLOW_QUEUED_WAKEUP;
        // `scx_llmos threads` links the thread iterator when it reads it.
        skel.progs.dump_threads.set_autoattach(false);

        let rodata = skel.maps.rodata_data.as_mut().unwrap();
        rodata.nr_llcs = nr_llcs;
        rodata.cpu_llc[..layout.cpu_llc.len()].copy_from_slice(&layout.cpu_llc);
        rodata.cpu_pos[..layout.cpu_pos.len()].copy_from_slice(&layout.cpu_pos);
        rodata.llc_node[..layout.llc_node.len()].copy_from_slice(&layout.llc_node);
        rodata.llc_first[..layout.llc_first.len()].copy_from_slice(&layout.llc_first);
        rodata.llc_nr_cpus[..layout.llc_nr_cpus.len()].copy_from_slice(&layout.llc_nr_cpus);
        rodata.llc_cpus[..layout.llc_cpus.len()].copy_from_slice(&layout.llc_cpus);
        for &cpu in cpu_llcs.keys() {
            rodata.cpus_in_topology[cpu / 64] |= 1 << (cpu % 64);
        }
        settings.tunables.write_at_load(rodata);
        rodata.loader_tgid = std::process::id();
        rodata.cpu_active_mask_addr = ksym::address("__cpu_active_mask").unwrap_or(0);
        let data = skel.maps.data_data.as_mut().unwrap();
        data.active_policy = settings.policy.bpf_id();
        let bss = skel.maps.bss_data.as_mut().unwrap();
        settings.tunables.write_live(&mut bss.tunables);
        bss.rules[0] = tables.to_bpf();
        // Switch 0: the policy it starts with.
        bss.policy_switch = u64::from(settings.policy.bpf_id());

        let mut skel = scx_ops_load!(skel, llmos_ops, uei)?;
        let struct_ops = Some(scx_ops_attach!(skel, llmos_ops)?);
        info!(
            "{SCHEDULER_NAME} {} attached: policy {}, {} CPUs in {nr_llcs} LLCs, {} priority rules, {} affinity groups, control socket {}",
            env!("CARGO_PKG_VERSION"),
            settings.policy.name(),
            cpu_llcs.len(),
            file.priority_rules.len(),
            file.groups.len(),
            opts.ctl_socket.display(),
        );

        let (stats_answers, stats_queries) = stats_server.channels();
        Ok(Self {
            skel,
            struct_ops,
            settings: settings.clone(),
            control,
            stats_queries,
            stats_answers,
            earlier_counters,
            config: file.clone(),
            config_path: opts.config.clone(),
            nr_cpu_ids,
        })
    }

    pub fn run(&mut self, shutdown: &AtomicBool) -> Result<UserExitInfo> {
        let control = self.control;
        let (requests, queries) = (control.requests(), self.stats_queries.clone());
        while !shutdown.load(Ordering::Relaxed) && !uei_exited!(&self.skel, uei) {
            // A channel whose serving thread is gone (neither ever returns)
            // is always ready: the loop then sleeps rather than spin.
            crossbeam::select! {
                recv(requests) -> request => match request {
                    Ok(request) => {
                        let reply = match self.handle(&request.command) {
                            Ok(text) => format!("ok: {text}"),
                            Err(err) => format!("error: {err:#}"),
                        };
                        request.reply(reply);
                    }
                    Err(_) => std::thread::sleep(POLL_INTERVAL),
                },
                recv(queries) -> query => match query {
                    // The client has gone if nobody takes the answer.
                    Ok(query) => drop(self.stats_answers.send(self.answer(query))),
                    Err(_) => std::thread::sleep(POLL_INTERVAL),
                },
                default(POLL_INTERVAL) => {}
            }
        }
        // Dropping the link detaches the scheduler; the kernel then records why.
        self.struct_ops.take();
        uei_report!(&self.skel, uei)
    }

    /// The JSON of the stats target a client asked for.
    fn answer(&self, query: stats::Query) -> stats::Answer {
        Ok(match query {
            stats::Query::Top => self.metrics()?.to_json()?,
            stats::Query::Threads { tgid } => stats::Threads {
                threads: threads::read(&self.skel.progs.dump_threads, tgid)?,
                read_at_ns: stats::monotonic_ns(),
            }
            .to_json()?,
        })
    }

    /// The counters since scx_llmos started, this run's and the earlier ones'.
    pub fn counters(&self) -> Result<stats::Counters> {
        Ok(stats::add(
            &self.earlier_counters,
            &stats::read(&self.skel.maps.stats)?,
        ))
    }

    /// The policy, the tunables in force and the counters.
    fn metrics(&self) -> Result<stats::Metrics> {
        let settings = &self.settings;
        let counters = self.counters()?;
        Ok(stats::Metrics {
            policy: settings.policy.name(),
            tunables: settings.tunables.clone(),
            ..stats::Metrics::from_counters(&counters, settings.tunables.levels() as usize)
        })
    }

    /// Carries out one control request; returns what to tell the client.
    fn handle(&mut self, command: &str) -> Result<String> {
        match ControlRequest::parse(command)? {
            ControlRequest::Policy(policy) => self.switch_policy(policy),
            ControlRequest::Set(tunable) => self.set_tunable(tunable),
            ControlRequest::Reload => self.reload(),
            ControlRequest::Status { json: false } => Ok(self.settings.describe()),
            ControlRequest::Status { json: true } => Ok(serde_json::to_string(&self.settings)?),
            ControlRequest::InjectFault(fault) => {
                let bss = self.skel.maps.bss_data.as_deref_mut().unwrap();
                // SAFETY: bss is the BPF program's mmapped globals; the tick
                // and ops.enqueue() read this word.
                unsafe { std::ptr::write_volatile(&mut bss.injected_fault, fault.bpf_id()) };
                warn!("injected fault: {fault:?}, as `ctl inject-fault` asked");
                Ok(format!("fault injected: {fault:?}"))
            }
        }
    }

    /// Switches the running scheduler's policy and waits until every queued
    /// task has been carried over to the new policy's queues.
    fn switch_policy(&mut self, policy: Policy) -> Result<String> {
        let old = self.settings.policy;
        let start = Instant::now();
        let data = self.skel.maps.data_data.as_deref_mut().unwrap();
        // SAFETY: data and bss are the BPF program's mmapped globals, which it
        // reads and writes concurrently: volatile accesses keep each one.
        unsafe { std::ptr::write_volatile(&mut data.active_policy, policy.bpf_id()) };
        let bss = self.skel.maps.bss_data.as_deref_mut().unwrap();
        // SAFETY: as above.
        let seq = (unsafe { std::ptr::read_volatile(&bss.policy_switch) } >> 32) + 1;
        // The policy must be visible before the switch that announces it.
        std::sync::atomic::fence(Ordering::SeqCst);
        // SAFETY: as above; one aligned 64-bit store, so the BPF tick reads
        // the sequence number and the policy together.
        unsafe {
            std::ptr::write_volatile(
                &mut bss.policy_switch,
                (seq << 32) | u64::from(policy.bpf_id()),
            )
        };
        self.settings.policy = policy;
        // SAFETY: as above.
        while unsafe { std::ptr::read_volatile(&bss.settled_seq) } < seq {
            if start.elapsed() > SETTLE_TIMEOUT {
                bail!(
                    "policy {} is active but queued tasks were not carried over within {} s",
                    policy.name(),
                    SETTLE_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        info!(
            "policy {} -> {} (settled in {} us)",
            old.name(),
            policy.name(),
            start.elapsed().as_micros()
        );
        Ok(format!("policy {} (was {})", policy.name(), old.name()))
    }

    /// Re-reads the config file and puts its rules and groups in force:
    /// each thread takes them when it next runs. The file's policy and
    /// tunables are checked, not applied (`ctl policy` and `ctl set` change
    /// those). A file that does not parse changes nothing.
    fn reload(&mut self) -> Result<String> {
        let path = self
            .config_path
            .clone()
            .context("scx_llmos was started without --config: there is no file to reload")?;
        let config = config::load(&path)?;
        let tables = rules::Tables::build(&config, self.nr_cpu_ids)?;
        let bss = self.skel.maps.bss_data.as_deref_mut().unwrap();
        // SAFETY: bss is the BPF program's mmapped globals: volatile
        // accesses reach it as they are. The slot written is the one not in
        // force, which no classification reads (see RULES_QUIESCE).
        let generation = unsafe { std::ptr::read_volatile(&bss.rules_gen) } + 1;
        let slot = &mut bss.rules[(generation % 2) as usize];
        unsafe { std::ptr::write_volatile(slot, tables.to_bpf()) };
        // The rules must be complete before the generation that announces them.
        std::sync::atomic::fence(Ordering::SeqCst);
        // SAFETY: as above.
        unsafe { std::ptr::write_volatile(&mut bss.rules_gen, generation) };
        std::thread::sleep(RULES_QUIESCE);
        let reply = format!(
            "reloaded {}: {} priority rules, {} affinity groups, applied to each thread as it next runs",
            path.display(),
            config.priority_rules.len(),
            config.groups.len()
        );
        info!("{reply}");
        self.config = config;
        Ok(reply)
    }

    /// Changes a tunable of the running scheduler; it applies to the next
    /// scheduling decision.
    fn set_tunable(&mut self, assignment: settings::Assignment) -> Result<String> {
        self.settings.tunables.set(&assignment)?;
        let bss = self.skel.maps.bss_data.as_deref_mut().unwrap();
        // SAFETY: bss is the BPF program's mmapped globals, which it reads
        // concurrently: volatile accesses reach it as they are, and only
        // the loader writes the tunables.
        let mut live = unsafe { std::ptr::read_volatile(&bss.tunables) };
        self.settings.tunables.write_live(&mut live);
        // SAFETY: as above.
        unsafe { std::ptr::write_volatile(&mut bss.tunables, live) };
        let description = format!("{} = {}", assignment.key(), assignment.value);
        info!("set {description}");
        Ok(description)
    }
}

impl Drop for Scheduler<'_> {
    fn drop(&mut self) {
        if self.struct_ops.take().is_some() {
            info!("detaching {SCHEDULER_NAME}");
        }
    }
}

/// Restarts the kernel asked for, one after another: each waits twice as
/// long as the one before, and a scheduler that keeps exiting gives up.
#[derive(Debug, Default)]
pub struct Restarts {
    pub in_a_row: u32,
}

impl Restarts {
    /// A run this long resets the count: it was not a restart loop.
    const STABLE_RUN: Duration = Duration::from_secs(60);
    const FIRST_WAIT: Duration = Duration::from_millis(100);
    const MAX_IN_A_ROW: u32 = 8;

    /// How long to wait before the next restart, after a run of `ran`.
    pub fn next(&mut self, ran: Duration) -> Result<Duration> {
        if ran >= Self::STABLE_RUN {
            self.in_a_row = 0;
        }
        self.in_a_row += 1;
        if self.in_a_row > Self::MAX_IN_A_ROW {
            bail!(
                "the kernel asked for {} restarts in a row, each within {} s of the last: giving up",
                self.in_a_row - 1,
                Self::STABLE_RUN.as_secs()
            );
        }
        Ok(Self::FIRST_WAIT * 2u32.pow(self.in_a_row - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_and_give_up() {
        let mut restarts = Restarts::default();
        let quick = Duration::from_secs(1);
        let waits: Vec<u128> = (0..8)
            .map(|_| restarts.next(quick).unwrap().as_millis())
            .collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 6400, 12800]);
        assert_eq!(
            restarts.next(quick).unwrap_err().to_string(),
            "the kernel asked for 8 restarts in a row, each within 60 s of the last: giving up"
        );
        // A run of a minute was not part of a loop.
        let mut restarts = Restarts::default();
        restarts.next(quick).unwrap();
        restarts.next(quick).unwrap();
        assert_eq!(
            restarts.next(Duration::from_secs(60)).unwrap(),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn llcs_are_numbered_densely_and_list_their_cpus() {
        let cpus = BTreeMap::from([
            (0, (7, 0)),
            (1, (7, 0)),
            (2, (3, 1)),
            (3, (3, 1)),
            (5, (9, 1)),
        ]);
        assert_eq!(
            llc_layout(&cpus),
            LlcLayout {
                cpu_llc: vec![0, 0, 1, 1, 0, 2],
                llc_node: vec![0, 1, 1],
                llc_cpus: vec![0, 1, 2, 3, 5],
                llc_first: vec![0, 2, 4],
                llc_nr_cpus: vec![2, 2, 1],
                cpu_pos: vec![0, 1, 0, 1, 0, 0],
            }
        );
        assert!(llc_layout(&BTreeMap::new()).llc_cpus.is_empty());
    }
}
