//! A stand-in for a server that is down while its host still answers, to count how often
//! clients knock (reconnect storms, backoff).

use std::time::Duration;

/// Stands in for a broker that is down but whose address still answers (a host up, the service
/// not): accepts every TCP connection on `addr`, counts it and closes it at once. Stops, freeing
/// the port, when dropped.
#[derive(Debug)]
pub struct CountingListener {
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CountingListener {
    /// Listens on `addr`, retrying for up to 5 s while the port is still being released.
    pub fn bind(addr: std::net::SocketAddr) -> CountingListener {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        // The broker just let go of the port; binding may need a moment.
        let listener = (0..100)
            .find_map(|_| {
                std::net::TcpListener::bind(addr).ok().or_else(|| {
                    std::thread::sleep(Duration::from_millis(50));
                    None
                })
            })
            .unwrap_or_else(|| panic!("cannot listen on {addr} after the broker stopped"));
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let count = std::sync::Arc::new(AtomicUsize::new(0));
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (c, s) = (count.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        c.fetch_add(1, Ordering::Relaxed);
                        drop(stream);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        CountingListener { count, stop, thread: Some(thread) }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for CountingListener {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
