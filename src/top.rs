// SPDX-License-Identifier: GPL-2.0
//! `scx_llmos top`: a live view of the running scheduler in the terminal, as
//! scxtop gives one of any scx scheduler and htop of processes. It is a
//! client of the stats socket, like `threads`: every interval it asks for the
//! `top` and `threads` targets, and every rate it shows is a counter's growth
//! between two such polls. The view is made by pure functions of the two
//! polls, which the tests check; `run` only polls, draws and reads keys.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{self, AtomicBool};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::terminal::{self, EnterAlternateScreen, LeaveAlternateScreen};
use ratatui::backend::CrosstermBackend;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::Stylize;
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table};
use ratatui::{Frame, Terminal};
use scx_stats::prelude::StatsClient;

use crate::settings;
use crate::stats::{self, Metrics, ThreadRow, Threads};

/// The column the thread table is sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SortKey {
    Cpu,
    Wait,
    Runs,
    Migrations,
    Level,
    Priority,
    Tid,
}

impl SortKey {
    /// Each key with the letter that picks it, in the order the title lists them.
    const BY_LETTER: [(char, SortKey); 7] = [
        ('c', SortKey::Cpu),
        ('w', SortKey::Wait),
        ('r', SortKey::Runs),
        ('m', SortKey::Migrations),
        ('l', SortKey::Level),
        ('p', SortKey::Priority),
        ('t', SortKey::Tid),
    ];

    fn for_letter(letter: char) -> Option<Self> {
        Self::BY_LETTER
            .iter()
            .find(|(l, _)| *l == letter)
            .map(|&(_, key)| key)
    }

    /// The place in `THREAD_COLUMNS` of the column this key sorts.
    fn column(self) -> usize {
        match self {
            SortKey::Tid => 0,
            SortKey::Level => 2,
            SortKey::Priority => 3,
            SortKey::Cpu => 5,
            SortKey::Wait => 6,
            SortKey::Runs => 7,
            SortKey::Migrations => 8,
        }
    }

    /// How `a` and `b` compare under this key: the thread ids lowest first,
    /// every other column highest first (the busiest, deepest or
    /// highest-priority thread on top), a thread without rates yet below
    /// every one that has them.
    fn order(self, a: &TableRow, b: &TableRow) -> Ordering {
        let by_rate = |rate: fn(&ThreadRates) -> f64| {
            // `None < Some`: comparing b to a puts rates highest first, then none.
            let (a, b) = (a.rates.as_ref().map(rate), b.rates.as_ref().map(rate));
            b.partial_cmp(&a).unwrap_or(Ordering::Equal)
        };
        match self {
            SortKey::Cpu => by_rate(|r| r.cpu_pct),
            SortKey::Wait => by_rate(|r| r.wait_pct),
            SortKey::Runs => by_rate(|r| r.runs_per_sec),
            SortKey::Migrations => by_rate(|r| r.migrations_per_sec),
            SortKey::Level => b.thread.level.cmp(&a.thread.level),
            SortKey::Priority => b.thread.priority.cmp(&a.thread.priority),
            SortKey::Tid => a.thread.tid.cmp(&b.thread.tid),
        }
    }
}

/// What a key press asks for.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    Quit,
    Sort(SortKey),
}

/// The action of a key press, if it has one: q, Esc and Ctrl-C quit (raw
/// mode delivers Ctrl-C as a key, not as SIGINT); a sort letter sorts.
fn action(key: KeyEvent) -> Option<Action> {
    if key.kind != KeyEventKind::Press {
        return None;
    }
    let chord = key
        .modifiers
        .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
    match key.code {
        KeyCode::Esc | KeyCode::Char('q') => Some(Action::Quit),
        KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => Some(Action::Quit),
        KeyCode::Char(letter) if !chord => SortKey::for_letter(letter).map(Action::Sort),
        _ => None,
    }
}

/// What one poll of the scheduler saw, and when.
struct Poll {
    metrics: Metrics,
    threads: Vec<ThreadRow>,
    /// When the scheduler read the thread rows, on its clock (ns).
    threads_read_at_ns: u64,
    at: Instant,
}

/// Asks the scheduler for its `top` and `threads` targets.
fn poll(client: &mut StatsClient) -> Result<Poll> {
    let metrics: Metrics = client
        .request("stats", vec![])
        .context("scx_llmos stopped answering")?;
    let threads: Threads = client
        .request("stats", stats::threads_args(None))
        .context("scx_llmos stopped answering")?;
    Ok(Poll {
        metrics,
        threads: threads.threads,
        threads_read_at_ns: threads.read_at_ns,
        at: Instant::now(),
    })
}

/// The seconds from poll `before` to poll `now`.
fn seconds_between(before: &Poll, now: &Poll) -> f64 {
    now.at.duration_since(before.at).as_secs_f64()
}

/// What the scheduler did between two polls: its counters' growth, and the
/// seconds that took.
struct Interval {
    delta: Metrics,
    secs: f64,
}

impl Interval {
    fn between(before: &Poll, now: &Poll) -> Self {
        Self {
            delta: now.metrics.delta(&before.metrics),
            secs: seconds_between(before, now),
        }
    }

    fn per_sec(&self, count: u64) -> f64 {
        count as f64 / self.secs
    }
}

/// A thread's share of an interval and its events per second.
#[derive(Clone, Copy, Debug, PartialEq)]
struct ThreadRates {
    cpu_pct: f64,
    wait_pct: f64,
    runs_per_sec: f64,
    migrations_per_sec: f64,
}

/// A line of the thread table: the thread as the latest poll saw it, and
/// its rates since the poll before, if that one saw it too.
#[derive(Clone, Debug, PartialEq)]
struct TableRow {
    thread: ThreadRow,
    rates: Option<ThreadRates>,
}

/// The rates of a thread that had counters `before` and `now`, `secs`
/// apart. A counter that went back (the tid reused) grew by nothing.
fn thread_rates(before: &ThreadRow, now: &ThreadRow, secs: f64) -> ThreadRates {
    let per_sec = |before: u64, now: u64| now.saturating_sub(before) as f64 / secs;
    let percent = |before_ns, now_ns| per_sec(before_ns, now_ns) / NS_PER_SEC * 100.0;
    ThreadRates {
        cpu_pct: percent(before.runtime_ns, now.runtime_ns),
        wait_pct: percent(before.wait_ns, now.wait_ns),
        runs_per_sec: per_sec(before.runs, now.runs),
        migrations_per_sec: per_sec(before.migrations, now.migrations),
    }
}

const NS_PER_SEC: f64 = 1e9;

/// The seconds between the scheduler's reads of the thread rows of two
/// polls: what their counters grew in, whatever delayed the answers. From
/// the client's clock if a scheduler does not say.
fn seconds_between_reads(before: &Poll, now: &Poll) -> f64 {
    match now
        .threads_read_at_ns
        .checked_sub(before.threads_read_at_ns)
    {
        Some(ns) if ns > 0 && before.threads_read_at_ns > 0 => ns as f64 / NS_PER_SEC,
        _ => seconds_between(before, now),
    }
}

/// The thread table of poll `now`, in the order of its threads: the rates of
/// each thread poll `before` saw as well (the same tid), none for the others.
fn table_rows(before: Option<&Poll>, now: &Poll) -> Vec<TableRow> {
    let earlier: Option<(HashMap<u64, &ThreadRow>, f64)> = before.map(|before| {
        let by_tid = before.threads.iter().map(|t| (t.tid, t)).collect();
        (by_tid, seconds_between_reads(before, now))
    });
    now.threads
        .iter()
        .map(|thread| TableRow {
            thread: thread.clone(),
            rates: earlier.as_ref().and_then(|(by_tid, secs)| {
                let before = by_tid.get(&thread.tid)?;
                Some(thread_rates(before, thread, *secs))
            }),
        })
        .collect()
}

/// Sorts the thread table by `key`, ties by thread id, so that rows stay put
/// between polls.
fn sort_rows(rows: &mut [TableRow], key: SortKey) {
    rows.sort_by(|a, b| key.order(a, b).then(a.thread.tid.cmp(&b.thread.tid)));
}

/// How many of `threads` sit on each of the first `levels` mlfq levels, and
/// how many of those wait for a CPU: each level's queue depth.
fn threads_per_level(threads: &[ThreadRow], levels: usize) -> Vec<(usize, usize)> {
    let mut counts = vec![(0, 0); levels];
    for thread in threads {
        if let Some((on_level, waiting)) = counts.get_mut(thread.level as usize) {
            *on_level += 1;
            *waiting += (thread.waiting != 0) as usize;
        }
    }
    counts
}

/// A rate as the view prints it, or a blank before there is one.
fn format_rate(rate: Option<f64>) -> String {
    rate.map(|rate| format!("{rate:.1}")).unwrap_or_default()
}

/// The header's lines: the tunables (each level's slice is in the level
/// table), and what the scheduler did per second, with the words of
/// `--stats` lines; the rates are blank until the second poll.
fn header_lines(metrics: &Metrics, interval: Option<&Interval>) -> [String; 3] {
    let rate = |count: fn(&Metrics) -> u64| {
        format_rate(interval.map(|interval| interval.per_sec(count(&interval.delta))))
    };
    let tunables: Vec<String> = metrics
        .tunables
        .iter()
        .filter(|(tunable, _)| !tunable.per_level())
        .map(|(tunable, value)| format!("{} {value}", tunable.name))
        .collect();
    [
        format!("tunables  {}", tunables.join("  ")),
        format!(
            "per s     dispatch {}  preempt {}  steal {}  refill {}",
            rate(Metrics::dispatches),
            rate(|m| m.preemptions),
            rate(|m| m.steals),
            rate(|m| m.slice_refills),
        ),
        format!(
            "per s     xllc {}  boost {}  switch {}  pushed {}",
            rate(|m| m.llc_migrations),
            rate(|m| m.boosts),
            rate(|m| m.policy_switches),
            rate(|m| m.pushed_offline),
        ),
    ]
}

/// A table's column: its title, width and whether its values are numbers,
/// which line up on the right.
struct Column {
    title: &'static str,
    width: u16,
    numeric: bool,
}

const fn column(title: &'static str, width: u16, numeric: bool) -> Column {
    Column {
        title,
        width,
        numeric,
    }
}

const LEVEL_COLUMNS: [Column; 5] = [
    column("LEVEL", 5, true),
    column("SLICE_US", 8, true),
    column("THREADS", 7, true),
    column("WAITING", 7, true),
    column("RUNS/s", 10, true),
];

/// The level table: each mlfq level's slice, the threads on it now, those of
/// them waiting for a CPU, and the threads started on it per second.
fn level_rows(now: &Poll, interval: Option<&Interval>) -> Vec<[String; 5]> {
    let levels = now.metrics.level_runs.len();
    threads_per_level(&now.threads, levels)
        .into_iter()
        .enumerate()
        .map(|(level, (threads, waiting))| {
            let slices = now.metrics.tunables.get(settings::LEVEL_SLICES);
            let slice = slices.as_slice().get(level);
            [
                level.to_string(),
                slice.map(u64::to_string).unwrap_or_default(),
                threads.to_string(),
                waiting.to_string(),
                format_rate(interval.map(|i| i.per_sec(i.delta.level_runs[level]))),
            ]
        })
        .collect()
}

/// The thread table's columns; `SortKey::column` indexes it. A name is at
/// most 15 bytes (the kernel's TASK_COMM_LEN).
const THREAD_COLUMNS: [Column; 9] = [
    column("TID", 7, true),
    column("COMM", 15, false),
    column("LVL", 3, true),
    column("PRIO", 4, true),
    column("GRP", 3, true),
    column("CPU%", 6, true),
    column("WAIT%", 6, true),
    column("RUNS/s", 8, true),
    column("MIGR/s", 7, true),
];

/// A line of the thread table as text, a cell per `THREAD_COLUMNS` entry.
fn thread_cells(row: &TableRow) -> [String; 9] {
    let t = &row.thread;
    let rate = |rate: fn(&ThreadRates) -> f64| format_rate(row.rates.as_ref().map(rate));
    [
        t.tid.to_string(),
        t.comm.clone(),
        t.level.to_string(),
        t.priority.to_string(),
        t.group.to_string(),
        rate(|r| r.cpu_pct),
        rate(|r| r.wait_pct),
        rate(|r| r.runs_per_sec),
        rate(|r| r.migrations_per_sec),
    ]
}

/// A bordered table of text `rows` under `columns`, with the title of
/// column `highlighted` (the sort column) reversed.
fn table<'a, const N: usize>(
    title: String,
    columns: &[Column; N],
    rows: Vec<[String; N]>,
    highlighted: Option<usize>,
) -> Table<'a> {
    let align = |column: &Column, text: String| {
        let line = Line::from(text);
        if column.numeric {
            line.right_aligned()
        } else {
            line
        }
    };
    let header = columns.iter().enumerate().map(|(idx, column)| {
        let title = align(column, column.title.to_string());
        if Some(idx) == highlighted {
            title.reversed()
        } else {
            title
        }
    });
    let rows = rows
        .into_iter()
        .map(|cells| Row::new(columns.iter().zip(cells).map(|(c, text)| align(c, text))));
    Table::new(rows, columns.iter().map(|c| Constraint::Length(c.width)))
        .header(Row::new(header).bold())
        .block(Block::bordered().title(title))
}

/// Draws the view of poll `now`, with rates since poll `before`: the header,
/// the level table, and as many threads as fit, sorted by `sort`.
fn draw(frame: &mut Frame, before: Option<&Poll>, now: &Poll, sort: SortKey) {
    let interval = before.map(|before| Interval::between(before, now));
    let header = header_lines(&now.metrics, interval.as_ref());
    let levels = level_rows(now, interval.as_ref());
    let mut rows = table_rows(before, now);
    sort_rows(&mut rows, sort);

    // Each box has a border above and below; a table has its column titles.
    let [header_area, levels_area, threads_area] = Layout::vertical([
        Constraint::Length(header.len() as u16 + 2),
        Constraint::Length(levels.len() as u16 + 3),
        Constraint::Fill(1),
    ])
    .areas(frame.area());
    let title = format!(" scx_llmos top: policy {} ", now.metrics.policy);
    frame.render_widget(
        Paragraph::new(header.map(Line::from).to_vec()).block(Block::bordered().title(title)),
        header_area,
    );
    frame.render_widget(
        table(" mlfq levels ".into(), &LEVEL_COLUMNS, levels, None),
        levels_area,
    );
    let letters: Vec<String> = SortKey::BY_LETTER
        .iter()
        .map(|(letter, _)| letter.to_string())
        .collect();
    let title = format!(
        " {} threads, sorted by {} (keys {}; q quits) ",
        rows.len(),
        THREAD_COLUMNS[sort.column()].title,
        letters.join(" "),
    );
    let rows = rows.iter().map(thread_cells).collect();
    frame.render_widget(
        table(title, &THREAD_COLUMNS, rows, Some(sort.column())),
        threads_area,
    );
}

/// The terminal in raw mode (keys arrive one by one, unechoed) on the
/// alternate screen, while this lives. Dropping it, on quit, on an error or
/// as a panic unwinds, gives the shell its screen back as it was.
struct FullScreen;

impl FullScreen {
    fn enter() -> Result<Self> {
        // The panic message is printed before unwinding drops the guard:
        // leave the alternate screen first, or the message goes with it.
        let print_panic = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            Self::restore();
            print_panic(info);
        }));
        terminal::enable_raw_mode().context("cannot put the terminal in raw mode")?;
        let guard = FullScreen;
        crossterm::execute!(io::stdout(), EnterAlternateScreen)
            .context("cannot switch to the alternate screen")?;
        Ok(guard)
    }

    /// Undoes `enter`; doing it twice (a panic, then the drop) is harmless.
    fn restore() {
        let _ = crossterm::execute!(io::stdout(), LeaveAlternateScreen, crossterm::cursor::Show);
        let _ = terminal::disable_raw_mode();
    }
}

impl Drop for FullScreen {
    fn drop(&mut self) {
        Self::restore();
    }
}

/// `scx_llmos top`: polls the scheduler at `socket` every `interval` and
/// shows it until a key quits. The first poll comes before the terminal is
/// touched, so that an unreachable scheduler is one line of error.
pub fn run(socket: &Path, interval: Duration) -> Result<()> {
    let mut client = stats::connect(socket)?;
    let mut now = poll(&mut client)?;
    let mut before = None;
    let mut sort = SortKey::Cpu;
    // SIGTERM, SIGHUP (a closed terminal) and SIGINT end it as q does, so
    // that the guard gives the terminal back rather than leave it raw.
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = stop.clone();
    ctrlc::set_handler(move || on_signal.store(true, atomic::Ordering::Relaxed))
        .context("cannot catch SIGTERM")?;
    let _screen = FullScreen::enter()?;
    let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    let mut redraw = true;
    while !stop.load(atomic::Ordering::Relaxed) {
        if now.at.elapsed() >= interval {
            before = Some(std::mem::replace(&mut now, poll(&mut client)?));
            redraw = true;
        }
        if redraw {
            terminal.draw(|frame| draw(frame, before.as_ref(), &now, sort))?;
            redraw = false;
        }
        // Until the next poll is due, or the signal check; a key or a
        // resize draws at once.
        let wait = interval.saturating_sub(now.at.elapsed()).min(SIGNAL_CHECK);
        if event::poll(wait)? {
            match event::read()? {
                Event::Key(key) => match action(key) {
                    Some(Action::Quit) => break,
                    Some(Action::Sort(key)) => sort = key,
                    None => {}
                },
                Event::Resize(..) => {}
                _ => continue,
            }
            redraw = true;
        }
    }
    Ok(())
}

/// How often the view looks whether a signal asked it to end.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;

    fn thread(tid: u64, comm: &str) -> ThreadRow {
        ThreadRow {
            tid,
            tgid: 100,
            comm: comm.into(),
            group: -1,
            ..ThreadRow::default()
        }
    }

    /// Polls 2 s apart.
    fn two_polls(before: Vec<ThreadRow>, now: Vec<ThreadRow>) -> (Poll, Poll) {
        let start = Instant::now();
        let poll = |threads, secs| Poll {
            metrics: Metrics::default(),
            threads,
            threads_read_at_ns: 0,
            at: start + Duration::from_secs(secs),
        };
        (poll(before, 0), poll(now, 2))
    }

    fn rates(cpu_pct: f64, wait_pct: f64, runs: f64, migrations: f64) -> Option<ThreadRates> {
        Some(ThreadRates {
            cpu_pct,
            wait_pct,
            runs_per_sec: runs,
            migrations_per_sec: migrations,
        })
    }

    #[test]
    fn rates_are_the_growth_between_polls_per_second_by_tid() {
        let old = ThreadRow {
            runtime_ns: 1_000_000_000,
            wait_ns: 200_000_000,
            runs: 10,
            migrations: 1,
            ..thread(7, "worker")
        };
        let grown = ThreadRow {
            runtime_ns: 2_000_000_000,
            wait_ns: 700_000_000,
            runs: 30,
            migrations: 5,
            level: 2,
            ..old.clone()
        };
        let newcomer = ThreadRow {
            runtime_ns: 5_000_000_000,
            ..thread(9, "newcomer")
        };
        // Thread 8 has exited; 9 is new: it has no rates until the next poll.
        let (before, now) = two_polls(
            vec![thread(8, "gone"), old.clone()],
            vec![newcomer.clone(), grown.clone()],
        );
        assert_eq!(
            table_rows(Some(&before), &now),
            vec![
                TableRow {
                    thread: newcomer.clone(),
                    rates: None
                },
                TableRow {
                    thread: grown.clone(),
                    rates: rates(50.0, 25.0, 10.0, 2.0)
                },
            ]
        );
        // The scheduler says when it read the rows: 1 s apart, though the
        // answers came 2 s apart, so the same growth is twice the rate.
        let (mut before, mut now) = two_polls(vec![old.clone()], vec![grown]);
        (before.threads_read_at_ns, now.threads_read_at_ns) = (7_000_000_000, 8_000_000_000);
        assert_eq!(
            table_rows(Some(&before), &now)[0].rates,
            rates(100.0, 50.0, 20.0, 4.0)
        );
        // The first poll: no thread has rates.
        assert!(table_rows(None, &now).iter().all(|row| row.rates.is_none()));
        // A counter that went back (a tid reused) is no growth.
        let (before, now) = two_polls(vec![newcomer], vec![thread(9, "reused")]);
        assert_eq!(
            table_rows(Some(&before), &now)[0].rates,
            rates(0.0, 0.0, 0.0, 0.0)
        );
    }

    /// The tids of rows sorted by `key`.
    fn sorted_tids(rows: &[TableRow], key: SortKey) -> Vec<u64> {
        let mut rows = rows.to_vec();
        sort_rows(&mut rows, key);
        rows.iter().map(|row| row.thread.tid).collect()
    }

    #[test]
    fn every_key_sorts_its_column() {
        let row = |tid, level, priority, rates| TableRow {
            thread: ThreadRow {
                level,
                priority,
                ..thread(tid, "t")
            },
            rates,
        };
        let rows = [
            row(4, 1, 20, rates(10.0, 5.0, 300.0, 0.0)),
            row(2, 3, 19, rates(90.0, 1.0, 10.0, 4.0)),
            row(5, 0, 39, None),
            row(1, 3, 20, rates(10.0, 60.0, 50.0, 8.0)),
            row(3, 0, 0, rates(0.5, 0.0, 0.0, 1.0)),
        ];
        // Highest first, ties by tid; the thread without rates last.
        assert_eq!(sorted_tids(&rows, SortKey::Cpu), [2, 1, 4, 3, 5]);
        assert_eq!(sorted_tids(&rows, SortKey::Wait), [1, 4, 2, 3, 5]);
        assert_eq!(sorted_tids(&rows, SortKey::Runs), [4, 1, 2, 3, 5]);
        assert_eq!(sorted_tids(&rows, SortKey::Migrations), [1, 2, 3, 4, 5]);
        assert_eq!(sorted_tids(&rows, SortKey::Level), [1, 2, 4, 3, 5]);
        assert_eq!(sorted_tids(&rows, SortKey::Priority), [5, 1, 4, 2, 3]);
        assert_eq!(sorted_tids(&rows, SortKey::Tid), [1, 2, 3, 4, 5]);
    }

    #[test]
    fn keys_sort_or_quit() {
        let press = |code, modifiers| action(KeyEvent::new(code, modifiers));
        let none = KeyModifiers::NONE;
        for (letter, key) in SortKey::BY_LETTER {
            assert_eq!(press(KeyCode::Char(letter), none), Some(Action::Sort(key)));
        }
        assert_eq!(press(KeyCode::Char('q'), none), Some(Action::Quit));
        assert_eq!(press(KeyCode::Esc, none), Some(Action::Quit));
        assert_eq!(
            press(KeyCode::Char('c'), KeyModifiers::CONTROL),
            Some(Action::Quit)
        );
        assert_eq!(press(KeyCode::Char('w'), KeyModifiers::CONTROL), None);
        assert_eq!(press(KeyCode::Char('x'), none), None);
        assert_eq!(press(KeyCode::Up, none), None);
    }

    #[test]
    fn threads_are_counted_on_their_level_with_those_waiting() {
        let on = |level, waiting| ThreadRow {
            level,
            waiting,
            ..ThreadRow::default()
        };
        assert_eq!(
            threads_per_level(&[on(0, 1), on(3, 0), on(0, 0), on(1, 1), on(0, 1)], 4),
            [(3, 2), (1, 1), (0, 0), (1, 0)]
        );
        assert_eq!(threads_per_level(&[], 2), [(0, 0), (0, 0)]);
    }

    /// The default tunables, but 3 mlfq levels.
    fn three_levels() -> settings::Tunables {
        let three = settings::Given::from([(settings::LEVELS, settings::Value::One(3))]);
        settings::Tunables::resolve(&three, &settings::Given::new()).unwrap()
    }

    fn metrics(policy_switches: u64, level_runs: Vec<u64>) -> Metrics {
        Metrics {
            policy: "mlfq".into(),
            tunables: three_levels(),
            policy_switches,
            level_runs,
            ..Metrics::default()
        }
    }

    #[test]
    fn header_and_levels_show_rates_from_the_second_poll() {
        let (mut before, mut now) = two_polls(
            vec![],
            vec![
                ThreadRow {
                    level: 2,
                    ..thread(1, "a")
                },
                ThreadRow {
                    waiting: 1,
                    ..thread(2, "b")
                },
                thread(3, "c"),
            ],
        );
        before.metrics = Metrics {
            idle_dispatches: 100,
            shared_dispatches: 50,
            boosts: 4,
            ..metrics(1, vec![10, 0, 0])
        };
        now.metrics = Metrics {
            idle_dispatches: 300,
            shared_dispatches: 60,
            cpu_queued: 20,
            preemptions: 9,
            boosts: 6,
            llc_migrations: 5,
            ..metrics(2, vec![50, 7, 1])
        };
        let interval = Interval::between(&before, &now);
        assert_eq!(
            header_lines(&now.metrics, Some(&interval)),
            [
                "tunables  slice_us 20000  mlfq_levels 3  boost_ms 1000  prio_aging_ms 10  \
                 priority_inheritance 1",
                "per s     dispatch 115.0  preempt 4.5  steal 0.0  refill 0.0",
                "per s     xllc 2.5  boost 1.0  switch 0.5  pushed 0.0",
            ]
        );
        assert_eq!(
            level_rows(&now, Some(&interval)),
            [
                ["0", "1000", "2", "1", "20.0"],
                ["1", "2000", "0", "0", "3.5"],
                ["2", "4000", "1", "0", "0.5"],
            ]
        );
        // The first poll: tunables and thread counts, no rates.
        assert_eq!(
            header_lines(&now.metrics, None)[1..],
            [
                "per s     dispatch   preempt   steal   refill ",
                "per s     xllc   boost   switch   pushed ",
            ]
        );
        assert_eq!(level_rows(&now, None)[0], ["0", "1000", "2", "1", ""]);
    }

    #[test]
    fn thread_cells_follow_the_columns() {
        let row = TableRow {
            thread: ThreadRow {
                level: 3,
                priority: 19,
                ..thread(4242, "Web Content")
            },
            rates: rates(99.95, 0.04, 1234.0, 2.26),
        };
        assert_eq!(
            thread_cells(&row),
            [
                "4242",
                "Web Content",
                "3",
                "19",
                "-1",
                "100.0",
                "0.0",
                "1234.0",
                "2.3"
            ]
        );
        assert_eq!(
            thread_cells(&TableRow { rates: None, ..row })[5..],
            ["", "", "", ""]
        );
        assert_eq!(
            SortKey::BY_LETTER.map(|(_, key)| THREAD_COLUMNS[key.column()].title),
            ["CPU%", "WAIT%", "RUNS/s", "MIGR/s", "LVL", "PRIO", "TID"]
        );
    }

    /// The screen as text, one string per line.
    fn render(width: u16, height: u16, before: &Poll, now: &Poll, sort: SortKey) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal
            .draw(|frame| draw(frame, Some(before), now, sort))
            .unwrap();
        let buffer = terminal.backend().buffer();
        (0..height)
            .map(|y| (0..width).map(|x| buffer[(x, y)].symbol()).collect())
            .collect()
    }

    #[test]
    fn an_80_column_screen_shows_the_policy_levels_and_the_busiest_threads_first() {
        let busy = |tid, comm: &str, runtime_ns| ThreadRow {
            runtime_ns,
            ..thread(tid, comm)
        };
        let (mut before, mut now) = two_polls(
            vec![busy(1, "idler", 0), busy(2, "spinner", 0)],
            vec![
                busy(1, "idler", 20_000_000),
                busy(2, "spinner", 1_900_000_000),
            ],
        );
        before.metrics = metrics(0, vec![0, 0, 0]);
        now.metrics = metrics(0, vec![8, 0, 0]);
        assert_eq!(
            render(80, 16, &before, &now, SortKey::Cpu),
            [
                "┌ scx_llmos top: policy mlfq ──────────────────────────────────────────────────┐",
                "│tunables  slice_us 20000  mlfq_levels 3  boost_ms 1000  prio_aging_ms 10  prio│",
                "│per s     dispatch 0.0  preempt 0.0  steal 0.0  refill 0.0                    │",
                "│per s     xllc 0.0  boost 0.0  switch 0.0  pushed 0.0                         │",
                "└──────────────────────────────────────────────────────────────────────────────┘",
                "┌ mlfq levels ─────────────────────────────────────────────────────────────────┐",
                "│LEVEL SLICE_US THREADS WAITING     RUNS/s                                     │",
                "│    0     1000       2       0        4.0                                     │",
                "│    1     2000       0       0        0.0                                     │",
                "│    2     4000       0       0        0.0                                     │",
                "└──────────────────────────────────────────────────────────────────────────────┘",
                "┌ 2 threads, sorted by CPU% (keys c w r m l p t; q quits) ─────────────────────┐",
                "│    TID COMM            LVL PRIO GRP   CPU%  WAIT%   RUNS/s  MIGR/s           │",
                "│      2 spinner           0    0  -1   95.0    0.0      0.0     0.0           │",
                "│      1 idler             0    0  -1    1.0    0.0      0.0     0.0           │",
                "└──────────────────────────────────────────────────────────────────────────────┘",
            ]
        );
        let by_tid = render(80, 16, &before, &now, SortKey::Tid);
        assert!(by_tid.iter().any(|line| line.contains("sorted by TID")));
        let position = |text| by_tid.iter().position(|line| line.contains(text));
        assert!(position("idler") < position("spinner"));
    }
}
