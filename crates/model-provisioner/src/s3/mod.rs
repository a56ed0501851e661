//! `s3://` references: models in S3-compatible object stores.

pub mod credentials;
