//! Which worker thread serves a new connection: the one with the fewest open connections.
//!
//! Pingora spawns each accepted connection's task on a random worker runtime. With one runtime
//! per thread and no stealing, a random split of a few dozen kept-alive connections leaves one
//! thread with a sixth more than the other often enough, and that thread's queue sets the
//! latency of all of its connections while the other idles. Each worker registers its runtime
//! the first time it is handed a connection; [`place`] then picks the least busy one (the
//! current one on a tie, which costs no hop).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::runtime::Handle;

/// A worker thread's runtime and its open client connections.
pub struct Worker {
    runtime: Handle,
    open: AtomicUsize,
}

impl Worker {
    /// The runtime to serve a connection placed here on.
    pub fn runtime(&self) -> &Handle {
        &self.runtime
    }
}

/// An open connection counted on its worker for as long as this lives.
pub struct Placed {
    /// The worker it was placed on.
    pub worker: Arc<Worker>,
    /// Whether that is the worker it was accepted onto.
    pub here: bool,
}

impl Drop for Placed {
    fn drop(&mut self) {
        self.worker.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every worker that has been handed a connection so far.
static WORKERS: Mutex<Vec<Arc<Worker>>> = Mutex::new(Vec::new());

thread_local! {
    /// The calling worker thread, once registered.
    static THIS: std::cell::OnceCell<Registered> = const { std::cell::OnceCell::new() };
}

/// A worker in [`WORKERS`] for as long as its thread lives (its runtime ends with it).
struct Registered(Arc<Worker>);

impl Drop for Registered {
    fn drop(&mut self) {
        lock().retain(|worker| !Arc::ptr_eq(worker, &self.0));
    }
}

/// Places a new connection accepted onto the calling worker thread (whose runtime is `runtime`):
/// on the worker with the fewest open connections, this one on a tie.
pub fn place(runtime: &Handle) -> Placed {
    let this = THIS.with(|this| {
        let registered = this.get_or_init(|| {
            let worker = Arc::new(Worker {
                runtime: runtime.clone(),
                open: AtomicUsize::new(0),
            });
            lock().push(Arc::clone(&worker));
            Registered(worker)
        });
        Arc::clone(&registered.0)
    });
    choose(this, &lock())
}

/// A connection counted on the worker of `workers` with the fewest open connections; on `this`
/// unless another has fewer.
fn choose(this: Arc<Worker>, workers: &[Arc<Worker>]) -> Placed {
    let open = |worker: &Arc<Worker>| worker.open.load(Ordering::Relaxed);
    let placed = match workers.iter().min_by_key(|w| open(w)) {
        Some(least) if open(least) < open(&this) => Placed {
            worker: Arc::clone(least),
            here: false,
        },
        _ => Placed {
            worker: this,
            here: true,
        },
    };
    placed.worker.open.fetch_add(1, Ordering::Relaxed);
    placed
}

fn lock() -> std::sync::MutexGuard<'static, Vec<Arc<Worker>>> {
    WORKERS.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_connection_goes_to_the_least_busy_worker_and_stays_on_a_tie() {
        let worker = |open| {
            Arc::new(Worker {
                runtime: Handle::current(),
                open: AtomicUsize::new(open),
            })
        };
        let (this, other) = (worker(3), worker(3));
        let workers = [Arc::clone(&this), Arc::clone(&other)];
        let tie = choose(Arc::clone(&this), &workers);
        assert!(tie.here, "a tie stays here");
        assert_eq!(this.open.load(Ordering::Relaxed), 4, "counted while open");
        drop(tie);
        assert_eq!(
            this.open.load(Ordering::Relaxed),
            3,
            "and no longer once closed"
        );
        other.open.store(2, Ordering::Relaxed);
        let placed = choose(Arc::clone(&this), &workers);
        assert!(!placed.here && Arc::ptr_eq(&placed.worker, &other));
        assert_eq!(other.open.load(Ordering::Relaxed), 3);
    }
}
