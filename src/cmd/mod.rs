pub mod check;
pub mod cluster;
