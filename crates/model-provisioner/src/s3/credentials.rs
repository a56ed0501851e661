//! The AWS credential chain, in the order the AWS SDKs use.
