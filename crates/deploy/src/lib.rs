//! `lambent deploy`: SAM templates deployed natively through the server's own
//! Lambda API, as `sam deploy` is a client of AWS's.
//!
//! [`yaml`] reads a template (YAML with CloudFormation's short-form tags, or
//! JSON); [`template`] holds its parts and evaluates the intrinsic functions.

pub mod template;
pub mod yaml;
