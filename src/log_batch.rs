//! The writer behind the log and the audit log. Lines are appended to a shared buffer
//! and written by one background thread, which, woken by the first line of a batch, waits
//! a few milliseconds before writing, so that the lines of many requests share one
//! `write(2)` and one wake-up instead of costing each request a wake-up of the writer
//! (a `futex` call, a context switch and a `write`). A line appears at most `WINDOW`
//! later. Never lossy: a full buffer makes the request wait, and whatever is pending when
//! the process exits (pingora exits with `std::process::exit`) is written by an `atexit`
//! handler.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

/// How long the writer lets a batch fill once its first line came.
const WINDOW: Duration = Duration::from_millis(5);

/// Pending bytes at most; beyond, requests wait for the writer.
const MAX_PENDING: usize = 4 << 20;

/// One destination (stdout, a file), shared by its writer thread and its handles.
#[derive(Clone)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// The writer waits here for a batch's first line.
    wake: Condvar,
    /// Requests wait here while the buffer is full.
    drained: Condvar,
    out: Mutex<Box<dyn Write + Send>>,
}

struct State {
    pending: Vec<u8>,
    /// The writer waits on `wake`: the next line must wake it (only then).
    writer_waiting: bool,
}

/// Every destination, for the exit handler.
static ALL: OnceLock<Mutex<Vec<Arc<Shared>>>> = OnceLock::new();

impl BatchWriter {
    /// A writer to `out` with its own background thread, named `thread`.
    pub fn spawn(out: Box<dyn Write + Send>, thread: &str) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                pending: Vec::with_capacity(64 * 1024),
                writer_waiting: false,
            }),
            wake: Condvar::new(),
            drained: Condvar::new(),
            out: Mutex::new(out),
        });
        let for_thread = shared.clone();
        std::thread::Builder::new()
            .name(thread.to_owned())
            .spawn(move || write_batches(&for_thread))?;
        let all = ALL.get_or_init(|| {
            register_exit_handler();
            Mutex::default()
        });
        if let Ok(mut all) = all.lock() {
            all.push(shared.clone());
        }
        Ok(BatchWriter { shared })
    }
}

impl Write for BatchWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let shared = &self.shared;
        let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        while state.pending.len() >= MAX_PENDING {
            state = shared
                .drained
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        state.pending.extend_from_slice(line);
        if state.writer_waiting {
            state.writer_waiting = false;
            drop(state);
            shared.wake.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchWriter {
    type Writer = BatchWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn write_batches(shared: &Shared) {
    let mut batch = Vec::with_capacity(64 * 1024);
    loop {
        {
            let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            while state.pending.is_empty() {
                state.writer_waiting = true;
                state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        }
        std::thread::sleep(WINDOW);
        take_and_write(shared, &mut batch);
    }
}

/// Writes what is pending, in the order it came.
fn take_and_write(shared: &Shared, batch: &mut Vec<u8>) {
    // The output is held from taking to writing, so batches never overtake each other.
    let mut out = shared.out.lock().unwrap_or_else(|e| e.into_inner());
    {
        let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::swap(&mut state.pending, batch);
        if batch.len() >= MAX_PENDING {
            shared.drained.notify_all();
        }
    }
    let _ = out.write_all(batch);
    let _ = out.flush();
    batch.clear();
}

fn register_exit_handler() {
    extern "C" fn write_pending() {
        let Some(all) = ALL.get() else { return };
        let Ok(all) = all.try_lock() else { return };
        let mut batch = Vec::new();
        for shared in all.iter() {
            take_and_write(shared, &mut batch);
        }
    }
    // SAFETY: `write_pending` is a plain function that lives as long as the process.
    unsafe {
        libc::atexit(write_pending);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A destination the test can read.
    #[derive(Clone, Default)]
    struct Collected(Arc<Mutex<Vec<u8>>>);

    impl Write for Collected {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_from_many_threads_arrive_whole_and_in_each_threads_order() {
        let collected = Collected::default();
        let writer = BatchWriter::spawn(Box::new(collected.clone()), "test-log").unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        writer.write_all(format!("{t} {i}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let text = loop {
            let text = String::from_utf8(collected.0.lock().unwrap().clone()).unwrap();
            if text.lines().count() == 2000 || std::time::Instant::now() > deadline {
                break text;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(text.lines().count(), 2000);
        for t in 0..4 {
            let own: Vec<usize> = text
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("{t} ")))
                .map(|i| i.parse().unwrap())
                .collect();
            assert_eq!(own, (0..500).collect::<Vec<_>>());
        }
    }
}
