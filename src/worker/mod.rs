//! Background workers: the [`scheduler`] (static, one per cluster) and the [`run`] worker (dynamic, one per
//! sync run).

pub mod run;
pub mod scheduler;
