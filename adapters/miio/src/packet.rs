//! The miIO UDP packet (port 54321): a 32-byte header and a payload encrypted with the device's
//! token. Pure functions, no I/O.
//!
//! ```text
//!  0      2      4          8           12      16                 32
//!  | 2131 | len  | unknown  | device id | stamp | checksum (16)    | payload (encrypted) ...
//! ```
//!
//! - Every field is big-endian. `len` is the whole packet, header included. `unknown` is 0
//!   (0xFFFFFFFF in the hello). `stamp` counts seconds on the device's own clock; a request
//!   carries the device's stamp moved on by the time since it was read.
//! - The hello is `21310020` followed by 28 bytes of 0xFF; the device answers with a bare header
//!   holding its device id and stamp (and, in the checksum field, 0xFF or 0x00 bytes, or its
//!   token while it is not paired to an account).
//! - The payload is JSON, encrypted with AES-128-CBC and PKCS#7 padding: key = MD5(token),
//!   IV = MD5(key + token).
//! - The checksum is MD5 of the header with the token in place of the checksum, then the
//!   encrypted payload.
//!
//! Sources: the OpenMiHome binary protocol notes and python-miio's `protocol.py` (its test
//! builds a packet the same way). Nothing here panics on what a device sends: every bad length,
//! magic, checksum or padding is a [`PacketError`].

use std::fmt;

use aes::Aes128;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use md5::{Digest, Md5};

/// The first two bytes of every packet.
pub const MAGIC: u16 = 0x2131;
/// The length of the header.
pub const HEADER_LEN: usize = 32;
/// The UDP port devices listen on.
pub const PORT: u16 = 54321;
/// The longest packet the length field can describe.
pub const MAX_PACKET: usize = u16::MAX as usize;
/// The hello: `21310020` and 28 bytes of 0xFF.
pub const HELLO: [u8; HEADER_LEN] = {
    let mut h = [0xFF; HEADER_LEN];
    h[0] = 0x21;
    h[1] = 0x31;
    h[2] = 0x00;
    h[3] = 0x20;
    h
};

/// Why a packet or a token cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than a header.
    #[error("a miIO packet is at least {HEADER_LEN} bytes, this one is {0}")]
    TooShort(usize),
    /// Not a miIO packet.
    #[error("not a miIO packet (it starts with {0:#06x}, not 0x2131)")]
    BadMagic(u16),
    /// The length field disagrees with the datagram.
    #[error("the packet says it is {said} bytes long but is {actual}")]
    Length {
        /// What the header says.
        said: usize,
        /// What arrived.
        actual: usize,
    },
    /// The checksum does not match: another token, or a damaged packet.
    #[error("the checksum does not match: the packet was made with another token, or damaged")]
    Checksum,
    /// The encrypted payload is not whole AES blocks.
    #[error("the encrypted payload is {0} bytes, not a whole number of 16-byte blocks")]
    NotBlocks(usize),
    /// The padding after decryption is wrong: another token.
    #[error("the payload does not decrypt with this token (bad padding)")]
    Padding,
    /// The payload is too long for one packet.
    #[error("a payload of {0} bytes does not fit in one miIO packet")]
    TooLong(usize),
    /// A token that is not 32 hex digits.
    #[error("{0}")]
    Token(String),
}

/// A device's token: 16 bytes, written as 32 hex digits. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token([u8; 16]);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// A token from its 16 bytes.
    pub fn new(bytes: [u8; 16]) -> Token {
        Token(bytes)
    }

    /// Reads 32 hex digits (either case, surrounding spaces ignored). The error never repeats
    /// the value.
    pub fn parse(text: &str) -> Result<Token, PacketError> {
        let t = text.trim();
        if t.chars().count() != 32 {
            return Err(PacketError::Token(format!(
                "a miIO token is 32 hex digits, not {} characters",
                t.chars().count()
            )));
        }
        let not_hex =
            || PacketError::Token("a miIO token is 32 hex digits (0-9, a-f), and this one has other characters".into());
        if !t.is_ascii() {
            return Err(not_hex());
        }
        let mut out = [0u8; 16];
        for (slot, pair) in out.iter_mut().zip(t.as_bytes().chunks_exact(2)) {
            match (hex_digit(pair[0]), hex_digit(pair[1])) {
                (Some(h), Some(l)) => *slot = h << 4 | l,
                _ => return Err(not_hex()),
            }
        }
        Ok(Token(out))
    }

    /// The 16 bytes.
    pub fn bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The AES key: MD5(token).
    pub fn key(&self) -> [u8; 16] {
        md5(&[&self.0])
    }

    /// The AES IV: MD5(key + token).
    pub fn iv(&self) -> [u8; 16] {
        md5(&[&self.key(), &self.0])
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// The header of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The whole packet's length.
    pub length: u16,
    /// 0, or 0xFFFFFFFF in a hello.
    pub unknown: u32,
    /// The device id (`did`).
    pub device_id: u32,
    /// The device's clock, in seconds.
    pub stamp: u32,
    /// The checksum field (the token or 0xFF/0x00 bytes in a hello answer).
    pub checksum: [u8; 16],
}

impl Header {
    /// Reads the header of `raw`, checking the magic and the length; no token needed.
    pub fn read(raw: &[u8]) -> Result<Header, PacketError> {
        let h: &[u8; HEADER_LEN] =
            raw.get(..HEADER_LEN).and_then(|h| h.try_into().ok()).ok_or(PacketError::TooShort(raw.len()))?;
        let magic = u16::from_be_bytes([h[0], h[1]]);
        if magic != MAGIC {
            return Err(PacketError::BadMagic(magic));
        }
        let length = u16::from_be_bytes([h[2], h[3]]);
        if usize::from(length) != raw.len() {
            return Err(PacketError::Length { said: usize::from(length), actual: raw.len() });
        }
        let word = |at: usize| u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
        let mut checksum = [0u8; 16];
        checksum.copy_from_slice(&h[16..32]);
        Ok(Header { length, unknown: word(4), device_id: word(8), stamp: word(12), checksum })
    }

    /// The 32 bytes.
    pub fn bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..2].copy_from_slice(&MAGIC.to_be_bytes());
        out[2..4].copy_from_slice(&self.length.to_be_bytes());
        out[4..8].copy_from_slice(&self.unknown.to_be_bytes());
        out[8..12].copy_from_slice(&self.device_id.to_be_bytes());
        out[12..16].copy_from_slice(&self.stamp.to_be_bytes());
        out[16..32].copy_from_slice(&self.checksum);
        out
    }

    /// Whether the checksum field holds a token (a device not paired yet gives it away in its
    /// hello answer): anything but all 0xFF or all 0x00.
    pub fn carries_token(&self) -> bool {
        !self.checksum.iter().all(|b| *b == 0xFF) && !self.checksum.iter().all(|b| *b == 0)
    }
}

/// Whether `raw` is a hello (a request for the device's id and stamp).
pub fn is_hello(raw: &[u8]) -> bool {
    raw == HELLO
}

/// The answer a device gives to a hello: a bare header with its id and stamp, and 0xFF in the
/// checksum field (a paired device keeps its token to itself).
pub fn hello_answer(device_id: u32, stamp: u32) -> [u8; HEADER_LEN] {
    Header { length: HEADER_LEN as u16, unknown: 0, device_id, stamp, checksum: [0xFF; 16] }.bytes()
}

/// Encrypts `plain` with the token (AES-128-CBC, PKCS#7).
pub fn encrypt(token: &Token, plain: &[u8]) -> Vec<u8> {
    cbc::Encryptor::<Aes128>::new(&token.key().into(), &token.iv().into()).encrypt_padded_vec_mut::<Pkcs7>(plain)
}

/// Decrypts `cipher` with the token; bad lengths and bad padding are errors.
pub fn decrypt(token: &Token, cipher: &[u8]) -> Result<Vec<u8>, PacketError> {
    if cipher.is_empty() || !cipher.len().is_multiple_of(16) {
        return Err(PacketError::NotBlocks(cipher.len()));
    }
    cbc::Decryptor::<Aes128>::new(&token.key().into(), &token.iv().into())
        .decrypt_padded_vec_mut::<Pkcs7>(cipher)
        .map_err(|_| PacketError::Padding)
}

/// A whole packet: `payload` (JSON) encrypted with the token, for or from `device_id` at `stamp`.
pub fn encode(token: &Token, device_id: u32, stamp: u32, payload: &[u8]) -> Result<Vec<u8>, PacketError> {
    let cipher = encrypt(token, payload);
    let length = HEADER_LEN + cipher.len();
    let length16 = u16::try_from(length).map_err(|_| PacketError::TooLong(payload.len()))?;
    let mut header = Header { length: length16, unknown: 0, device_id, stamp, checksum: *token.bytes() };
    header.checksum = md5(&[&header.bytes(), &cipher]);
    let mut out = Vec::with_capacity(length);
    out.extend_from_slice(&header.bytes());
    out.extend_from_slice(&cipher);
    Ok(out)
}

/// A packet read with a token: its header and its decrypted payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The header.
    pub header: Header,
    /// The payload, decrypted (JSON, sometimes followed by NUL bytes).
    pub payload: Vec<u8>,
}

/// Reads a packet with the token: magic, length, checksum, then decryption. A packet made with
/// another token fails on its checksum.
pub fn decode(token: &Token, raw: &[u8]) -> Result<Packet, PacketError> {
    let header = Header::read(raw)?;
    let cipher = &raw[HEADER_LEN..];
    let mut with_token = header;
    with_token.checksum = *token.bytes();
    if md5(&[&with_token.bytes(), cipher]) != header.checksum {
        return Err(PacketError::Checksum);
    }
    let payload = decrypt(token, cipher)?;
    Ok(Packet { header, payload })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    const TOKEN: &str = "00112233445566778899aabbccddeeff";
    const PLAIN: &[u8] = br#"{"id":1,"method":"miIO.info","params":[]}"#;
    /// Computed apart from this code, with the command line:
    /// `md5sum` for the key (MD5 of the token), the IV (MD5 of key + token) and the checksum
    /// (MD5 of the header with the token, then the cipher text), and
    /// `openssl enc -aes-128-cbc -K <key> -iv <iv>` for the cipher text (PKCS#7 by default);
    /// device id 123456789 (0x075bcd15), stamp 3600 (0x0e10).
    const PACKET: &str = "2131005000000000075bcd1500000e108440e483b317a44b000becc38c2cb8f7\
                          a5516ec6151955dc2bb2d43e7c84c18352a39a7f22fd2903d282a5783c6d56ac\
                          8c9c7629130a25fac17d38175c1a7799";

    #[test]
    fn a_packet_matches_one_computed_independently() {
        let token = Token::parse(TOKEN).unwrap();
        assert_eq!(token.key().to_vec(), unhex("6e8311168ee16d6aa1aa48c64145003c"));
        assert_eq!(token.iv().to_vec(), unhex("6f434fa9acd75da73e5fb999f641cda2"));
        let packet = encode(&token, 123_456_789, 3600, PLAIN).unwrap();
        assert_eq!(packet, unhex(PACKET));
        let read = decode(&token, &packet).unwrap();
        assert_eq!(read.payload, PLAIN);
        assert_eq!(
            (read.header.length, read.header.unknown, read.header.device_id, read.header.stamp),
            (80, 0, 123_456_789, 3600)
        );
    }

    #[test]
    fn packets_round_trip_for_every_payload_length() {
        let token = Token::parse("FFEEDDCCBBAA99887766554433221100").unwrap();
        for n in [0usize, 1, 15, 16, 17, 31, 32, 100, 1000] {
            let payload: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            let packet = encode(&token, 7, 99, &payload).unwrap();
            assert_eq!(packet.len(), HEADER_LEN + (n / 16 + 1) * 16, "PKCS#7 always pads");
            assert_eq!(decode(&token, &packet).unwrap().payload, payload, "{n} bytes");
        }
        assert_eq!(encode(&token, 7, 99, &vec![b'x'; 70_000]), Err(PacketError::TooLong(70_000)));
    }

    #[test]
    fn the_hello_and_its_answer() {
        assert_eq!(HELLO.to_vec(), unhex("21310020ffffffffffffffffffffffffffffffffffffffffffffffffffffffff"));
        assert!(is_hello(&HELLO));
        let h = Header::read(&HELLO).unwrap();
        assert_eq!((h.length, h.unknown, h.device_id, h.stamp), (32, 0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF));
        let answer = hello_answer(123_456_789, 77);
        assert!(!is_hello(&answer));
        let h = Header::read(&answer).unwrap();
        assert_eq!((h.length, h.unknown, h.device_id, h.stamp), (32, 0, 123_456_789, 77));
        assert!(!h.carries_token());
        let mut unpaired = h;
        unpaired.checksum = *Token::parse(TOKEN).unwrap().bytes();
        assert!(unpaired.carries_token());
    }

    #[test]
    fn another_token_fails_cleanly_on_the_checksum_and_on_the_padding() {
        let token = Token::parse(TOKEN).unwrap();
        let other = Token::parse("0123456789abcdef0123456789abcdef").unwrap();
        let packet = encode(&token, 1, 2, PLAIN).unwrap();
        assert_eq!(decode(&other, &packet), Err(PacketError::Checksum));
        // The cipher text alone, decrypted with the wrong key: the padding gives it away (or, in
        // the rare case it happens to look valid, the result is not the text).
        let cipher = &packet[HEADER_LEN..];
        match decrypt(&other, cipher) {
            Err(e) => assert_eq!(e, PacketError::Padding),
            Ok(p) => assert_ne!(p, PLAIN),
        }
    }

    #[test]
    fn bad_packets_are_errors_not_panics() {
        let token = Token::parse(TOKEN).unwrap();
        let good = encode(&token, 1, 2, PLAIN).unwrap();
        assert_eq!(decode(&token, &[]), Err(PacketError::TooShort(0)));
        assert_eq!(decode(&token, &good[..31]), Err(PacketError::TooShort(31)));
        let mut magic = good.clone();
        magic[0] = 0x12;
        assert_eq!(decode(&token, &magic), Err(PacketError::BadMagic(0x1231)));
        assert_eq!(decode(&token, &good[..good.len() - 1]), Err(PacketError::Length { said: 80, actual: 79 }));
        let mut flipped = good.clone();
        flipped[40] ^= 1;
        assert_eq!(decode(&token, &flipped), Err(PacketError::Checksum));
        // A header-only packet checks (no payload) but has nothing to decrypt.
        let bare = encode_bare(&token);
        assert_eq!(decode(&token, &bare), Err(PacketError::NotBlocks(0)));
        // Blocks that are not whole.
        assert_eq!(decrypt(&token, &[0u8; 17]), Err(PacketError::NotBlocks(17)));
        // Every prefix and every single-byte change of a good packet: an error or the payload.
        for n in 0..good.len() {
            let _ = decode(&token, &good[..n]);
            let mut changed = good.clone();
            changed[n] = changed[n].wrapping_add(0x5a);
            assert!(decode(&token, &changed).is_err(), "byte {n} changed");
        }
    }

    fn encode_bare(token: &Token) -> Vec<u8> {
        let mut h = Header { length: 32, unknown: 0, device_id: 1, stamp: 2, checksum: *token.bytes() };
        h.checksum = md5(&[&h.bytes()]);
        h.bytes().to_vec()
    }

    #[test]
    fn tokens_are_32_hex_digits_and_never_shown() {
        assert!(Token::parse(" 00112233445566778899AABBCCDDEEFF\n").is_ok());
        let e = Token::parse("0011").unwrap_err().to_string();
        assert_eq!(e, "a miIO token is 32 hex digits, not 4 characters");
        let e = Token::parse("zz112233445566778899aabbccddeeff").unwrap_err().to_string();
        assert!(e.contains("0-9, a-f") && !e.contains("zz11"), "{e}");
        let e = Token::parse("ä0112233445566778899aabbccddeeff").unwrap_err().to_string();
        assert!(e.contains("0-9, a-f"), "{e}");
        assert_eq!(format!("{:?}", Token::parse(TOKEN).unwrap()), "Token(<redacted>)");
    }
}
