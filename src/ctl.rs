// SPDX-License-Identifier: GPL-2.0
//! The control channel of a running scx_llmos: a Unix socket that only root
//! can open, one request line per connection and one reply back.
//! `scx_llmos ctl ...` is the client; the scheduler's run loop serves it.
//! `ControlRequest` is the wire format of the requests.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use crossbeam::channel::{self, Receiver, Sender};
use log::warn;

use crate::bpf_intf;
use crate::settings::{Assignment, Policy};

/// Where the scheduler listens unless told otherwise: in a directory only
/// root may enter.
pub const DEFAULT_SOCKET: &str = "/run/scx_llmos/ctl.sock";

/// How long either side waits for the other; a switch settles in ~10 ms.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest request line: the longest real one is a few dozen bytes.
const MAX_REQUEST: u64 = 4096;

/// Clients served at once; more are told to come back. Each waits at most
/// IO_TIMEOUT for its request line, so a silent one holds a place briefly
/// and never blocks the others.
const MAX_CLIENTS: usize = 16;

/// One request from a client, answered with `reply`.
pub struct Request {
    pub command: String,
    reply: Sender<String>,
}

impl Request {
    pub fn reply(self, text: String) {
        // The client may have given up waiting; nothing is lost then.
        let _ = self.reply.send(text);
    }
}

/// The listening socket; its file is removed on drop.
pub struct Listener {
    path: PathBuf,
    requests: Receiver<Request>,
}

impl Listener {
    /// Creates the socket, readable and writable by its owner (root) only,
    /// in a directory that only its owner may write (created mode 0700 if
    /// missing), and serves connections on a thread that hands requests to
    /// `requests`. Refuses a path where something other than a socket exists.
    pub fn bind(path: &Path) -> Result<Self> {
        let umask = lock_umask();
        let dir = path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        ensure_private_dir(dir)?;
        match std::fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_socket() => bail!(
                "{} exists and is not a socket: refusing to replace it (give --ctl-socket another path)",
                path.display()
            ),
            // A socket left by a scheduler that was killed: nothing listens on it.
            Ok(_) if UnixStream::connect(path).is_err() => std::fs::remove_file(path)
                .with_context(|| format!("cannot remove the stale {}", path.display()))?,
            _ => {}
        }
        // The socket is created mode 0600 through the umask: bind() creates
        // it, and a chmod() by path afterwards could follow a symlink.
        let bound = under_umask(&umask, 0o177, || UnixListener::bind(path));
        let listener = bound.with_context(|| format!("cannot listen on {}", path.display()))?;

        let (sender, requests) = channel::unbounded();
        std::thread::Builder::new()
            .name("ctl".into())
            .spawn(move || serve(listener, sender))?;
        Ok(Self {
            path: path.to_path_buf(),
            requests,
        })
    }

    /// The clients' requests, in the order they came.
    pub fn requests(&self) -> &Receiver<Request> {
        &self.requests
    }
}

/// The umask is the process's: no other thread may create files while it is
/// changed, or see a directory half made.
fn lock_umask() -> MutexGuard<'static, ()> {
    static UMASK: Mutex<()> = Mutex::new(());
    UMASK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `create` with the umask `mask`, which the held lock keeps ours.
fn under_umask<T>(
    _held: &MutexGuard<'static, ()>,
    mask: libc::mode_t,
    create: impl FnOnce() -> T,
) -> T {
    // SAFETY: umask() only swaps the process's file mode mask.
    let old_mask = unsafe { libc::umask(mask) };
    let created = create();
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old_mask) };
    created
}

/// Runs `create` with the umask 077, so that the directories and sockets it
/// creates are its owner's (root's) alone.
pub fn owner_only<T>(create: impl FnOnce() -> T) -> T {
    under_umask(&lock_umask(), 0o077, create)
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Creates @dir mode 0700, or checks that the existing one is a directory
/// (not a symlink) of ours that nobody else may write: in a directory others
/// can write, they could swap the socket for something else.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => return Ok(()),
        Err(err) if err.kind() == ErrorKind::AlreadyExists => {}
        Err(err) => {
            return Err(err).with_context(|| format!("cannot create {}", dir.display()));
        }
    }
    let meta =
        std::fs::symlink_metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    // SAFETY: geteuid() has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if !meta.is_dir() || meta.uid() != euid || meta.permissions().mode() & 0o022 != 0 {
        bail!(
            "refusing to put a socket in {}: it must be a directory owned by uid {euid} that others cannot write",
            dir.display()
        );
    }
    Ok(())
}

/// The uid of the process at the other end of @stream.
fn peer_uid(stream: &UnixStream) -> Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt() writes at most `len` bytes to `cred`, which is a
    // ucred as SO_PEERCRED expects.
    let err = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if err != 0 {
        return Err(std::io::Error::last_os_error()).context("SO_PEERCRED");
    }
    Ok(cred.uid)
}

fn serve(listener: UnixListener, requests: Sender<Request>) {
    let clients = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let mut stream = match stream {
            Ok(stream) => stream,
            Err(err) => {
                warn!("control connection failed: {err}");
                continue;
            }
        };
        if clients.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
            clients.fetch_sub(1, Ordering::SeqCst);
            let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
            let _ = stream.write_all(b"error: busy: too many control clients at once\n");
            continue;
        }
        let (requests, clients) = (requests.clone(), clients.clone());
        let spawned = std::thread::Builder::new()
            .name("ctl-client".into())
            .spawn(move || {
                if let Err(err) = serve_one(stream, &requests) {
                    warn!("control request failed: {err:#}");
                }
                clients.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(err) = spawned {
            warn!("cannot serve a control client: {err}");
        }
    }
}

fn serve_one(mut stream: UnixStream, requests: &Sender<Request>) -> Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    // SAFETY: geteuid() has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let uid = peer_uid(&stream)?;
    if uid != euid && uid != 0 {
        stream.write_all(b"error: only root may control scx_llmos\n")?;
        bail!("refused a client of uid {uid}");
    }
    let mut line = Vec::new();
    BufReader::new((&stream).take(MAX_REQUEST)).read_until(b'\n', &mut line)?;
    let text = if !line.ends_with(b"\n") && line.len() as u64 >= MAX_REQUEST {
        format!("error: request longer than {MAX_REQUEST} bytes")
    } else if let Ok(line) = String::from_utf8(line) {
        let (reply, replies) = channel::bounded(1);
        requests.send(Request {
            command: line.trim().to_string(),
            reply,
        })?;
        replies
            .recv_timeout(IO_TIMEOUT)
            .unwrap_or_else(|_| "error: the scheduler did not answer".into())
    } else {
        "error: the request is not UTF-8".into()
    };
    stream.write_all(text.as_bytes())?;
    stream.write_all(b"\n")?;
    Ok(())
}

/// Sends one command to the scheduler listening on `path`; returns its
/// reply, or the reply as an error if it starts with "error:".
pub fn send(path: &Path, command: &str) -> Result<String> {
    let mut stream = UnixStream::connect(path).map_err(|err| match err.kind() {
        ErrorKind::PermissionDenied => anyhow::anyhow!(
            "permission denied on {}: only root may control scx_llmos",
            path.display()
        ),
        ErrorKind::NotFound | ErrorKind::ConnectionRefused => anyhow::anyhow!(
            "scx_llmos is not running (nothing listens on {})",
            path.display()
        ),
        _ => anyhow::Error::new(err).context(format!("cannot connect to {}", path.display())),
    })?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(format!("{command}\n").as_bytes())?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    let reply = reply.trim_end().to_string();
    match reply.strip_prefix("error: ") {
        Some(reason) => bail!("{reason}"),
        None => Ok(reply),
    }
}

/// What `ctl inject-fault` asks the BPF scheduler to do, for tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Fault {
    Error,
    Restart,
    Stray,
}

impl Fault {
    fn name(self) -> String {
        self.to_possible_value()
            .map(|value| value.get_name().to_string())
            .unwrap_or_default()
    }

    pub fn bpf_id(self) -> u32 {
        match self {
            Fault::Error => bpf_intf::llmos_fault_LLMOS_FAULT_ERROR,
            Fault::Restart => bpf_intf::llmos_fault_LLMOS_FAULT_RESTART,
            Fault::Stray => bpf_intf::llmos_fault_LLMOS_FAULT_STRAY,
        }
    }
}

/// A request of the control socket: `line` writes it, `parse` reads it.
#[derive(Debug, PartialEq, Eq)]
pub enum ControlRequest {
    Policy(Policy),
    Set(Assignment),
    Reload,
    /// `status`, or `status json` for one JSON object.
    Status {
        json: bool,
    },
    InjectFault(Fault),
}

impl ControlRequest {
    /// The line sent over the socket.
    pub fn line(&self) -> String {
        match self {
            Self::Policy(policy) => format!("policy {}", policy.name()),
            Self::Set(assignment) => format!("set {}={}", assignment.key(), assignment.value),
            Self::Reload => "reload".into(),
            Self::Status { json: false } => "status".into(),
            Self::Status { json: true } => "status json".into(),
            Self::InjectFault(fault) => format!("inject-fault {}", fault.name()),
        }
    }

    /// Parses a line from a client, who may send anything: the error is one
    /// line that the client gets back.
    pub fn parse(command: &str) -> Result<Self> {
        Self::parse_line(command).map_err(crate::config::one_line)
    }

    fn parse_line(command: &str) -> Result<Self> {
        let (verb, arg) = command.split_once(' ').unwrap_or((command, ""));
        Ok(match verb {
            "policy" => Self::Policy(Policy::parse(arg.trim())?),
            "set" => Self::Set(Assignment::parse(arg.trim())?),
            "reload" if arg.trim().is_empty() => Self::Reload,
            "status" if arg.trim().is_empty() => Self::Status { json: false },
            "status" if arg.trim() == "json" => Self::Status { json: true },
            "inject-fault" => {
                Self::InjectFault(Fault::from_str(arg.trim(), false).map_err(|_| {
                    anyhow::anyhow!(
                        "unknown fault '{}' (expected error, restart or stray)",
                        arg.trim()
                    )
                })?)
            }
            _ => {
                bail!("unknown request '{command}' (expected policy, set, reload, status or inject-fault)")
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory for one test's socket, removed by the test.
    fn test_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("llmos-ctl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn refuses_to_replace_what_is_not_a_socket() {
        let dir = test_dir("not-a-socket");
        let file = dir.join("victim.txt");
        std::fs::write(&file, "keep me").unwrap();
        let link = dir.join("link.sock");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        for path in [&file, &link] {
            assert_eq!(
                Listener::bind(path).err().unwrap().to_string(),
                format!(
                    "{} exists and is not a socket: refusing to replace it (give --ctl-socket another path)",
                    path.display()
                )
            );
        }
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_a_directory_others_may_write_and_creates_a_private_one() {
        let dir = test_dir("shared-dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let err = Listener::bind(&dir.join("ctl.sock"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with(&format!("refusing to put a socket in {}", dir.display())),
            "{err}"
        );
        let private = dir.join("private");
        let listener = Listener::bind(&private.join("ctl.sock")).unwrap();
        let mode = std::fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(listener);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn long_requests_are_refused_and_silent_clients_block_nobody() {
        let dir = test_dir("hostile");
        let path = dir.join("ctl.sock");
        let listener = Listener::bind(&path).unwrap();

        // A client that connects and says nothing holds no one up.
        let _silent = UnixStream::connect(&path).unwrap();
        let client = {
            let path = path.clone();
            std::thread::spawn(move || send(&path, "status"))
        };
        // Served one at a time, the request would come after the silent
        // client's 5 s timeout.
        let request = listener
            .requests()
            .recv_timeout(Duration::from_secs(3))
            .expect("request behind a silent client");
        assert_eq!(request.command, "status");
        request.reply("ok: policy mlfq".into());
        assert_eq!(client.join().unwrap().unwrap(), "ok: policy mlfq");

        // A request line without end is cut off, and nothing reaches the scheduler.
        let mut long = UnixStream::connect(&path).unwrap();
        long.write_all(&[b'x'; MAX_REQUEST as usize]).unwrap();
        let mut reply = String::new();
        long.read_to_string(&mut reply).unwrap();
        assert_eq!(reply, "error: request longer than 4096 bytes\n");
        let mut binary = UnixStream::connect(&path).unwrap();
        binary.write_all(b"\xff\xfe\n").unwrap();
        reply.clear();
        binary.read_to_string(&mut reply).unwrap();
        assert_eq!(reply, "error: the request is not UTF-8\n");
        assert!(listener
            .requests()
            .recv_timeout(Duration::from_millis(100))
            .is_err());
        drop(listener);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn request_and_reply_round_trip_on_an_owner_only_socket() {
        let dir = test_dir("round-trip");
        let path = dir.join("ctl.sock");
        let listener = Listener::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let client = {
            let path = path.clone();
            std::thread::spawn(move || {
                (
                    send(&path, "policy prio"),
                    send(&path, "policy lottery").unwrap_err().to_string(),
                )
            })
        };
        for answer in ["ok: policy prio", "error: unknown policy 'lottery'"] {
            let request = listener
                .requests()
                .recv_timeout(Duration::from_secs(5))
                .unwrap();
            assert!(answer.contains(request.command.split(' ').nth(1).unwrap()));
            request.reply(answer.into());
        }
        let (ok, err) = client.join().unwrap();
        assert_eq!(ok.unwrap(), "ok: policy prio");
        assert_eq!(err, "unknown policy 'lottery'");

        drop(listener);
        assert!(!path.exists());
        assert_eq!(
            send(&path, "status").unwrap_err().to_string(),
            format!(
                "scx_llmos is not running (nothing listens on {})",
                path.display()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn request_lines_round_trip() {
        let requests = [
            ControlRequest::Policy(Policy::Fifo),
            ControlRequest::Set(Assignment::parse("mlfq_slices_us=500,1000").unwrap()),
            ControlRequest::Reload,
            ControlRequest::Status { json: false },
            ControlRequest::Status { json: true },
            ControlRequest::InjectFault(Fault::Stray),
        ];
        let lines: Vec<String> = requests.iter().map(ControlRequest::line).collect();
        assert_eq!(
            lines,
            [
                "policy fifo",
                "set mlfq_slices_us=500,1000",
                "reload",
                "status",
                "status json",
                "inject-fault stray"
            ]
        );
        for (request, line) in requests.iter().zip(&lines) {
            assert_eq!(&ControlRequest::parse(line).unwrap(), request);
        }
        assert_eq!(
            ControlRequest::parse("reboot").unwrap_err().to_string(),
            "unknown request 'reboot' (expected policy, set, reload, status or inject-fault)"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Whatever a client sends, the reply is a request carried out or
        /// one line saying why not.
        #[test]
        fn hostile_control_requests(
            verb in "policy|set|status|inject-fault|[a-z]{0,8}|\\PC{0,8}",
            arg in "[a-z_=0-9,]{0,24}|[\\x00-\\x1f a-z]{0,12}|\\PC{0,24}",
        ) {
            let line = format!("{verb} {arg}");
            match ControlRequest::parse(&line) {
                Ok(ControlRequest::Policy(policy)) => proptest::prop_assert_eq!(policy.name(), arg.trim()),
                Ok(ControlRequest::Set(tunable)) => proptest::prop_assert!(arg.trim().starts_with(tunable.key())),
                Ok(ControlRequest::Status { .. }) => proptest::prop_assert_eq!(verb.as_str(), "status"),
                Ok(ControlRequest::Reload) => proptest::prop_assert_eq!(verb.as_str(), "reload"),
                Ok(ControlRequest::InjectFault(_)) => proptest::prop_assert_eq!(verb.as_str(), "inject-fault"),
                Err(err) => {
                    let text = err.to_string();
                    proptest::prop_assert!(!text.is_empty() && !text.contains(['\n', '\r']), "{text:?}");
                }
            }
        }
    }
}
