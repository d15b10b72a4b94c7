//! A TCP proxy between flowlet and the broker that injects network faults: latency on every
//! chunk, connections dropped (reset on both sides), and a black hole (connections stay open,
//! nothing goes through either way) until the next mode.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does to traffic.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Pass,
    /// Each chunk waits this long before it is passed on.
    Latency(Duration),
    /// Nothing passes (held, not dropped) until the mode changes.
    BlackHole,
}

#[derive(Default)]
struct Shared {
    mode: Option<Mode>,
    /// Both ends of every open connection (to drop them).
    open: Vec<TcpStream>,
    /// Whether the proxy is closed (the listener stops).
    closed: bool,
}

pub struct Proxy {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
}

impl Proxy {
    /// Listen on `port` and pass connections on to `127.0.0.1:upstream`.
    pub fn start(port: u16, upstream: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the proxy");
        let shared = Arc::new(Mutex::new(Shared {
            mode: Some(Mode::Pass),
            ..Default::default()
        }));
        let s = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.lock().unwrap().closed {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                {
                    let mut g = s.lock().unwrap();
                    g.open.push(client.try_clone().unwrap());
                    g.open.push(server.try_clone().unwrap());
                }
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let s = s.clone();
                    std::thread::spawn(move || pump(from, to, &s));
                }
            }
        });
        Self { port, shared }
    }

    pub fn set(&self, mode: Mode) {
        self.shared.lock().unwrap().mode = Some(mode);
    }

    /// Reset every open connection (clients reconnect through the proxy).
    pub fn drop_connections(&self) {
        let open = std::mem::take(&mut self.shared.lock().unwrap().open);
        for c in open {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.lock().unwrap().closed = true;
        self.drop_connections();
        // Wake the listener so that it sees `closed`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, shared: &Mutex<Shared>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        loop {
            let mode = shared.lock().unwrap().mode;
            match mode {
                Some(Mode::BlackHole) => std::thread::sleep(Duration::from_millis(20)),
                Some(Mode::Latency(d)) => {
                    std::thread::sleep(d);
                    break;
                }
                _ => break,
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
