//! SIGINT and SIGTERM during a run: counted, never fatal.
//!
//! The first asks the run to stop (clients stop, faults are healed, logs
//! fetched, results written, exit 130); the second skips fetching logs.
//! The heal is never skipped. The handler only bumps an atomic counter,
//! which is async-signal-safe; everything else polls [`count`].

use std::sync::atomic::{AtomicUsize, Ordering};

static COUNT: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    COUNT.fetch_add(1, Ordering::SeqCst);
}

/// Installs the counting handler for SIGINT and SIGTERM.
pub fn install() {
    // SAFETY: the handler only touches an atomic; sigaction with an empty
    // mask and SA_RESTART is the documented way to install it.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
    }
}

/// How many SIGINT/SIGTERM arrived since [`install`].
pub fn count() -> usize {
    COUNT.load(Ordering::SeqCst)
}

/// Whether the run was asked to stop.
pub fn interrupted() -> bool {
    count() > 0
}
