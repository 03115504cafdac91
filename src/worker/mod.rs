//! Background workers: the [`scheduler`] (static, one per cluster) and the [`run`] worker (dynamic, one per
//! sync run), and the [`wake`]-up that tells the scheduler about new work at commit.

pub mod oneoff;
pub mod run;
pub mod scheduler;
pub mod wake;
