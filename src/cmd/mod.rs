pub mod check;
pub mod cluster;
pub mod doctor;
