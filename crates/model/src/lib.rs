//! Lambent's domain model: the vocabulary every other crate speaks.
//!
//! Nothing here does I/O or knows HTTP or SQL. Types parse and validate at the
//! edge (`FunctionName::parse`, `FunctionRef::parse`, ...) so that the rest of the
//! code holds values that are known to be well formed.

pub mod arn;
pub mod destination;
pub mod function;
pub mod layer;
pub mod limits;
pub mod names;
pub mod resolve;
pub mod time_fmt;
pub mod url;
pub mod vpc;

pub use arn::{FunctionArn, Scope};
pub use destination::{Destination, DestinationError};
pub use function::{
    Alias, EventInvokeConfig, FunctionConfig, FunctionRecord, PackageType, Policy, PolicyStatement,
    ProvisionedConfig, Weight,
};
pub use layer::{LayerRecord, LayerVersion};
pub use names::{AccountId, FunctionName, FunctionRef, NameError, Qualifier, Region};
pub use resolve::{FunctionNotFound, RefError, resolve_ref};
pub use url::{Cors, FunctionUrlConfig, InvokeMode, UrlAuthType, UrlBase};
