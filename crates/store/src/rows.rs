//! Many rows read as one, on SQLite.
//!
//! sqlx hands each row of a SQLite query over from the connection's own thread, one at a
//! time, and the reading task wakes for each. Where a query returns hundreds of rows (a page
//! of an export, a group of tickets being ingested), SQLite folds them into one JSON array
//! with `json_group_array(json_array(...))` and the reader decodes them in one go, into a
//! struct whose fields follow the column order.

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
