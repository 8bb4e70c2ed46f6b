//! The client side of the Noise-encrypted native API: key parsing, the handshake and the
//! transport, as a state machine without sockets.
//!
//! The protocol (ESPHome's `api_frame_helper_noise.cpp`, aioesphomeapi's frame helper):
//!
//! 1. The client sends an empty frame (`01 00 00`, the "hello") and, right after it, a frame with
//!    a zero byte and the first Noise handshake message
//!    (`Noise_NNpsk0_25519_ChaChaPoly_SHA256`, PSK at position 0, prologue
//!    `"NoiseAPIInit"` + 2-byte big-endian length of the client's hello body + that body, so
//!    `NoiseAPIInit\0\0` for the empty hello).
//! 2. The device answers its hello: a byte naming the chosen protocol (`0x01`), its node name
//!    and, since 2023, its MAC, each NUL-terminated.
//! 3. The device answers the handshake: `0x00` and the second Noise message, or `0x01` and a
//!    reason (`Handshake MAC failure` when the key differs).
//! 4. Then every frame body is encrypted; its plaintext is 2-byte type, 2-byte length, payload.

use std::fmt;

use super::frame::Frame;
use super::frame::{FrameError, NoiseFrameDecoder, decode_noise_plaintext, encode_noise_frame, encode_noise_plaintext};

/// The Noise protocol name of the native API.
pub const NOISE_PATTERN: &str = "Noise_NNpsk0_25519_ChaChaPoly_SHA256";

/// The prologue for the empty client hello: `NoiseAPIInit`, then its length (0) as 2 bytes.
pub const NOISE_PROLOGUE: &[u8] = b"NoiseAPIInit\x00\x00";

/// The 32-byte encryption key of a device (`api: encryption: key:`). Its `Debug` form hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct NoiseKey([u8; 32]);

impl fmt::Debug for NoiseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NoiseKey(<redacted>)")
    }
}

/// Why an encryption key could not be read. The messages never contain the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not base64.
    #[error("the encryption key is not valid base64 (copy `api: encryption: key:` from the device's YAML)")]
    NotBase64,
    /// Base64 of the wrong length.
    #[error("the encryption key must be 32 bytes (44 base64 characters), not {0} bytes")]
    WrongLength(usize),
}

impl NoiseKey {
    /// The key from its raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> NoiseKey {
        NoiseKey(bytes)
    }

    /// Reads the base64 key of the device's YAML (standard alphabet, padding optional,
    /// surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<NoiseKey, KeyError> {
        let bytes = base64_decode(text.trim()).ok_or(KeyError::NotBase64)?;
        let len = bytes.len();
        let arr: [u8; 32] = bytes.try_into().map_err(|_| KeyError::WrongLength(len))?;
        Ok(NoiseKey(arr))
    }

    /// The raw key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // 6 leftover bits cannot come from whole bytes; leftover bits must be zero.
    if bits >= 6 || acc != 0 {
        return None;
    }
    Some(out)
}

/// Why the encrypted connection failed. After one, the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoiseError {
    /// The device rejected the handshake for a MAC failure, or its answer did not decrypt.
    #[error("the encryption key does not match the device's")]
    KeyMismatch,
    /// The device rejected the handshake for another reason.
    #[error("the device rejected the encryption handshake: {0}")]
    HandshakeRejected(String),
    /// The device chose a protocol this client does not speak.
    #[error("the device chose encryption protocol {0}, this client speaks only 1 (Noise)")]
    UnsupportedProtocol(u8),
    /// The device's hello is malformed.
    #[error("malformed server hello: {0}")]
    BadServerHello(&'static str),
    /// An encrypted frame did not decrypt or is malformed.
    #[error("an encrypted frame could not be read: {0}")]
    BadFrame(&'static str),
    /// Framing failed (includes a device that does not use encryption).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Sending before the handshake is done, or after a failure.
    #[error("the encrypted connection is not ready")]
    NotReady,
    /// The Noise library failed (not expected with valid input).
    #[error("noise: {0}")]
    Noise(String),
}

impl From<snow::Error> for NoiseError {
    fn from(e: snow::Error) -> Self {
        NoiseError::Noise(e.to_string())
    }
}

/// What the client learned from bytes the device sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoiseEvent {
    /// The device's hello: its node name and, if it sends one, its MAC (lowercase hex without
    /// separators, as the device sends it).
    ServerHello {
        /// Node name.
        name: String,
        /// MAC, when the firmware sends it.
        mac: Option<String>,
    },
    /// The handshake is done; [`NoiseClient::encrypt`] works from now on.
    Ready,
    /// A decrypted message.
    Frame(Frame),
}

enum State {
    /// Waiting for the server hello.
    Hello(Box<snow::HandshakeState>),
    /// Waiting for the server's handshake message.
    Handshake(Box<snow::HandshakeState>),
    /// Encrypted transport.
    Ready(Box<snow::TransportState>),
    /// Failed; nothing more is read.
    Failed,
}

/// The client side of an encrypted connection, driven by the connection task:
/// [`NoiseClient::start`] gives the first bytes to send, [`NoiseClient::receive`] takes bytes
/// read and gives events, [`NoiseClient::encrypt`] gives the bytes of a message to send.
pub struct NoiseClient {
    state: State,
    decoder: NoiseFrameDecoder,
}

impl fmt::Debug for NoiseClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Hello(_) => "hello",
            State::Handshake(_) => "handshake",
            State::Ready(_) => "ready",
            State::Failed => "failed",
        };
        f.debug_struct("NoiseClient").field("state", &state).finish_non_exhaustive()
    }
}

impl NoiseClient {
    /// Starts a handshake with `key`; returns the client and the bytes to send at once (the
    /// hello frame and the first handshake frame).
    pub fn start(key: &NoiseKey) -> Result<(NoiseClient, Vec<u8>), NoiseError> {
        let params: snow::params::NoiseParams = NOISE_PATTERN.parse()?;
        let mut hs = snow::Builder::new(params).prologue(NOISE_PROLOGUE)?.psk(0, key.as_bytes())?.build_initiator()?;
        let mut msg = [0u8; 128];
        let n = hs.write_message(&[], &mut msg)?;
        let mut body = Vec::with_capacity(n + 1);
        body.push(0x00);
        body.extend_from_slice(msg.get(..n).unwrap_or_default());
        let mut out = encode_noise_frame(&[])?;
        out.extend_from_slice(&encode_noise_frame(&body)?);
        Ok((NoiseClient { state: State::Hello(Box::new(hs)), decoder: NoiseFrameDecoder::new() }, out))
    }

    /// Whether the handshake is done.
    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Ready(_))
    }

    /// Takes bytes read from the connection; gives what they complete. Partial frames are
    /// kept for the next call. After an error the client is failed and must be dropped.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<Vec<NoiseEvent>, NoiseError> {
        if matches!(self.state, State::Failed) {
            return Err(NoiseError::NotReady);
        }
        self.decoder.push(bytes);
        let mut events = Vec::new();
        loop {
            let body = match self.decoder.next_body() {
                Ok(Some(body)) => body,
                Ok(None) => return Ok(events),
                Err(e) => {
                    self.state = State::Failed;
                    return Err(e.into());
                }
            };
            match self.step(&body) {
                Ok(Some(event)) => events.push(event),
                Ok(None) => {}
                Err(e) => {
                    self.state = State::Failed;
                    return Err(e);
                }
            }
        }
    }

    fn step(&mut self, body: &[u8]) -> Result<Option<NoiseEvent>, NoiseError> {
        match std::mem::replace(&mut self.state, State::Failed) {
            State::Hello(hs) => {
                let event = parse_server_hello(body)?;
                self.state = State::Handshake(hs);
                Ok(Some(event))
            }
            State::Handshake(mut hs) => {
                let (&status, rest) = body.split_first().ok_or(NoiseError::BadFrame("empty handshake answer"))?;
                if status != 0x00 {
                    let reason = String::from_utf8_lossy(rest).into_owned();
                    return Err(if reason.contains("MAC failure") {
                        NoiseError::KeyMismatch
                    } else {
                        NoiseError::HandshakeRejected(reason)
                    });
                }
                let mut payload = vec![0u8; rest.len()];
                hs.read_message(rest, &mut payload).map_err(|_| NoiseError::KeyMismatch)?;
                if !hs.is_handshake_finished() {
                    return Err(NoiseError::BadFrame("the handshake did not finish"));
                }
                self.state = State::Ready(Box::new(hs.into_transport_mode()?));
                Ok(Some(NoiseEvent::Ready))
            }
            State::Ready(mut ts) => {
                let mut plain = vec![0u8; body.len()];
                let n = ts.read_message(body, &mut plain).map_err(|_| NoiseError::BadFrame("decryption failed"))?;
                let frame = decode_noise_plaintext(plain.get(..n).unwrap_or_default())
                    .ok_or(NoiseError::BadFrame("shorter than its header"))?;
                self.state = State::Ready(ts);
                Ok(Some(NoiseEvent::Frame(frame)))
            }
            State::Failed => Err(NoiseError::NotReady),
        }
    }

    /// The bytes of an encrypted frame carrying message `msg_type` with `payload`.
    pub fn encrypt(&mut self, msg_type: u32, payload: &[u8]) -> Result<Vec<u8>, NoiseError> {
        let State::Ready(ts) = &mut self.state else { return Err(NoiseError::NotReady) };
        let msg_type = u16::try_from(msg_type).map_err(|_| FrameError::BadType(u64::from(msg_type)))?;
        let plain = encode_noise_plaintext(msg_type, payload)?;
        let mut out = vec![0u8; plain.len() + 16];
        if out.len() > super::frame::MAX_NOISE_FRAME {
            return Err(FrameError::NoiseTooLarge(out.len()).into());
        }
        let n = ts.write_message(&plain, &mut out)?;
        Ok(encode_noise_frame(out.get(..n).unwrap_or_default())?)
    }
}

/// Reads the server hello body: protocol byte, NUL-terminated name, optional NUL-terminated MAC.
pub fn parse_server_hello(body: &[u8]) -> Result<NoiseEvent, NoiseError> {
    let (&proto, rest) = body.split_first().ok_or(NoiseError::BadServerHello("empty"))?;
    if proto != 0x01 {
        return Err(NoiseError::UnsupportedProtocol(proto));
    }
    let mut parts = rest.split(|&b| b == 0);
    let name = parts.next().unwrap_or_default();
    if name.is_empty() {
        return Err(NoiseError::BadServerHello("no device name"));
    }
    let name = std::str::from_utf8(name).map_err(|_| NoiseError::BadServerHello("device name is not UTF-8"))?;
    let mac = match parts.next() {
        Some(m) if !m.is_empty() => {
            Some(std::str::from_utf8(m).map_err(|_| NoiseError::BadServerHello("MAC is not UTF-8"))?.to_owned())
        }
        _ => None,
    };
    Ok(NoiseEvent::ServerHello { name: name.to_owned(), mac })
}
