//! Stub: filled in with the decoder.

use super::{Advertisement, DecodeError, Decoded};

/// Reads this format; `Ok(None)` when the advertisement is not in it.
pub fn decode(_adv: &Advertisement, _key: Option<&[u8]>) -> Result<Option<Decoded>, DecodeError> {
    Ok(None)
}
