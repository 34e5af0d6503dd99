use futures::StreamExt;
use opsdesk_domain::audit::{Anchor, AuditRecord, ChainError, ChainVerifier};

use crate::{Actor, Desk, Error, Result};

/// The result of walking an intact chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifySummary {
    pub entries: i64,
    /// The last entry's seq and hash: keep them outside the database as an anchor.
    pub head_seq: i64,
    pub head_hash: String,
    /// How many anchors were checked (all matched).
    pub anchors: usize,
}

impl VerifySummary {
    /// The head as an anchor to check against later.
    pub fn head_anchor(&self) -> Anchor {
        Anchor {
            seq: self.head_seq,
            hash: self.head_hash.clone(),
        }
    }
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
        self.verify_audit_anchored(&[]).await
    }

    /// Walks the whole audit chain, checking every entry's seq, link and hash over its stored
    /// text, and that each anchored entry still has its anchored hash.
    pub async fn verify_audit_anchored(
        &self,
        anchors: &[Anchor],
    ) -> Result<VerifySummary, VerifyError> {
        let head = self.db().audit_head().await.map_err(Error::from)?;
        let mut verifier = ChainVerifier::with_anchors(anchors);
        let mut stream = self.db().audit_stored_stream();
        while let Some(entry) = stream.next().await {
            verifier.push_stored(&entry.map_err(Error::from)?)?;
        }
        verifier.finish(head.seq)?;
        Ok(VerifySummary {
            entries: verifier.checked(),
            head_seq: verifier.checked(),
            head_hash: verifier.last_hash().to_owned(),
            anchors: anchors.len(),
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

/// Appends an audit entry about something other than a ticket (configuration kept in the
/// database), inside `tx`.
pub(crate) async fn record(
    tx: &mut opsdesk_store::Tx,
    actor: &crate::Actor,
    at: chrono::DateTime<chrono::Utc>,
    action: &str,
    changes: opsdesk_domain::audit::Changes,
) -> crate::Result<()> {
    tx.append_audit(opsdesk_domain::audit::AuditEntry {
        at,
        actor: actor.name.clone(),
        action: action.to_owned(),
        ticket_id: None,
        changes,
    })
    .await?;
    Ok(())
}

/// One change of a whole object: `field` went from `before` to `after`.
pub(crate) fn whole(
    field: &str,
    before: serde_json::Value,
    after: serde_json::Value,
) -> opsdesk_domain::audit::Changes {
    opsdesk_domain::audit::Changes::from([(
        field.to_owned(),
        opsdesk_domain::audit::FieldChange { before, after },
    )])
}
