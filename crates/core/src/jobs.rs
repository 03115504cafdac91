//! A job's statuses and the error types a failed run reports, in one place: the values `nango.jobs.status`
//! holds (its CHECK constraint lists the same five) and the `error.type` of `nango.jobs.error` and of
//! failure notifications, as Nango names them. (`sql/api.sql` writes `script_aborted` itself when it
//! cancels a run or deletes a connection.)

use serde::{Deserialize, Serialize};

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    Queued,
    Running,
    Success,
    Error,
    Cancelled,
}

impl JobStatus {
    /// Every status, in the order a job passes through them.
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Success,
        JobStatus::Error,
        JobStatus::Cancelled,
    ];

    /// As `nango.jobs.status` holds it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "QUEUED",
            JobStatus::Running => "RUNNING",
            JobStatus::Success => "SUCCESS",
            JobStatus::Error => "ERROR",
            JobStatus::Cancelled => "CANCELLED",
        }
    }
}

/// Why a run failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorType {
    /// The script threw.
    #[serde(rename = "script_error")]
    Script,
    /// A request through the proxy failed for good (after its retries).
    #[serde(rename = "script_http_error")]
    ScriptHttp,
    /// The run went past its time limit.
    #[serde(rename = "execution_timeout")]
    ExecutionTimeout,
    /// The run went past its memory limit.
    #[serde(rename = "script_out_of_memory")]
    OutOfMemory,
    /// The run was cancelled (`nango.cancel_sync`).
    #[serde(rename = "script_aborted")]
    Aborted,
    /// An action threw an `ActionError`: its payload is the error.
    #[serde(rename = "action_script_runtime_error")]
    ActionRuntime,
    /// Not the script's doing: the run could not be set up or ended (a bug, or a damaged installation).
    #[serde(rename = "script_internal_error")]
    Internal,
    /// The run's process ended without ending the job (killed, or the server restarted).
    #[serde(rename = "worker_crashed")]
    WorkerCrashed,
}

impl ErrorType {
    /// Every error type.
    pub const ALL: [ErrorType; 8] = [
        ErrorType::Script,
        ErrorType::ScriptHttp,
        ErrorType::ExecutionTimeout,
        ErrorType::OutOfMemory,
        ErrorType::Aborted,
        ErrorType::ActionRuntime,
        ErrorType::Internal,
        ErrorType::WorkerCrashed,
    ];

    /// As jobs and notifications name it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Script => "script_error",
            ErrorType::ScriptHttp => "script_http_error",
            ErrorType::ExecutionTimeout => "execution_timeout",
            ErrorType::OutOfMemory => "script_out_of_memory",
            ErrorType::Aborted => "script_aborted",
            ErrorType::ActionRuntime => "action_script_runtime_error",
            ErrorType::Internal => "script_internal_error",
            ErrorType::WorkerCrashed => "worker_crashed",
        }
    }

    /// The status a job that failed so ends in: CANCELLED when it was cancelled, else ERROR.
    pub fn final_status(self) -> JobStatus {
        match self {
            ErrorType::Aborted => JobStatus::Cancelled,
            _ => JobStatus::Error,
        }
    }
}

impl std::fmt::Display for ErrorType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_same_in_json_and_in_sql() {
        for error in ErrorType::ALL {
            assert_eq!(
                serde_json::to_value(error).unwrap(),
                serde_json::json!(error.as_str())
            );
        }
        for status in JobStatus::ALL {
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        assert_eq!(ErrorType::Aborted.final_status(), JobStatus::Cancelled);
        assert_eq!(ErrorType::Internal.final_status(), JobStatus::Error);
    }
}
