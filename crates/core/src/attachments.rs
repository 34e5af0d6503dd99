//! Files on tickets: checked against the desk's policy, kept by their SHA-256 in a file store
//! (a folder on disk, or S3 through the `aws` crate), recorded on the ticket with an audit
//! entry, and handed only to people who may see them, each download audited too.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use opsdesk_domain::attachment::{self, Attachment, AttachmentPolicy, AttachmentSource};
use opsdesk_domain::audit::{one_change, AuditEntry};
use opsdesk_domain::{Permission, Ticket};
use opsdesk_store::{NewAttachment, Tx};
use serde_json::{json, Value};

use crate::{Actor, Desk, Error, Result};

/// Why the file store failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("the stored file {0} is missing")]
    Missing(String),
    #[error("{0}")]
    Failed(String),
}

/// Where files' bytes are kept, by their hex SHA-256. Putting the same bytes twice is one
/// file.
#[async_trait::async_trait]
pub trait Blobs: Send + Sync {
    async fn put(&self, sha256: &str, bytes: &[u8]) -> Result<(), BlobError>;
    async fn get(&self, sha256: &str) -> Result<Vec<u8>, BlobError>;
    /// Where the files are, for logs and the admin page (`disk /var/lib/opsdesk/files`).
    fn describe(&self) -> String;
}

/// Files in a folder on this machine: `<dir>/ab/abcdef…` (the first two hex digits make the
/// subfolder). Written to a temporary file first and renamed, so a file is whole or absent.
pub struct LocalBlobs {
    dir: PathBuf,
}

impl LocalBlobs {
    pub fn new(dir: impl Into<PathBuf>) -> LocalBlobs {
        LocalBlobs { dir: dir.into() }
    }

    fn path(&self, sha256: &str) -> Result<PathBuf, BlobError> {
        if !attachment::is_digest(sha256) {
            return Err(BlobError::Failed(format!("`{sha256}` is not a file's key")));
        }
        Ok(self.dir.join(&sha256[..2]).join(sha256))
    }
}

fn io_error(what: &str, path: &std::path::Path, e: std::io::Error) -> BlobError {
    BlobError::Failed(format!("{what} {}: {e}", path.display()))
}

#[async_trait::async_trait]
impl Blobs for LocalBlobs {
    async fn put(&self, sha256: &str, bytes: &[u8]) -> Result<(), BlobError> {
        let path = self.path(sha256)?;
        if let Ok(meta) = tokio::fs::metadata(&path).await {
            if meta.len() == bytes.len() as u64 {
                return Ok(());
            }
        }
        let folder = path
            .parent()
            .ok_or_else(|| BlobError::Failed("the file store has no folder".into()))?;
        tokio::fs::create_dir_all(folder)
            .await
            .map_err(|e| io_error("cannot make", folder, e))?;
        let temporary = folder.join(format!(".{sha256}.{}", uuid_like()));
        let written = async {
            let mut file = tokio::fs::File::create(&temporary).await?;
            tokio::io::AsyncWriteExt::write_all(&mut file, bytes).await?;
            file.sync_all().await?;
            tokio::fs::rename(&temporary, &path).await
        }
        .await;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&temporary).await;
            return Err(io_error("cannot write", &path, e));
        }
        Ok(())
    }

    async fn get(&self, sha256: &str) -> Result<Vec<u8>, BlobError> {
        let path = self.path(sha256)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(BlobError::Missing(sha256.to_owned()))
            }
            Err(e) => Err(io_error("cannot read", &path, e)),
        }
    }

    fn describe(&self) -> String {
        format!("disk {}", self.dir.display())
    }
}

fn uuid_like() -> String {
    use rand::Rng;
    hex::encode(rand::thread_rng().gen::<[u8; 8]>())
}

/// What the desk takes and where it keeps it.
#[derive(Clone, Default)]
pub struct AttachmentSettings {
    pub policy: AttachmentPolicy,
    /// `None`: this desk keeps no files (uploads are refused).
    pub blobs: Option<Arc<dyn Blobs>>,
}

/// A file as uploaded, before it is checked.
#[derive(Debug, Clone)]
pub struct Upload {
    pub name: String,
    /// The uploader's `Content-Type`, if any.
    pub declared_type: Option<String>,
    pub bytes: Vec<u8>,
}

/// A file that passed the policy and is in the file store, to be recorded on a ticket.
#[derive(Debug, Clone)]
pub(crate) struct StoredFile {
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    /// The AWS Support attachment it came from.
    pub case_attachment: Option<String>,
}

/// How files are recorded on a ticket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileUse {
    pub comment_id: Option<i64>,
    pub public: bool,
    pub source: AttachmentSource,
    pub to_case: bool,
}

/// Records stored files on `ticket` with one audit entry each; returns what was recorded (a
/// file from an AWS Support case that is on the ticket already is not recorded again).
pub(crate) async fn record_files(
    tx: &mut Tx,
    actor: &Actor,
    ticket_id: i64,
    files: &[StoredFile],
    how: FileUse,
    now: DateTime<Utc>,
) -> Result<Vec<Attachment>> {
    let mut recorded = Vec::with_capacity(files.len());
    for f in files {
        let Some(a) = tx
            .insert_attachment(&NewAttachment {
                ticket_id,
                comment_id: how.comment_id,
                name: f.name.clone(),
                content_type: f.content_type.clone(),
                size: f.size,
                sha256: f.sha256.clone(),
                public: how.public,
                source: how.source,
                added_by: actor.name.clone(),
                to_case: how.to_case,
                case_attachment: f.case_attachment.clone(),
                at: now,
            })
            .await?
        else {
            continue;
        };
        tx.append_audit(AuditEntry {
            at: now,
            actor: actor.name.clone(),
            action: "ticket.attached".into(),
            ticket_id: Some(ticket_id),
            changes: one_change("attachment", Value::Null, describe(&a)),
        })
        .await?;
        recorded.push(a);
    }
    Ok(recorded)
}

/// A file as the audit trail names it.
fn describe(a: &Attachment) -> Value {
    json!({
        "id": a.id,
        "name": a.name,
        "sha256": a.sha256,
        "size": a.size,
        "content_type": a.content_type,
        "public": a.public,
        "source": a.source.as_str(),
    })
}

impl Desk {
    pub fn with_attachment_settings(mut self, settings: AttachmentSettings) -> Desk {
        self.settings.attachments = Arc::new(settings);
        self
    }

    pub fn attachment_settings(&self) -> &AttachmentSettings {
        &self.settings.attachments
    }

    fn blobs(&self) -> Result<&Arc<dyn Blobs>> {
        self.settings.attachments.blobs.as_ref().ok_or_else(|| {
            Error::Conflict(
                "this desk keeps no files: set [attachments] in the configuration".into(),
            )
        })
    }

    /// Checks every upload against the policy (all or none: a refused file names itself) and
    /// puts the files in the file store.
    pub(crate) async fn store_files(&self, uploads: Vec<Upload>) -> Result<Vec<StoredFile>> {
        if uploads.is_empty() {
            return Ok(Vec::new());
        }
        let policy = &self.settings.attachments.policy;
        let mut checked = Vec::with_capacity(uploads.len());
        for (i, u) in uploads.into_iter().enumerate() {
            let name = attachment::file_name(&u.name);
            let content_type = attachment::check(
                policy,
                &name,
                u.declared_type.as_deref(),
                &u.bytes,
            )
            .map_err(|e| {
                opsdesk_domain::FieldError::new("files", format!("file {} ({name}): {e}", i + 1))
            })?;
            let name = attachment::name_for_type(&name, &content_type);
            checked.push((name, content_type, u.bytes));
        }
        let blobs = self.blobs()?;
        let mut stored = Vec::with_capacity(checked.len());
        for (name, content_type, bytes) in checked {
            let sha256 = attachment::digest(&bytes);
            blobs.put(&sha256, &bytes).await.map_err(|e| {
                tracing::error!(error = %e, "storing a file failed");
                Error::Files(format!("the file could not be stored: {e}"))
            })?;
            stored.push(StoredFile {
                name,
                content_type,
                size: bytes.len() as i64,
                sha256,
                case_attachment: None,
            });
        }
        Ok(stored)
    }

    /// Adds files to a ticket (to one of its comments with `comment_id`). A requester adds
    /// public files to their own tickets; staff choose, and may mark files for the AWS
    /// Support case.
    pub async fn attach(
        &self,
        actor: &Actor,
        id: i64,
        uploads: Vec<Upload>,
        options: AttachOptions,
    ) -> Result<Vec<Attachment>> {
        actor.require(Permission::CreateTickets)?;
        let own_only = actor.role.sees_own_tickets_only();
        if own_only && !options.public {
            return Err(Error::Forbidden("a requester's files are public".into()));
        }
        if options.to_case {
            actor.require(Permission::WriteTickets)?;
        }
        if uploads.is_empty() {
            return Err(opsdesk_domain::FieldError::new("files", "send at least one file").into());
        }
        // Seeing the ticket comes first: a stranger learns nothing of the policy either.
        self.ticket(actor, id).await?;
        let files = self.store_files(uploads).await?;
        let actor = actor.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                let current = tx
                    .ticket_for_update(id)
                    .await?
                    .ok_or_else(|| Error::NotFound(Ticket::key_for(id)))?;
                // A comment's files are seen by whoever sees the comment: an internal note's
                // files are internal, and a requester knows no internal note.
                let mut public = options.public;
                if let Some(comment_id) = options.comment_id {
                    let missing =
                        || Error::NotFound(format!("comment {comment_id} on {}", current.key));
                    let comment_public = tx
                        .comment_public(id, comment_id)
                        .await?
                        .ok_or_else(missing)?;
                    if own_only && !comment_public {
                        return Err(missing());
                    }
                    public = public && comment_public;
                }
                let how = FileUse {
                    comment_id: options.comment_id,
                    public,
                    source: AttachmentSource::Upload,
                    to_case: options.to_case,
                };
                let recorded = record_files(tx, &actor, id, &files, how, now).await?;
                let mut next = current.clone();
                next.touch(now);
                tx.update_ticket(&next, &current).await?;
                Ok(recorded)
            })
        })
        .await
    }

    /// A ticket's files the actor may see (a requester: the public ones).
    pub async fn attachments(&self, actor: &Actor, id: i64) -> Result<Vec<Attachment>> {
        self.ticket(actor, id).await?;
        let mut files = self.db().attachments(id).await?;
        if actor.role.sees_own_tickets_only() {
            files.retain(|f| f.public);
        }
        Ok(files)
    }

    /// One file and its bytes, for someone who may see it; the download is audited. The
    /// bytes are checked against the file's SHA-256.
    pub async fn download(
        &self,
        actor: &Actor,
        id: i64,
        attachment_id: i64,
    ) -> Result<(Attachment, Vec<u8>)> {
        self.ticket(actor, id).await?;
        let missing =
            || Error::NotFound(format!("file {attachment_id} on {}", Ticket::key_for(id)));
        let file = self
            .db()
            .attachment(id, attachment_id)
            .await?
            .ok_or_else(missing)?;
        if actor.role.sees_own_tickets_only() && !file.public {
            return Err(missing());
        }
        let bytes = self.stored_bytes(&file).await?;
        let actor = actor.clone();
        let described = describe(&file);
        self.change(move |tx, now| {
            Box::pin(async move {
                tx.append_audit(AuditEntry {
                    at: now,
                    actor: actor.name.clone(),
                    action: "attachment.downloaded".into(),
                    ticket_id: Some(id),
                    changes: one_change("attachment", Value::Null, described),
                })
                .await?;
                Ok(())
            })
        })
        .await?;
        Ok((file, bytes))
    }

    /// A file's bytes from the file store, checked against its SHA-256.
    pub(crate) async fn stored_bytes(&self, file: &Attachment) -> Result<Vec<u8>> {
        let bytes = self.blobs()?.get(&file.sha256).await.map_err(|e| {
            tracing::error!(error = %e, file = file.id, "reading a stored file failed");
            match e {
                BlobError::Missing(_) => Error::FileLost(e.to_string()),
                BlobError::Failed(_) => Error::Files(format!("the file cannot be read: {e}")),
            }
        })?;
        if attachment::digest(&bytes) != file.sha256 {
            tracing::error!(file = file.id, "a stored file does not match its SHA-256");
            return Err(Error::FileLost(
                "the stored file does not match its SHA-256".into(),
            ));
        }
        Ok(bytes)
    }

    /// Chooses whether a file goes with the ticket's AWS Support case (staff only).
    pub async fn set_attachment_to_case(
        &self,
        actor: &Actor,
        id: i64,
        attachment_id: i64,
        to_case: bool,
    ) -> Result<Attachment> {
        actor.require(Permission::WriteTickets)?;
        let actor = actor.clone();
        self.change(move |tx, now| {
            Box::pin(async move {
                let file = tx
                    .attachment_for_update(id, attachment_id)
                    .await?
                    .ok_or_else(|| {
                        Error::NotFound(format!("file {attachment_id} on {}", Ticket::key_for(id)))
                    })?;
                if file.to_case == to_case {
                    return Ok(file);
                }
                tx.set_attachment_to_case(file.id, to_case).await?;
                tx.append_audit(AuditEntry {
                    at: now,
                    actor: actor.name.clone(),
                    action: "attachment.changed".into(),
                    ticket_id: Some(id),
                    changes: one_change(
                        &format!("attachment {} to_case", file.id),
                        json!(file.to_case),
                        json!(to_case),
                    ),
                })
                .await?;
                Ok(Attachment { to_case, ..file })
            })
        })
        .await
    }
}

/// How uploaded files are added.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttachOptions {
    pub comment_id: Option<i64>,
    pub public: bool,
    pub to_case: bool,
}
