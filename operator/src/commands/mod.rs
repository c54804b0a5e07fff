pub mod audit;
pub mod db;
pub mod dev;
pub mod keys;
pub mod phi;
pub mod users;
