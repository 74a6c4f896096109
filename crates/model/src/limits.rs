//! Lambda's published quotas, enforced by validation and the invoke path.

/// Memory a function may be given, in MB.
pub const MEMORY_MIN_MB: u32 = 128;
pub const MEMORY_MAX_MB: u32 = 10_240;
pub const MEMORY_DEFAULT_MB: u32 = 128;

/// Function timeout, in seconds.
pub const TIMEOUT_MIN_S: u32 = 1;
pub const TIMEOUT_MAX_S: u32 = 900;
pub const TIMEOUT_DEFAULT_S: u32 = 3;

/// `/tmp` size (EphemeralStorage), in MB.
pub const EPHEMERAL_MIN_MB: u32 = 512;
pub const EPHEMERAL_MAX_MB: u32 = 10_240;
pub const EPHEMERAL_DEFAULT_MB: u32 = 512;

/// Aggregate size of all environment variable names and values.
pub const ENV_VARS_MAX_BYTES: usize = 4 * 1024;

/// Deployment package limits.
pub const ZIP_MAX_BYTES: u64 = 50 * 1024 * 1024;
pub const UNZIPPED_MAX_BYTES: u64 = 250 * 1024 * 1024;

/// Synchronous invoke request and response payloads.
pub const SYNC_REQUEST_MAX_BYTES: usize = 6 * 1024 * 1024;
/// The response limit carries 100 bytes of slack, as Lambda's does.
pub const SYNC_RESPONSE_MAX_BYTES: usize = 6 * 1024 * 1024 + 100;
/// Asynchronous (`Event`) invoke payloads.
pub const ASYNC_REQUEST_MAX_BYTES: usize = 1024 * 1024;

/// `X-Amz-Log-Result` carries at most the last 4 KB of an invocation's log.
pub const LOG_TAIL_BYTES: usize = 4 * 1024;

/// Description length.
pub const DESCRIPTION_MAX_CHARS: usize = 256;

/// Handler string length.
pub const HANDLER_MAX_LEN: usize = 128;

/// Layers a function may reference.
pub const LAYERS_MAX: usize = 5;

/// Tags per resource.
pub const TAGS_MAX: usize = 50;

/// Default account concurrency on AWS; the platform picks its own default from
/// the machine (see `lambent serve --account-concurrency`).
pub const AWS_DEFAULT_ACCOUNT_CONCURRENCY: u32 = 1000;

/// The unreserved pool an account must keep when reserving concurrency.
pub const UNRESERVED_MIN: u32 = 100;

/// Init phase limit (extensions + runtime + function init).
pub const INIT_TIMEOUT_S: u32 = 10;

/// Environment variable keys Lambda reserves; a function may not set them.
pub const RESERVED_ENV_KEYS: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];
