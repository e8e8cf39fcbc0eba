//! What the fault schedule watches of the clients, for power cuts
//! (`--nemesis lost-writes`, docs/lost-writes.md): a cut waits for the
//! clients' acknowledgements, so that it finds writes the system may not
//! have synced; each heal of a cut raises the workers' recovery epoch, so
//! that they read back what they wrote before it
//! ([`crate::runner::Generator::observe`]).

use crate::runner::Counters;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A power cut waits until the clients had this many acknowledged
/// operations since the last heal (the system serves again and has taken
/// writes) and one within [`CUT_AFTER_ACK`]: it then lands right after an
/// acknowledgement, inside any fsync window (Redis's appendfsync everysec
/// syncs once a second), where a system that acknowledges before it syncs
/// loses what it acknowledged.
pub const CUT_AFTER_OPS: u64 = 100;
pub const CUT_AFTER_ACK: Duration = Duration::from_millis(20);

/// The clients' counts and recovery epoch (see [`crate::runner::Workers`]).
pub struct ClientWatch {
    counters: Arc<Counters>,
    epoch: Arc<AtomicU64>,
    /// Acknowledged operations when the last heal ended.
    ok_at_heal: u64,
}

impl ClientWatch {
    pub fn new(counters: Arc<Counters>, epoch: Arc<AtomicU64>) -> ClientWatch {
        ClientWatch {
            ok_at_heal: counters.ok.load(Ordering::Relaxed),
            counters,
            epoch,
        }
    }

    fn ok(&self) -> u64 {
        self.counters.ok.load(Ordering::Relaxed)
    }

    /// Waits, until `deadline` or `stop`, for the moment to cut power (see
    /// [`CUT_AFTER_OPS`]). Whether that moment came.
    pub fn await_moment_to_cut(&self, deadline: Instant, stop: &AtomicBool) -> bool {
        let (mut last, mut last_at) = (self.ok(), Instant::now());
        while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
            let now = self.ok();
            if now != last {
                (last, last_at) = (now, Instant::now());
            }
            if now >= self.ok_at_heal + CUT_AFTER_OPS && last_at.elapsed() <= CUT_AFTER_ACK {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    /// A heal ended; `cut`: it healed a power cut (the workers read back).
    pub fn healed(&mut self, cut: bool) {
        self.ok_at_heal = self.ok();
        if cut {
            self.epoch.fetch_add(1, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_waits_for_acknowledgements_since_the_heal_and_heals_raise_the_epoch() {
        let (counters, epoch) = (Arc::new(Counters::default()), Arc::new(AtomicU64::new(0)));
        counters.ok.store(500, Ordering::Relaxed);
        let mut w = ClientWatch::new(counters.clone(), epoch.clone());
        let stop = AtomicBool::new(false);
        let soon = || Instant::now() + Duration::from_millis(50);
        // No acknowledgement since the watch began: no moment to cut.
        assert!(!w.await_moment_to_cut(soon(), &stop));
        let feeder = {
            let c = counters.clone();
            std::thread::spawn(move || {
                for _ in 0..2000 {
                    c.ok.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_micros(200));
                }
            })
        };
        assert!(w.await_moment_to_cut(Instant::now() + Duration::from_secs(30), &stop));
        assert!(counters.ok.load(Ordering::Relaxed) >= 500 + CUT_AFTER_OPS);
        feeder.join().unwrap();
        w.healed(false);
        assert_eq!(epoch.load(Ordering::Relaxed), 0);
        w.healed(true);
        assert_eq!(epoch.load(Ordering::Relaxed), 1);
        // Right after a heal, the clients have had nothing yet.
        assert!(!w.await_moment_to_cut(soon(), &stop));
    }
}
