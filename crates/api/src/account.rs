//! `/2016-08-19/account-settings`: the account's limits and usage.

use axum::response::Response;

use crate::ApiError;
use crate::call::{Call, ok};

pub async fn settings(c: Call) -> Result<Response, ApiError> {
    ok(c.control().account_settings(c.scope()).await?)
}
