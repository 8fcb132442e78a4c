//! The one helper every periodic background loop runs on: key reload, revocation-feed
//! polling, purging. Each loop stops when the shared stop signal fires, and a failed round
//! is logged and retried at the next tick — never the end of the loop.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Run `round` every `interval` (first at once) until `stop` turns `true` or is dropped.
/// A round that fails is logged under `name` and the loop goes on.
pub fn every<F, Fut, E>(
    name: &'static str,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
    mut round: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::fmt::Debug,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = round().await {
                        tracing::warn!(task = name, error = ?e, "background round failed; retrying at the next tick");
                    }
                }
                r = stop.changed() => {
                    if r.is_err() || *stop.borrow() {
                        break;
                    }
                }
            }
        }
    })
}
