//! A push's large file as a block blob: `Put Block` for each part, several at once, then one
//! `Put Block List` that commits them.
//!
//! ```text
//! PUT {endpoint}/{container}/{blob}?comp=block&blockid=<base64 id>   each block, 8 at once
//! PUT {endpoint}/{container}/{blob}?comp=blocklist                   <BlockList><Latest>…
//! ```
//!
//! A file of 64 MiB or more goes up in blocks of 16 MiB, as an S3 push goes up in parts (see
//! `crate::s3`): one request of many GiB is sent again whole after any failure, a block alone.
//! A blob has at most 50,000 blocks, so a file of more than 781 GiB has larger ones (whole
//! MiB), up to the service's 4000 MiB a block. The file is read once, in order, and hashed
//! (`crate::upload`); each block is held in memory while it is sent (at most 10 at once: 8 in
//! flight, one waiting for a free sender, one being read), so that a block that fails is sent
//! again from memory, through the engine's request loop.
//!
//! Nothing is committed unless the whole file matched its sha256: its last block is handed over
//! only then, and the block list goes only after every block. Blocks never committed are not a
//! blob (a `HEAD` or a listing does not see them), and the service drops them after a week; a
//! push that fails leaves the blob as it was.

use std::sync::Arc;

use base64::Engine as _;

use super::session::Session;
use crate::error::{Error, Result};
use crate::model_files::ModelFile;
use crate::object_store::PartSizes;
use crate::upload::{Hash, read_pieces, send_parts};
use mp_progress::Progress;
use mp_transfer::{Downloader, RateLimit};

/// A push's sizes unless told otherwise: blocks of 16 MiB from 64 MiB on, as S3's parts.
pub(super) const BLOCKS: PartSizes = PartSizes {
    from: 64 << 20,
    size: 16 << 20,
};

/// Blocks in flight at once, as S3's parts.
const BLOCKS_IN_FLIGHT: usize = 8;

/// The most blocks a blob has.
const MAX_BLOCKS: u64 = 50_000;

/// The largest block (4000 MiB, since the service's 2019-12-12 version).
const MAX_BLOCK: u64 = 4000 << 20;

/// The size of the blocks of a file of `size` bytes: `block`, or the smallest whole MiB that
/// keeps the file within [`MAX_BLOCKS`]; `None` when even that is over [`MAX_BLOCK`].
fn block_size(size: u64, block: u64) -> Option<u64> {
    let least = size.div_ceil(MAX_BLOCKS).div_ceil(1 << 20) << 20;
    Some(block.max(least).max(1)).filter(|b| *b <= MAX_BLOCK)
}

/// The id of block `number`: base64 of `block-` and the number in nine digits, so that every id
/// of a blob has the same length, as the service requires (and no `=` to escape).
fn block_id(number: u32) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("block-{number:09}"))
}

/// Uploads `file` as the block blob `blob` in blocks of about `block` bytes, and commits them
/// once every one is there and the file matched its sha256.
pub(super) fn put_blocks(
    engine: &Downloader,
    session: &Session,
    blob: &str,
    file: &ModelFile,
    block: u64,
    progress: &Arc<dyn Progress>,
) -> Result<()> {
    let Some(block) = block_size(file.size, block) else {
        return Err(Error::PushDestination {
            destination: blob.to_owned(),
            reason: format!(
                "`{}` is larger than a block blob holds (50,000 blocks of 4000 MiB)",
                file.rel
            ),
        });
    };
    let rate: Option<&RateLimit> = engine.config().rate_limit.as_ref();
    let client = engine.client();
    engine.block_on(async {
        let pieces = read_pieces(file, block, 1, Hash::Each, rate);
        let ids = send_parts(pieces, BLOCKS_IN_FLIGHT, |number, bytes| async move {
            let id = block_id(number);
            let len = bytes.len() as u64;
            session.put_block(client, blob, &id, bytes).await?;
            progress.advance(len);
            Ok(id)
        })
        .await?;
        session.put_block_list(client, blob, &ids).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_grow_only_to_stay_within_50_000_and_4000_mib() {
        const MIB: u64 = 1 << 20;
        assert_eq!(block_size(100 * MIB, 16 * MIB), Some(16 * MIB));
        // 781.25 GiB is 50,000 blocks of 16 MiB; one byte more needs blocks of 17 MiB.
        assert_eq!(block_size(50_000 * 16 * MIB, 16 * MIB), Some(16 * MIB));
        assert_eq!(block_size(50_000 * 16 * MIB + 1, 16 * MIB), Some(17 * MIB));
        assert_eq!(block_size(50_000 * 4000 * MIB, 16 * MIB), Some(4000 * MIB));
        assert_eq!(block_size(50_000 * 4000 * MIB + 1, 16 * MIB), None);
        for size in [1, 1000, 5 * MIB, 50_000 * 16 * MIB + 1, 190 << 40] {
            let block = block_size(size, 16 * MIB).unwrap_or(0);
            assert!(size.div_ceil(block) <= MAX_BLOCKS, "{size}");
        }
    }

    #[test]
    fn block_ids_are_base64_of_one_length() {
        assert_eq!(block_id(1), "YmxvY2stMDAwMDAwMDAx");
        let lengths: std::collections::BTreeSet<usize> = [1, 9, 10, 50_000, 999_999_999]
            .into_iter()
            .map(|n| block_id(n).len())
            .collect();
        assert_eq!(lengths.len(), 1, "{lengths:?}");
        assert!(!block_id(12_345).contains('='));
    }
}
