//! Everything that talks to AWS: the SQS consumer, the Health and Trusted Advisor pollers, the
//! SNS message signature check and SNS publishing, AWS Support cases, and ticket files in S3.
pub mod files;
pub mod health;
pub mod permissions;
pub mod poll;
pub mod ses;
pub mod sns;
pub mod sqs;
pub mod support;
pub mod trusted_advisor;
