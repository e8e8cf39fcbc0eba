//! Seeded history generator (see below).
