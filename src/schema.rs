//! JSON Schemas of the policy and plan formats, generated with schemars. The
//! checked-in copies under schema/ are compared with these by a test.

use crate::plan::LaunchPlan;
use crate::policy::RawPolicy;

/// The policy format's schema, pretty JSON.
pub fn policy_schema() -> String {
    serde_json::to_string_pretty(&schemars::schema_for!(RawPolicy)).expect("schemas serialise")
}

/// The plan format's schema, pretty JSON.
pub fn plan_schema() -> String {
    serde_json::to_string_pretty(&schemars::schema_for!(LaunchPlan)).expect("schemas serialise")
}
