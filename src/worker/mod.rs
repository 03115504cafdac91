//! Background workers: the [`scheduler`] (static, one per cluster) and the [`run`] worker (dynamic, one per
//! sync run), the [`oneoff`] worker of a waiting caller, [`on_event`] scripts in either, and the [`wake`]-up
//! that tells the scheduler about new work at commit.

pub mod on_event;
pub mod oneoff;
pub mod run;
pub mod scheduler;
pub mod wake;
