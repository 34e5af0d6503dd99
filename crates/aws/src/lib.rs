//! Everything that talks to AWS: the SQS consumer, the Health and Trusted Advisor pollers and
//! the SNS message signature check.
