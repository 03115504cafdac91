//! The native functions `sdk.js` is built over: `request` (a call through the provider proxy, answered
//! with a response object), `save` (checked records, written as batches), `log`, and `call` for the other
//! synchronous host calls ([`dispatch`]). Apart from the run flow, as the bridge between the engine's
//! values and the host's and the proxy's Rust ones.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use rquickjs::prelude::Async;
use rquickjs::{Ctx, Exception, Function, Object, Value};

use super::host::dispatch;
use super::{
    Host, SaveOp, ScriptRun, body, fresh_connection, http, json, sdk_calls, stringify, validate,
};
use crate::providers::{PreparedRequest, ProxyCall, build_request};

/// The native functions under `sdk.js`: `request` (async), `save`, `log`, and `call` for the other
/// synchronous host calls (see [`dispatch`]).
pub(super) fn host_functions<'js>(
    ctx: &Ctx<'js>,
    run: &ScriptRun,
    host: Rc<RefCell<dyn Host>>,
    client: Rc<http::HttpClient>,
) -> rquickjs::Result<Object<'js>> {
    let object = Object::new(ctx.clone())?;
    let connection = Rc::new(RefCell::new(run.connection.clone()));
    let refreshing = Rc::new(tokio::sync::Mutex::new(()));
    let proxy = Rc::new((
        run.provider.clone(),
        run.oauth_client.clone(),
        run.limits.retry_base_delay,
    ));
    let request_connection = connection.clone();
    sdk_calls::install(
        ctx,
        &object,
        run,
        host.clone(),
        client.clone(),
        connection.clone(),
        refreshing.clone(),
    )?;
    let max_response_size = run.limits.max_response_size;

    let request_host = host.clone();
    object.set(
        "request",
        Function::new(
            ctx.clone(),
            Async(move |ctx: Ctx<'js>, call_json: String| {
                let proxy = proxy.clone();
                let client = client.clone();
                let host = request_host.clone();
                let connection = request_connection.clone();
                let refreshing = refreshing.clone();
                async move {
                    // A write that failed already stops the script here; one still being made does not hold
                    // the request back.
                    let failed = host.borrow_mut().failed_write();
                    failed.map_err(|e| Exception::throw_message(&ctx, &e))?;
                    let (provider, oauth_client, base_delay) = &*proxy;
                    let call: ProxyCall = serde_json::from_str(&call_json)
                        .map_err(|e| Exception::throw_message(&ctx, &format!("invalid proxy configuration: {e}")))?;
                    let connection = fresh_connection(&client, provider, oauth_client.as_ref(), &connection, &refreshing, &host)
                        .await
                        .map_err(|e| Exception::throw_message(&ctx, &e))?;
                    let request = build_request(provider, &connection, &call).map_err(|e| Exception::throw_message(&ctx, &e.to_string()))?;
                    let sign = |request: &mut PreparedRequest| {
                        crate::providers::auth::sign_request(request, &connection, oauth_client.as_ref(), chrono::Utc::now())
                    };
                    let mut on_retry = |reason: &str, wait: Duration, attempt: u32| {
                        host.borrow_mut().log(
                            "warn",
                            &format!("Retrying HTTP call (reason: {reason}). Waiting for {}ms [{attempt}/{}]", wait.as_millis(), call.retries),
                            None,
                        );
                    };
                    host.borrow_mut().request_made();
                    let sent = http::send_with_retries(&client, &request, provider, &call, *base_delay, &sign, &mut on_retry).await;
                    let mut response = sent.map_err(|e| Exception::throw_message(&ctx, &e))?;
                    if call.decompress != Some(false) {
                        body::decompress(&mut response, max_response_size).map_err(|e| Exception::throw_message(&ctx, &e))?;
                    }
                    response_object(&ctx, response, body::ResponseType::parse(call.response_type.as_deref()))
                }
            }),
        )?,
    )?;

    let save_host = host.clone();
    let max_record_size = run.limits.max_record_size;
    // A batch's JSON text lives outside the JS heap (one string in the heap can be referenced by every
    // record of a batch): it is held to the same size as the heap.
    let max_batch_size = run.limits.memory_bytes;
    object.set(
        "save",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>,
                  op: String,
                  model: String,
                  records: rquickjs::Array<'js>|
                  -> rquickjs::Result<()> {
                let op = match op.as_str() {
                    "update" => SaveOp::Update,
                    "delete" => SaveOp::Delete,
                    _ => SaveOp::Save,
                };
                let checked = validate::checked_records(
                    &ctx,
                    op.method(),
                    &model,
                    &records,
                    &mut |warning| save_host.borrow_mut().log("warn", warning, None),
                )?;
                if checked.is_empty() {
                    return Ok(());
                }
                let build_jsonb = op == SaveOp::Save && save_host.borrow_mut().builds_jsonb(&model);
                let batch = stringify::record_batch(
                    &ctx,
                    (op, build_jsonb),
                    checked,
                    (max_record_size, max_batch_size),
                )?;
                // Where the script called, for the error of a write made later.
                let stack = Exception::from_message(ctx.clone(), "")?
                    .stack()
                    .unwrap_or_default();
                save_host
                    .borrow_mut()
                    .defer_save(op, &model, batch, stack)
                    .map_err(|e| Exception::throw_message(&ctx, &e))
            },
        )?,
    )?;

    let log_host = host.clone();
    object.set(
        "log",
        Function::new(
            ctx.clone(),
            move |level: String, message: String, payload: Option<String>| {
                let payload = payload.map(stringify::log_payload);
                log_host
                    .borrow_mut()
                    .log(&level, &message, payload.as_deref());
            },
        )?,
    )?;

    let call_host = host;
    object.set(
        "call",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, op: String, args: String| -> rquickjs::Result<String> {
                let connection = connection.borrow().clone();
                dispatch(&mut *call_host.borrow_mut(), &connection, &op, &args)
                    .map_err(|e| Exception::throw_message(&ctx, &e))
            },
        )?,
    )?;
    Ok(object)
}

/// `{status, headers, data}` with `data` as `response_type` asks: by default parsed as JSON by the engine
/// when it is JSON, else text; the bytes as a `Uint8Array` for `arraybuffer` and `stream` (which `sdk.js`
/// turns into an async iterable).
fn response_object<'js>(
    ctx: &Ctx<'js>,
    response: http::HttpResponse,
    response_type: body::ResponseType,
) -> rquickjs::Result<Object<'js>> {
    let object = Object::new(ctx.clone())?;
    object.set("status", response.status)?;
    let headers = Object::new(ctx.clone())?;
    let mut content_type = String::new();
    for (name, value) in &response.headers {
        if name == "content-type" {
            content_type = value.clone();
        }
        headers.set(name.as_str(), value.as_str())?;
    }
    object.set("headers", headers)?;
    let looks_json = content_type.contains("json")
        || matches!(
            response.body.iter().find(|b| !b.is_ascii_whitespace()),
            Some(b'{' | b'[')
        );
    let data: Value = if matches!(
        response_type,
        body::ResponseType::Bytes | body::ResponseType::Stream
    ) {
        sdk_calls::bytes_value(ctx, response.body)?
    } else if response.body.is_empty() && response_type == body::ResponseType::Json {
        Value::new_undefined(ctx.clone())
    } else if looks_json && response_type == body::ResponseType::Json {
        match json::parse(ctx, &response.body) {
            Ok(value) => value,
            Err(_) => {
                let _ = ctx.catch();
                rquickjs::String::from_str(ctx.clone(), &String::from_utf8_lossy(&response.body))?
                    .into_value()
            }
        }
    } else {
        rquickjs::String::from_str(ctx.clone(), &String::from_utf8_lossy(&response.body))?
            .into_value()
    };
    object.set("data", data)?;
    Ok(object)
}
