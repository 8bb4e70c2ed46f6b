//! Framing: plaintext frames (`0x00`, varint length, varint type, payload) and Noise frames
//! (`0x01`, 2-byte big-endian length, encrypted body).

use super::proto::{get_varint, put_varint};

/// The largest plaintext payload the decoder accepts. ESPHome's own limit is far lower; this
/// only bounds memory against a peer that sends garbage.
pub const MAX_PLAINTEXT_PAYLOAD: usize = 1 << 20;

/// The largest body of a Noise frame (its length field is 16 bits).
pub const MAX_NOISE_FRAME: usize = u16::MAX as usize;

/// One message as framed on the wire, before protobuf decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The message type (`HelloRequest` is 1 ...).
    pub msg_type: u32,
    /// The protobuf payload.
    pub payload: Vec<u8>,
}

/// Why a byte stream is not a valid frame stream. After one, the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A plaintext connection got a Noise frame: the device wants encryption.
    #[error("the device requires encryption: set its encryption key (`api: encryption: key:` of its YAML)")]
    RequiresEncryption,
    /// An encrypted connection got a plaintext frame: the device has no encryption key.
    #[error("the device does not use encryption: remove the encryption key from the configuration")]
    RequiresPlaintext,
    /// The first byte of a frame is neither `0x00` nor `0x01`.
    #[error("bad frame preamble 0x{0:02x}")]
    BadPreamble(u8),
    /// A varint of the header is malformed.
    #[error("malformed frame header: {0}")]
    BadHeader(#[from] super::proto::DecodeError),
    /// A frame announces a payload larger than this side accepts.
    #[error("frame payload of {0} bytes is larger than the limit of {MAX_PLAINTEXT_PAYLOAD}")]
    TooLarge(u64),
    /// A message type does not fit the frame format.
    #[error("message type {0} does not fit in a frame")]
    BadType(u64),
    /// A body is too long for a Noise frame.
    #[error("frame body of {0} bytes is longer than a Noise frame allows ({MAX_NOISE_FRAME})")]
    NoiseTooLarge(usize),
}

/// Encodes a plaintext frame.
pub fn encode_plaintext(msg_type: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.push(0x00);
    put_varint(&mut out, payload.len() as u64);
    put_varint(&mut out, u64::from(msg_type));
    out.extend_from_slice(payload);
    out
}

/// Decodes plaintext frames from a byte stream, incrementally: bytes in with
/// [`PlaintextDecoder::push`], whole frames out with [`PlaintextDecoder::next_frame`];
/// a partial frame is kept until the rest arrives.
#[derive(Debug, Default)]
pub struct PlaintextDecoder {
    buf: Vec<u8>,
}

impl PlaintextDecoder {
    /// An empty decoder.
    pub fn new() -> PlaintextDecoder {
        PlaintextDecoder::default()
    }

    /// Adds bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that do not yet make a frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next whole frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let Some(&first) = self.buf.first() else { return Ok(None) };
        match first {
            0x00 => {}
            0x01 => return Err(FrameError::RequiresEncryption),
            b => return Err(FrameError::BadPreamble(b)),
        }
        let rest = self.buf.get(1..).unwrap_or_default();
        let Some((len, n1)) = get_varint(rest)? else { return Ok(None) };
        if len > MAX_PLAINTEXT_PAYLOAD as u64 {
            return Err(FrameError::TooLarge(len));
        }
        let rest = rest.get(n1..).unwrap_or_default();
        let Some((msg_type, n2)) = get_varint(rest)? else { return Ok(None) };
        let msg_type = u32::try_from(msg_type).map_err(|_| FrameError::BadType(msg_type))?;
        let start = 1 + n1 + n2;
        let end = start + len as usize;
        let Some(payload) = self.buf.get(start..end) else { return Ok(None) };
        let frame = Frame { msg_type, payload: payload.to_vec() };
        self.buf.drain(..end);
        Ok(Some(frame))
    }
}

/// Encodes a Noise frame around an (already encrypted, or handshake) body.
pub fn encode_noise_frame(body: &[u8]) -> Result<Vec<u8>, FrameError> {
    let len = u16::try_from(body.len()).map_err(|_| FrameError::NoiseTooLarge(body.len()))?;
    let mut out = Vec::with_capacity(body.len() + 3);
    out.push(0x01);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    Ok(out)
}

/// Splits a byte stream into Noise frame bodies, incrementally (like [`PlaintextDecoder`]).
#[derive(Debug, Default)]
pub struct NoiseFrameDecoder {
    buf: Vec<u8>,
}

impl NoiseFrameDecoder {
    /// An empty decoder.
    pub fn new() -> NoiseFrameDecoder {
        NoiseFrameDecoder::default()
    }

    /// Adds bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that do not yet make a frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next whole frame body, `Ok(None)` when more bytes are needed.
    pub fn next_body(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let Some(&first) = self.buf.first() else { return Ok(None) };
        match first {
            0x01 => {}
            0x00 => return Err(FrameError::RequiresPlaintext),
            b => return Err(FrameError::BadPreamble(b)),
        }
        let (Some(&hi), Some(&lo)) = (self.buf.get(1), self.buf.get(2)) else { return Ok(None) };
        let end = 3 + usize::from(u16::from_be_bytes([hi, lo]));
        let Some(body) = self.buf.get(3..end) else { return Ok(None) };
        let body = body.to_vec();
        self.buf.drain(..end);
        Ok(Some(body))
    }
}

/// The plaintext inside an encrypted data frame: 2-byte type, 2-byte length, payload.
pub fn encode_noise_plaintext(msg_type: u16, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    let len = u16::try_from(payload.len()).map_err(|_| FrameError::NoiseTooLarge(payload.len()))?;
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.extend_from_slice(&msg_type.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Reads the plaintext of an encrypted data frame; `None` when it is shorter than its header
/// says.
pub fn decode_noise_plaintext(plain: &[u8]) -> Option<Frame> {
    let header = plain.get(..4)?;
    let msg_type = u16::from_be_bytes([header[0], header[1]]);
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let payload = plain.get(4..4 + len)?;
    Some(Frame { msg_type: u32::from(msg_type), payload: payload.to_vec() })
}
