// SPDX-License-Identifier: GPL-2.0
//! The control channel of a running scx_llmos: a Unix socket that only root
//! can open, one request line per connection and one reply back.
//! `scx_llmos ctl ...` is the client; the scheduler's run loop serves it.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use log::warn;

/// Where the scheduler listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/scx_llmos.sock";

/// How long either side waits for the other; a switch settles in ~10 ms.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// and serves connections on a thread that hands requests to `next`.
    pub fn bind(path: &Path) -> Result<Self> {
        // A socket left by a scheduler that was killed: nothing listens on it.
        if path.exists() && UnixStream::connect(path).is_err() {
            std::fs::remove_file(path)
                .with_context(|| format!("cannot remove the stale {}", path.display()))?;
        }
        // The umask closes the window between bind() and chmod().
        // SAFETY: umask() only swaps the process's file mode mask.
        let old_mask = unsafe { libc::umask(0o177) };
        let bound = UnixListener::bind(path);
        // SAFETY: as above, restoring the previous mask.
        unsafe { libc::umask(old_mask) };
        let listener = bound.with_context(|| format!("cannot listen on {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;

        let (sender, requests) = mpsc::channel();
        std::thread::Builder::new()
            .name("ctl".into())
            .spawn(move || serve(listener, sender))?;
        Ok(Self {
            path: path.to_path_buf(),
            requests,
        })
    }

    /// The next request, waiting at most `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<Request> {
        self.requests.recv_timeout(timeout).ok()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(listener: UnixListener, requests: Sender<Request>) {
    for stream in listener.incoming() {
        let served = stream
            .map_err(anyhow::Error::from)
            .and_then(|stream| serve_one(stream, &requests));
        if let Err(err) = served {
            warn!("control request failed: {err:#}");
        }
    }
}

fn serve_one(mut stream: UnixStream, requests: &Sender<Request>) -> Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut command = String::new();
    BufReader::new(&stream).read_line(&mut command)?;
    let (reply, replies) = mpsc::channel();
    requests.send(Request {
        command: command.trim().to_string(),
        reply,
    })?;
    let text = replies
        .recv_timeout(IO_TIMEOUT)
        .unwrap_or_else(|_| "error: the scheduler did not answer".into());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_reply_round_trip_on_an_owner_only_socket() {
        let dir = std::env::temp_dir().join(format!("llmos-ctl-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
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
            let request = listener.next(Duration::from_secs(5)).unwrap();
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
}
