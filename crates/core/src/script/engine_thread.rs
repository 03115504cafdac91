//! The engine's thread: one per thread that runs scripts (a run worker's main thread), kept from run to
//! run with its tokio runtime, so a run does not pay for starting either. It takes one run at a time; the
//! thread that submitted the run serves its host calls meanwhile (see [`super::deferred`]).

use std::cell::{OnceCell, RefCell};
use std::sync::mpsc::{self, SendError, Sender};

use crate::records::batch::with_signals_blocked;

/// Work for the engine's thread; returns false when the thread should not take more (it panicked).
pub type Job = Box<dyn FnOnce() -> bool + Send>;

/// The engine thread's stack: QuickJS may use [`super::JS_STACK_SIZE`] of it, Rust code called from JS
/// the rest.
const STACK_SIZE: usize = 8 << 20;

thread_local! {
    /// Where this thread sends its runs; `None` before the first, and after a run panicked.
    static ENGINE: RefCell<Option<Sender<Job>>> = const { RefCell::new(None) };
    /// On the engine's thread: the runtime its runs share.
    static ASYNC_RUNTIME: OnceCell<tokio::runtime::Runtime> = const { OnceCell::new() };
}

/// Hands `job` to this thread's engine thread, starting one if there is none (or the last one ended).
pub fn submit(job: Job) -> Result<(), String> {
    ENGINE.with(|engine| {
        let mut engine = engine.borrow_mut();
        let job = match engine.as_ref() {
            Some(jobs) => match jobs.send(job) {
                Ok(()) => return Ok(()),
                Err(SendError(job)) => job,
            },
            None => job,
        };
        let (jobs, received) = mpsc::channel::<Job>();
        with_signals_blocked(|| {
            std::thread::Builder::new()
                .name("pg_nango script".into())
                .stack_size(STACK_SIZE)
                .spawn(move || {
                    for job in received {
                        if !job() {
                            return;
                        }
                    }
                })
        })
        .map_err(|e| format!("could not start the script's thread: {e}"))?;
        jobs.send(job)
            .map_err(|_| "the script's thread stopped at once".to_string())?;
        *engine = Some(jobs);
        Ok(())
    })
}

/// Forgets this thread's engine thread, after one of its runs panicked: the next run starts a new one.
pub fn forget() {
    ENGINE.with(|engine| engine.borrow_mut().take());
}

/// Runs `work` on the engine thread's tokio runtime (built on its first run).
pub fn block_on<T>(work: impl std::future::Future<Output = T>) -> Result<T, String> {
    ASYNC_RUNTIME.with(|tokio| {
        let tokio = match tokio.get() {
            Some(tokio) => tokio,
            None => {
                let built = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("could not start the async runtime: {e}"))?;
                tokio.get_or_init(|| built)
            }
        };
        Ok(tokio.block_on(work))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Submits a job that reports its thread and says whether the thread may take more.
    fn thread_of(sound: bool) -> std::thread::ThreadId {
        let (done, thread) = mpsc::channel();
        submit(Box::new(move || {
            let _ = done.send(std::thread::current().id());
            sound
        }))
        .unwrap();
        thread.recv().unwrap()
    }

    #[test]
    fn runs_share_one_thread_until_one_panics() {
        let first = thread_of(true);
        assert_ne!(first, std::thread::current().id());
        assert_eq!(thread_of(true), first);
        // A run that panicked: the thread takes no more, and the next run starts another.
        assert_eq!(thread_of(false), first);
        forget();
        let next = thread_of(true);
        assert_ne!(next, first);
        assert_eq!(thread_of(true), next);
    }
}
