use futures::StreamExt;
use opsdesk_domain::audit::{AuditRecord, ChainError, ChainVerifier};

use crate::{Actor, Desk, Error, Result};

/// The result of walking an intact chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifySummary {
    pub entries: i64,
    pub head_hash: String,
}

/// Why verification did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Broken(#[from] ChainError),
    #[error(transparent)]
    Failed(#[from] Error),
}

impl Desk {
    /// Walks the whole audit chain, checking every entry's seq, link and hash.
    pub async fn verify_audit(&self) -> Result<VerifySummary, VerifyError> {
        let head = self.db().audit_head().await.map_err(Error::from)?;
        let mut verifier = ChainVerifier::default();
        let mut stream = self.db().audit_stream();
        while let Some(record) = stream.next().await {
            verifier.push(&record.map_err(Error::from)?)?;
        }
        verifier.finish(head.seq)?;
        Ok(VerifySummary {
            entries: verifier.checked(),
            head_hash: verifier.last_hash().to_owned(),
        })
    }

    /// A page of the whole trail, for admins and auditors.
    pub async fn audit_page(
        &self,
        actor: &Actor,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditRecord>> {
        actor.require(opsdesk_domain::Permission::ReadAudit)?;
        Ok(self.db().audit_page(after, limit).await?)
    }

    /// Every entry in seq order, for export.
    pub fn audit_records(&self) -> impl futures::Stream<Item = Result<AuditRecord>> + Send + '_ {
        self.db().audit_stream().map(|r| r.map_err(Error::from))
    }
}
