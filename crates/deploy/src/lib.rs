//! `lambent deploy`: SAM templates deployed natively through the server's own
//! Lambda API, as `sam deploy` is a client of AWS's.
//!
//! [`yaml`] reads a template (YAML with CloudFormation's short-form tags, or
//! JSON); [`template`] holds its parts and evaluates the intrinsic functions;
//! [`resources`] turns resources into Lambda API fields and refuses what is
//! not supported by name; [`build`] builds code like `sam build`; [`package`]
//! zips it deterministically; [`apply`] compares each resource with the
//! server's and changes only what differs; [`lambda`] is the API client.

pub mod apply;
pub mod build;
pub mod lambda;
pub mod package;
pub mod resources;
pub mod template;
pub mod triggers;
pub mod yaml;

pub use apply::{
    Action, DeployError, Options, Progress, Summary, Terminal, deploy, destroy, watch,
};
pub use lambda::Lambda;
