//! Everything that talks to AWS: the SQS consumer, the Health and Trusted Advisor pollers and
//! the SNS message signature check and SNS publishing.
pub mod health;
pub mod poll;
pub mod sns;
pub mod sqs;
pub mod trusted_advisor;
