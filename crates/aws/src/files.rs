//! Ticket files in Amazon S3, so that every node of a desk reads the same files. Objects are
//! named `<prefix><sha256>`; the same bytes are one object.

use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use opsdesk_core::attachments::{BlobError, Blobs};
use serde::{Deserialize, Serialize};

/// Where in S3 files are kept (`[attachments.s3]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3FilesSettings {
    pub bucket: String,
    /// Put before each object's name; ends with `/` to make a folder.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// The bucket's region; the SDK's usual chain when not set.
    #[serde(default)]
    pub region: Option<String>,
    /// Another S3 endpoint (an S3-compatible store); path-style addressing is used with it.
    #[serde(default)]
    pub endpoint_url: Option<String>,
}

fn default_prefix() -> String {
    "opsdesk/files/".into()
}

impl S3FilesSettings {
    pub fn validate(&self) -> Result<(), String> {
        let b = &self.bucket;
        let valid = (3..=63).contains(&b.len())
            && b.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
            && !b.starts_with(['-', '.'])
            && !b.ends_with(['-', '.']);
        if !valid {
            return Err(format!("bucket: `{b}` is not an S3 bucket name"));
        }
        if self.prefix.len() > 512 || self.prefix.starts_with('/') {
            return Err("prefix: at most 512 characters, not starting with /".into());
        }
        Ok(())
    }
}

pub struct S3Blobs {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl S3Blobs {
    /// A store with credentials from the SDK's usual chain (environment, profile, instance
    /// role).
    pub async fn new(settings: &S3FilesSettings) -> S3Blobs {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &settings.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let sdk = loader.load().await;
        let config = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(settings.endpoint_url.is_some())
            .build();
        S3Blobs {
            client: aws_sdk_s3::Client::from_conf(config),
            bucket: settings.bucket.clone(),
            prefix: settings.prefix.clone(),
        }
    }

    fn key(&self, sha256: &str) -> Result<String, BlobError> {
        if !opsdesk_domain::attachment::is_digest(sha256) {
            return Err(BlobError::Failed(format!("`{sha256}` is not a file's key")));
        }
        Ok(format!("{}{sha256}", self.prefix))
    }
}

#[async_trait::async_trait]
impl Blobs for S3Blobs {
    async fn put(&self, sha256: &str, bytes: &[u8]) -> Result<(), BlobError> {
        let key = self.key(sha256)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/octet-stream")
            .body(aws_sdk_s3::primitives::ByteStream::from(bytes.to_vec()))
            .send()
            .await
            .map_err(|e| {
                BlobError::Failed(format!(
                    "S3 PutObject s3://{}/{key}: {}",
                    self.bucket,
                    DisplayErrorContext(&e)
                ))
            })?;
        Ok(())
    }

    async fn get(&self, sha256: &str) -> Result<Vec<u8>, BlobError> {
        let key = self.key(sha256)?;
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error().is_some_and(|s| s.is_no_such_key())
                    || e.code() == Some("NoSuchKey")
                {
                    BlobError::Missing(sha256.to_owned())
                } else {
                    BlobError::Failed(format!(
                        "S3 GetObject s3://{}/{key}: {}",
                        self.bucket,
                        DisplayErrorContext(&e)
                    ))
                }
            })?;
        let data =
            object.body.collect().await.map_err(|e| {
                BlobError::Failed(format!("reading s3://{}/{key}: {e}", self.bucket))
            })?;
        Ok(data.into_bytes().to_vec())
    }

    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

/// Why an object was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// Larger than the reader takes: reading again will not help.
    #[error("s3://{bucket}/{key} is {size} bytes, over the limit of {limit}")]
    TooLarge {
        bucket: String,
        key: String,
        size: u64,
        limit: usize,
    },
    /// S3 did not hand it over (not there yet, no permission, unreachable).
    #[error("{0}")]
    Failed(String),
}

/// Reads an object whole (a message an SES receipt rule's S3 action stored), refusing more
/// than `limit` bytes. `region` and `endpoint_url` as in [`S3FilesSettings`].
pub async fn read_object(
    region: Option<&str>,
    endpoint_url: Option<&str>,
    bucket: &str,
    key: &str,
    limit: usize,
) -> Result<Vec<u8>, ObjectError> {
    let store = S3Blobs::new(&S3FilesSettings {
        bucket: bucket.to_owned(),
        prefix: String::new(),
        region: region.map(str::to_owned),
        endpoint_url: endpoint_url.map(str::to_owned),
    })
    .await;
    let object = store
        .client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| {
            ObjectError::Failed(format!(
                "S3 GetObject s3://{bucket}/{key}: {}",
                DisplayErrorContext(&e)
            ))
        })?;
    let too_large = |size: u64| ObjectError::TooLarge {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        size,
        limit,
    };
    if let Some(n) = object.content_length().and_then(|n| u64::try_from(n).ok()) {
        if n > limit as u64 {
            return Err(too_large(n));
        }
    }
    let data = object
        .body
        .collect()
        .await
        .map_err(|e| ObjectError::Failed(format!("reading s3://{bucket}/{key}: {e}")))?
        .into_bytes();
    if data.len() > limit {
        return Err(too_large(data.len() as u64));
    }
    Ok(data.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(bucket: &str) -> S3FilesSettings {
        S3FilesSettings {
            bucket: bucket.into(),
            prefix: default_prefix(),
            region: None,
            endpoint_url: None,
        }
    }

    #[test]
    fn bucket_names_are_checked() {
        assert!(settings("opsdesk-files").validate().is_ok());
        assert!(settings("Opsdesk").validate().is_err());
        assert!(settings("ab").validate().is_err());
        assert!(settings("-files").validate().is_err());
    }
}
