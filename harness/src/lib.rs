//! harness: see ARCHITECTURE.md.
