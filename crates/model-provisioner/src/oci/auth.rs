//! Registry credentials and authorisation challenges.
