//! Progress on long runs: a bar on stderr when it is a terminal (indicatif draws nothing
//! otherwise), fed by the counters the source and the action keep anyway.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::source::SourceStats;

#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

struct Inner {
    bar: ProgressBar,
    matched: AtomicU64,
    stats: Arc<SourceStats>,
}

impl Progress {
    pub fn new(stats: Arc<SourceStats>, total_bytes: Option<u64>) -> Self {
        let bar = match total_bytes {
            Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta}) {msg}")
                    .expect("a valid template"),
            ),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template("{spinner} {bytes} read ({bytes_per_sec}) {msg}")
                    .expect("a valid template"),
            ),
        };
        let progress = Self {
            inner: Arc::new(Inner {
                bar,
                matched: AtomicU64::new(0),
                stats,
            }),
        };
        if !progress.inner.bar.is_hidden() {
            let weak = Arc::downgrade(&progress.inner);
            std::thread::spawn(move || {
                while let Some(inner) = weak.upgrade() {
                    if inner.bar.is_finished() {
                        break;
                    }
                    inner.bar.set_position(inner.stats.bytes.load(Ordering::Relaxed));
                    inner.bar.set_message(format!(
                        "{} events read, {} rejected, {} matched",
                        inner.stats.records(),
                        inner.stats.rejected(),
                        inner.matched.load(Ordering::Relaxed)
                    ));
                    drop(inner);
                    std::thread::sleep(Duration::from_millis(150));
                }
            });
        }
        progress
    }

    pub fn add_matched(&self, n: u64) {
        self.inner.matched.fetch_add(n, Ordering::Relaxed);
    }

    pub fn matched(&self) -> u64 {
        self.inner.matched.load(Ordering::Relaxed)
    }

    pub fn finish(&self) {
        self.inner.bar.finish_and_clear();
    }
}
