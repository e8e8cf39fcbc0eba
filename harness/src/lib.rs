//! Control of shakedown's hosts: SSH ([`control`]), local test hosts in
//! network namespaces ([`local`]), faults ([`nemesis`], [`schedule`]),
//! daemons on nodes ([`daemon`]), the runner ([`lifecycle`], [`runner`]),
//! the store ([`store`]), heal and doctor. ARCHITECTURE.md has the map.

/// A line to stderr that never panics (a closed stderr drops it): a run
/// must go on to its heal whatever happens to the terminal.
macro_rules! say_err {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($t)*);
    }};
}

pub mod companions;
pub mod control;
pub mod daemon;
pub mod doctor;
pub mod fake;
pub mod lifecycle;
pub mod local;
pub mod needs;
pub mod nemesis;
pub mod nodes;
pub mod pidfile;
pub mod progress;
pub mod results;
pub mod runner;
pub mod schedule;
pub mod signals;
pub mod store;
pub mod system;
pub mod testing;
pub mod watch;
