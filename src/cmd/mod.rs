pub mod check;
pub mod cluster;
pub mod doctor;
pub mod heal;
mod nodes;
pub mod quote;
pub mod report;
pub mod test;
pub mod verdict;
