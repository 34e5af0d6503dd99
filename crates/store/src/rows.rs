//! Many rows read as one on SQLite: a query folds them into one JSON array with
//! `json_group_array(json_array(...))`, decoded here into a struct whose fields follow the
//! column order. Why: docs/storage.md, "Folded reads (SQLite)".

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::{Result, StoreError};

/// Decodes the JSON array of rows `what` came back as.
pub(crate) fn decode<T: DeserializeOwned>(what: &str, all: &str) -> Result<Vec<T>> {
    serde_json::from_str(all).map_err(|e| StoreError::Corrupt(format!("unreadable {what}: {e}")))
}

/// A boolean column: SQLite keeps booleans as 0 and 1.
pub(crate) fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Int(i64),
    }
    Ok(match Flag::deserialize(d)? {
        Flag::Bool(b) => b,
        Flag::Int(i) => i != 0,
    })
}
