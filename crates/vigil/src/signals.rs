//! Work that runs until it ends or Ctrl-C / SIGTERM asks it to stop.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;

/// Runs `work` on its own thread with a stop flag that Ctrl-C or SIGTERM sets
/// (saying so on stderr, prefixed by `name`); returns what `work` returned once it
/// has ended, whether by itself or on request.
pub fn run_until_stopped<T: Send>(
    name: &str,
    work: impl FnOnce(&AtomicBool) -> T + Send,
) -> anyhow::Result<T> {
    run_serving_until_stopped(name, std::future::pending(), work)
}

/// [`run_until_stopped`], with `background` (an HTTP server) running beside
/// `work` until it ends.
pub fn run_serving_until_stopped<T: Send>(
    name: &str,
    background: impl Future<Output = ()> + Send + 'static,
    work: impl FnOnce(&AtomicBool) -> T + Send,
) -> anyhow::Result<T> {
    let stop = AtomicBool::new(false);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal handler")?;
    let outcome = std::thread::scope(|scope| {
        let (done, ended) = tokio::sync::oneshot::channel::<()>();
        let stop = &stop;
        let worker = scope.spawn(move || {
            let outcome = work(stop);
            let _ = done.send(());
            outcome
        });
        runtime.block_on(async {
            let server = tokio::spawn(background);
            let terminate = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => eprintln!("{name}: stopping (interrupt)"),
                () = terminate => eprintln!("{name}: stopping (terminate)"),
                _ = ended => {}
            }
            server.abort();
        });
        stop.store(true, Ordering::Relaxed);
        worker.join()
    });
    match outcome {
        Ok(outcome) => Ok(outcome),
        Err(_) => anyhow::bail!("{name}: the worker thread panicked"),
    }
}
