//! workloads: see ARCHITECTURE.md.
