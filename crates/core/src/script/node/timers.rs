//! The clock under `setTimeout`, `setInterval` and `setImmediate`: `sleep(id, ms)` is an async host function
//! whose promise settles after `ms` on the run's tokio runtime (`true`), or at once when `cancel(id)` is
//! called (`false`). The JavaScript side calls the callback when the promise settles with `true`.
//!
//! A sleeping timer is a future spawned on the QuickJS runtime: the run's deadline covers it like any other
//! wait, and it is dropped with the runtime when the run ends.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use rquickjs::prelude::Async;
use rquickjs::{Ctx, Function, Object, Result};
use tokio::sync::oneshot;

/// Node's largest delay (2^31 - 1 ms); longer delays become 1 ms there, which the JavaScript side does.
const MAX_DELAY_MS: f64 = 2_147_483_647.0;

/// Registers `sleep` and `cancel` on `native`.
pub(super) fn register<'js>(ctx: &Ctx<'js>, native: &Object<'js>) -> Result<()> {
    let pending: Rc<RefCell<HashMap<u32, oneshot::Sender<()>>>> = Rc::default();
    let sleeping = pending.clone();
    native.set(
        "sleep",
        Function::new(
            ctx.clone(),
            Async(move |id: u32, ms: f64| {
                let pending = sleeping.clone();
                async move {
                    let (cancel, cancelled) = oneshot::channel();
                    pending.borrow_mut().insert(id, cancel);
                    let ms = if ms.is_nan() {
                        0.0
                    } else {
                        ms.clamp(0.0, MAX_DELAY_MS)
                    };
                    let fired = tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs_f64(ms / 1000.0)) => true,
                        _ = cancelled => false,
                    };
                    pending.borrow_mut().remove(&id);
                    Ok::<bool, rquickjs::Error>(fired)
                }
            }),
        )?,
    )?;
    native.set(
        "cancel",
        Function::new(ctx.clone(), move |id: u32| {
            // Dropping the sender wakes the sleeper.
            pending.borrow_mut().remove(&id);
        })?,
    )?;
    Ok(())
}
