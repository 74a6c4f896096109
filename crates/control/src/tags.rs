//! Tags on functions (`/2017-03-31/tags/{ARN}`).

use api_types as wire;
use model::Scope;
use model::arn::ResourceArn;
use model::names::ValidationErrors;

use crate::{Control, ControlError, function_not_found, validate};

impl Control {
    /// Resolves a taggable resource ARN to a function of the caller.
    fn tag_target(&self, scope: &Scope, raw: &str) -> Result<model::FunctionName, ControlError> {
        let ResourceArn::Function(arn) = ResourceArn::parse(raw).map_err(|pattern| {
            let mut v = ValidationErrors::new();
            v.push(
                "resource",
                raw,
                format!("Member must satisfy regular expression pattern: {pattern}"),
            );
            ControlError::Validation(v.into_result().err().unwrap_or_default())
        })?;
        if arn.qualifier.is_some() {
            return Err(ControlError::InvalidParameter(
                "Tags on function aliases and versions are not supported. Please specify a function ARN.".into(),
            ));
        }
        if arn.scope.account != scope.account {
            return Err(ControlError::AccessDenied(format!(
                "User: {} is not authorized to access resource: {raw}",
                scope.account_root()
            )));
        }
        if arn.scope.region != scope.region {
            return Err(ControlError::NotFound(format!(
                "Functions from '{}' are not reachable in this region ('{}')",
                arn.scope.region, scope.region
            )));
        }
        Ok(arn.name)
    }

    pub async fn tag_resource(
        &self,
        scope: &Scope,
        raw_arn: &str,
        req: wire::TagResourceRequest,
    ) -> Result<(), ControlError> {
        let name = self.tag_target(scope, raw_arn)?;
        let Some(tags) = req.tags else {
            let mut v = ValidationErrors::new();
            v.push_null("tags", "Member must not be null");
            return Err(ControlError::Validation(
                v.into_result().err().unwrap_or_default(),
            ));
        };
        if tags.is_empty() {
            return Err(ControlError::InvalidParameter(
                "An error occurred and the request cannot be processed.".into(),
            ));
        }
        validate::tags(&tags)?;
        self.modify(scope, &name, None, |rec| {
            let mut merged = rec.tags.clone();
            merged.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            validate::tags(&merged)?;
            rec.tags = merged;
            Ok(())
        })
        .await?;
        Ok(())
    }

    pub async fn untag_resource(
        &self,
        scope: &Scope,
        raw_arn: &str,
        keys: &[String],
    ) -> Result<(), ControlError> {
        let name = self.tag_target(scope, raw_arn)?;
        if keys.is_empty() {
            let mut v = ValidationErrors::new();
            v.push_null("tagKeys", "Member must not be null");
            return Err(ControlError::Validation(
                v.into_result().err().unwrap_or_default(),
            ));
        }
        self.modify(scope, &name, None, |rec| {
            for k in keys {
                rec.tags.remove(k);
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    pub async fn list_tags(
        &self,
        scope: &Scope,
        raw_arn: &str,
    ) -> Result<wire::ListTagsResponse, ControlError> {
        let name = self.tag_target(scope, raw_arn)?;
        let rec = self
            .store
            .get_function(scope, &name)
            .await?
            .ok_or_else(|| function_not_found(scope, &name, None))?;
        Ok(wire::ListTagsResponse {
            tags: rec.value.tags,
        })
    }
}
