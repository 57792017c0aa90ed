//! Connection setup over TCP: [`connect`] (`dmsg_connect`, STATE.md §8.1,
//! extended to IPv6 and explicit ports) and a listener that serves every
//! accepted connection on a node.

use super::{Node, ServeOptions, ServiceHandle};
use crate::wire::LISTEN_PORT;
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long [`connect`] tries each address.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn bad(host: &str, why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {why}"))
}

/// Splits `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 literal
/// (`::1`) into the host and the port (default [`LISTEN_PORT`], 987).
///
/// ```
/// use dmsg::service::split_host_port;
/// assert_eq!(split_host_port("example").unwrap(), ("example".into(), 987));
/// assert_eq!(split_host_port("10.0.0.1:99").unwrap(), ("10.0.0.1".into(), 99));
/// assert_eq!(split_host_port("[::1]:99").unwrap(), ("::1".into(), 99));
/// assert_eq!(split_host_port("fe80::1").unwrap(), ("fe80::1".into(), 987));
/// assert!(split_host_port("host:http").is_err());
/// ```
pub fn split_host_port(host: &str) -> io::Result<(String, u16)> {
    let port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| bad(host, &format!("bad port {p:?}")))
    };
    if host.is_empty() {
        return Err(bad(host, "empty host name"));
    }
    if let Some(rest) = host.strip_prefix('[') {
        let (h, tail) = rest
            .split_once(']')
            .ok_or_else(|| bad(host, "missing ']'"))?;
        if h.is_empty() {
            return Err(bad(host, "empty address"));
        }
        return match tail {
            "" => Ok((h.to_owned(), LISTEN_PORT)),
            t => match t.strip_prefix(':') {
                Some(p) => Ok((h.to_owned(), port(p)?)),
                None => Err(bad(host, "junk after ']'")),
            },
        };
    }
    match host.matches(':').count() {
        0 => Ok((host.to_owned(), LISTEN_PORT)),
        1 => {
            let (h, p) = host.split_once(':').ok_or_else(|| bad(host, "bad host"))?;
            if h.is_empty() {
                return Err(bad(host, "empty host name"));
            }
            Ok((h.to_owned(), port(p)?))
        }
        // More than one colon: an IPv6 literal without brackets or port.
        _ => Ok((host.to_owned(), LISTEN_PORT)),
    }
}

/// `dmsg_connect`: connects to `host` (see [`split_host_port`] for the
/// forms; names are resolved, every address is tried in turn, IPv4 and
/// IPv6) with [`CONNECT_TIMEOUT`] per address. The stream has `TCP_NODELAY`
/// set. Errors name the host.
pub fn connect(host: &str) -> io::Result<TcpStream> {
    connect_timeout(host, CONNECT_TIMEOUT)
}

/// [`connect`] with a chosen timeout per address.
pub fn connect_timeout(host: &str, timeout: Duration) -> io::Result<TcpStream> {
    connect_unless(host, timeout, || false)
}

/// How often a connect in progress asks whether to give up.
const GIVE_UP_CHECK: Duration = Duration::from_millis(20);

/// [`connect_timeout`] that also gives up, with an
/// [`io::ErrorKind::Interrupted`] error, soon after `give_up` returns true
/// (it is asked every 20 ms while a connection is being set up; resolving
/// the name is not interrupted).
pub fn connect_unless(
    host: &str,
    timeout: Duration,
    give_up: impl Fn() -> bool,
) -> io::Result<TcpStream> {
    let named = |e: io::Error| io::Error::new(e.kind(), format!("{host}: {e}"));
    let (h, port) = split_host_port(host)?;
    let addrs = (h.as_str(), port).to_socket_addrs().map_err(named)?;
    let mut last = None;
    for a in addrs {
        match connect_addr(a, timeout, &give_up) {
            Ok(s) => {
                s.set_nodelay(true).map_err(named)?;
                return Ok(s);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(named(e)),
            Err(e) => last = Some(e),
        }
    }
    Err(named(last.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, "no address found")
    })))
}

/// One address of [`connect_unless`]: a non-blocking connect, then waits
/// for it to finish in steps of [`GIVE_UP_CHECK`].
fn connect_addr(
    a: SocketAddr,
    timeout: Duration,
    give_up: &impl Fn() -> bool,
) -> io::Result<TcpStream> {
    use rustix::net::{sockopt, AddressFamily, SocketFlags, SocketType};
    let family = if a.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    match rustix::net::connect(&fd, &a) {
        Ok(()) => {}
        Err(rustix::io::Errno::INPROGRESS) | Err(rustix::io::Errno::INTR) => {
            let deadline = Instant::now() + timeout;
            loop {
                if give_up() {
                    return Err(io::Error::new(
                        io::ErrorKind::Interrupted,
                        "connect given up",
                    ));
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connection timed out",
                    ));
                }
                let step = left.min(GIVE_UP_CHECK);
                let ts = Timespec {
                    tv_sec: 0,
                    tv_nsec: i64::from(step.subsec_nanos()),
                };
                let mut fds = [PollFd::new(&fd, PollFlags::OUT)];
                match poll(&mut fds, Some(&ts)) {
                    Ok(0) | Err(rustix::io::Errno::INTR) => continue,
                    Ok(_) => break,
                    Err(e) => return Err(e.into()),
                }
            }
            sockopt::socket_error(&fd)?.map_err(io::Error::from)?;
        }
        Err(e) => return Err(e.into()),
    }
    rustix::io::ioctl_fionbio(&fd, false)?;
    Ok(TcpStream::from(fd))
}

/// The accept loop started by [`Node::listen`]. Dropping it (or
/// [`ListenerHandle::stop`]) stops accepting; the links already served run
/// on.
pub struct ListenerHandle {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    services: Arc<Mutex<Vec<ServiceHandle>>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for ListenerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ListenerHandle {
    /// The address it listens on (with the port chosen when bound to 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The services of the connections accepted so far and still running
    /// when last looked at (ended ones are pruned at each accept); they
    /// are handed over and forgotten here.
    pub fn take_services(&self) -> Vec<ServiceHandle> {
        std::mem::take(&mut *self.services.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Stops accepting and waits for the accept thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ListenerHandle {
    fn drop(&mut self) {
        self.halt();
    }
}

/// How often the accept loop looks at its stop flag.
const ACCEPT_TICK: Timespec = Timespec {
    tv_sec: 0,
    tv_nsec: 50_000_000,
};

impl Node {
    /// Binds `addr` and serves every accepted connection on this node with
    /// the options `opts` makes for the peer's address (a thread per
    /// connection, as [`Node::serve`]).
    pub fn listen(
        &self,
        addr: impl ToSocketAddrs,
        opts: impl Fn(SocketAddr) -> ServeOptions + Send + 'static,
    ) -> io::Result<ListenerHandle> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let services = Arc::new(Mutex::new(Vec::new()));
        let (node, stop2, services2) = (self.clone(), Arc::clone(&stop), Arc::clone(&services));
        let thread = std::thread::Builder::new()
            .name(format!("dmsg-listen-{}", local.port()))
            .spawn(move || accept_loop(&node, &listener, &stop2, &services2, &opts))?;
        Ok(ListenerHandle {
            addr: local,
            stop,
            services,
            thread: Some(thread),
        })
    }
}

fn accept_loop(
    node: &Node,
    listener: &TcpListener,
    stop: &AtomicBool,
    services: &Mutex<Vec<ServiceHandle>>,
    opts: &dyn Fn(SocketAddr) -> ServeOptions,
) {
    while !stop.load(Ordering::Acquire) {
        let mut fds = [PollFd::new(listener, PollFlags::IN)];
        if poll(&mut fds, Some(&ACCEPT_TICK)).is_err() {
            continue;
        }
        match listener.accept() {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                if let Ok(h) = node.serve(stream, opts(peer)) {
                    let mut list = services.lock().unwrap_or_else(PoisonError::into_inner);
                    list.retain(|s| !s.is_finished());
                    list.push(h);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Out of fds and the like: back off instead of spinning.
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}
