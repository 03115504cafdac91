//! The `nango.*` settings. `nango.database` is read at server start; the others on reload (SIGHUP).

use std::ffi::CString;
use std::time::Duration;

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

pub static DATABASE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"postgres"));
pub static MAX_CONCURRENT_SYNCS: GucSetting<i32> = GucSetting::<i32>::new(4);
pub static NOTIFY_CHANNEL: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"nango"));
pub static MIN_FREQUENCY: GucSetting<i32> = GucSetting::<i32>::new(30);
pub static SCRIPT_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(86400);
pub static ACTION_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(900);
pub static SCRIPT_MEMORY_LIMIT: GucSetting<i32> = GucSetting::<i32>::new(256);
pub static HTTP_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(30);
pub static RETRY_BASE_DELAY: GucSetting<i32> = GucSetting::<i32>::new(3000);
pub static ALLOWED_HOSTS: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c""));
pub static MAX_RECORD_SIZE: GucSetting<i32> = GucSetting::<i32>::new(16);
pub static MAX_RESPONSE_SIZE: GucSetting<i32> = GucSetting::<i32>::new(256);
pub static MAX_LOGS_PER_RUN: GucSetting<i32> = GucSetting::<i32>::new(10000);
pub static JOB_RETENTION: GucSetting<i32> = GucSetting::<i32>::new(30);

/// Registers every setting; called from `_PG_init`.
pub fn define() {
    GucRegistry::define_string_guc(
        c"nango.database",
        c"Database the pg_nango scheduler serves.",
        c"Syncs run only for the pg_nango extension of this database. Takes effect at server start.",
        &DATABASE,
        GucContext::Postmaster,
        GucFlags::SUPERUSER_ONLY,
    );
    let int = |name, short, setting, default_range: (i32, i32), context, flags| {
        GucRegistry::define_int_guc(
            name,
            short,
            c"",
            setting,
            default_range.0,
            default_range.1,
            context,
            flags,
        )
    };
    int(
        c"nango.max_concurrent_syncs",
        c"How many sync runs may be in progress at once.",
        &MAX_CONCURRENT_SYNCS,
        (1, 256),
        GucContext::Sighup,
        GucFlags::default(),
    );
    int(
        c"nango.min_frequency",
        c"Smallest runs: interval accepted by nango.deploy.",
        &MIN_FREQUENCY,
        (1, 86400 * 31),
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    int(
        c"nango.script_timeout",
        c"Wall-clock limit of one sync run.",
        &SCRIPT_TIMEOUT,
        (1, i32::MAX),
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    int(
        c"nango.action_timeout",
        c"Wall-clock limit of one action.",
        &ACTION_TIMEOUT,
        (1, i32::MAX),
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    int(
        c"nango.script_memory_limit",
        c"JavaScript heap limit of one run.",
        &SCRIPT_MEMORY_LIMIT,
        (16, 65536),
        GucContext::Sighup,
        GucFlags::UNIT_MB,
    );
    int(
        c"nango.http_timeout",
        c"Time limit of one HTTP request made by a script.",
        &HTTP_TIMEOUT,
        (1, 86400),
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    int(
        c"nango.retry_base_delay",
        c"First backoff step of proxy retries; doubles up to 10 minutes.",
        &RETRY_BASE_DELAY,
        (0, 600_000),
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    int(
        c"nango.max_record_size",
        c"Largest record a batch accepts, as JSON text.",
        &MAX_RECORD_SIZE,
        (1, 1024),
        GucContext::Sighup,
        GucFlags::UNIT_MB,
    );
    int(
        c"nango.max_response_size",
        c"Largest HTTP response body a proxy call reads.",
        &MAX_RESPONSE_SIZE,
        (1, 1024),
        GucContext::Sighup,
        GucFlags::UNIT_MB,
    );
    int(
        c"nango.max_logs_per_run",
        c"Log rows one run may write; past it one row says how many were dropped.",
        &MAX_LOGS_PER_RUN,
        (1, i32::MAX),
        GucContext::Sighup,
        GucFlags::default(),
    );
    int(
        c"nango.job_retention",
        c"Days after which the scheduler deletes finished jobs and their logs.",
        &JOB_RETENTION,
        (1, 36500),
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"nango.allowed_hosts",
        c"Hosts a script may reach besides its provider's, even at private addresses.",
        c"Comma-separated host names or addresses, each with an optional :port.",
        &ALLOWED_HOSTS,
        GucContext::Sighup,
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_string_guc(
        c"nango.notify_channel",
        c"LISTEN channel of pg_nango's notifications.",
        c"",
        &NOTIFY_CHANNEL,
        GucContext::Sighup,
        GucFlags::default(),
    );
}

/// The scheduler's database.
pub fn database() -> String {
    DATABASE
        .get()
        .map_or_else(|| "postgres".into(), |c| c.to_string_lossy().into_owned())
}

/// The notification channel.
pub fn notify_channel() -> String {
    NOTIFY_CHANNEL
        .get()
        .map_or_else(|| "nango".into(), |c| c.to_string_lossy().into_owned())
}

pub fn min_frequency() -> Duration {
    Duration::from_secs(MIN_FREQUENCY.get().max(1) as u64)
}

/// Limits of a sync run (`action = false`) or an action.
pub fn script_limits(action: bool) -> pg_nango_core::script::Limits {
    let timeout = if action {
        ACTION_TIMEOUT.get()
    } else {
        SCRIPT_TIMEOUT.get()
    };
    pg_nango_core::script::Limits {
        timeout: Duration::from_secs(timeout.max(1) as u64),
        memory_bytes: (SCRIPT_MEMORY_LIMIT.get().max(16) as usize) << 20,
        http_timeout: Duration::from_secs(HTTP_TIMEOUT.get().max(1) as u64),
        retry_base_delay: Duration::from_millis(RETRY_BASE_DELAY.get().max(0) as u64),
        max_record_size: (MAX_RECORD_SIZE.get().max(1) as usize) << 20,
        max_response_size: (MAX_RESPONSE_SIZE.get().max(1) as usize) << 20,
        allowed_hosts: allowed_hosts(),
    }
}

/// `nango.allowed_hosts`, split at commas, trimmed, empty entries left out.
pub fn allowed_hosts() -> Vec<String> {
    ALLOWED_HOSTS
        .get()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default()
        .split(',')
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .collect()
}

/// `nango.max_logs_per_run`.
pub fn max_logs_per_run() -> usize {
    MAX_LOGS_PER_RUN.get().max(1) as usize
}

/// `nango.job_retention`.
pub fn job_retention() -> Duration {
    Duration::from_secs(JOB_RETENTION.get().max(1) as u64 * 86400)
}
