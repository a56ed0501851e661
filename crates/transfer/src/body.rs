//! Small answers read whole, never more than a bound: a manifest, a config, a listing, an
//! error's body. A server that sends more than the bound is cut off, not buffered.

/// Why a bounded read failed.
#[derive(Debug)]
pub enum BodyError {
    /// The body is longer than the bound (said by `Content-Length`, or found while reading).
    TooLarge,
    /// The connection failed while the body was read.
    Failed(reqwest::Error),
}

/// The whole body of `response`, at most `limit` bytes.
pub async fn read_bounded(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(piece) = response
        .chunk()
        .await
        .map_err(|e| BodyError::Failed(e.without_url()))?
    {
        body.extend_from_slice(&piece);
        if body.len() > limit {
            return Err(BodyError::TooLarge);
        }
    }
    Ok(body)
}
