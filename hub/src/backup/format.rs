//! The archive's bytes: a ustar tar file (written and read here, no tar library), optionally
//! inside the encrypted envelope. The layout is documented in [`crate::backup`].

use std::io::{Read, Write};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use argon2::password_hash::rand_core::{OsRng, RngCore};

use super::{BackupError, Passphrase};

/// The size of a tar block.
pub const BLOCK: usize = 512;

/// The first bytes of an encrypted archive.
pub const MAGIC: &[u8; 24] = b"hearth-backup-encrypted\n";
/// The envelope's version.
const ENVELOPE_VERSION: u8 = 1;
/// The key derivation the envelope names: Argon2id (version 0x13).
const KDF_ARGON2ID: u8 = 1;
/// The envelope's header: magic, version, KDF, its three parameters, salt, nonce prefix, chunk
/// size and the tar file's length.
pub const HEADER_LEN: usize = 24 + 1 + 1 + 4 + 4 + 4 + 16 + 7 + 4 + 8;
/// Plain bytes per sealed chunk.
pub const CHUNK: usize = 1 << 20;
/// The AES-GCM tag after each chunk.
const TAG: usize = 16;

/// Argon2id's cost when writing: 64 MiB, 3 passes, 1 lane (about a second on a Raspberry Pi 4).
const KDF_MEMORY_KIB: u32 = 64 * 1024;
const KDF_PASSES: u32 = 3;
const KDF_LANES: u32 = 1;
/// What a reader accepts, so a crafted header cannot ask a Pi for more memory than it has.
const KDF_MEMORY_MAX_KIB: u32 = 256 * 1024;
const KDF_PASSES_MAX: u32 = 16;
const KDF_LANES_MAX: u32 = 8;

// ----- tar ------------------------------------------------------------------------------------

/// Bytes of padding after `size` bytes of an entry's data.
pub fn padding(size: u64) -> usize {
    ((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64) as usize
}

/// The length of a tar file holding entries of these sizes (headers, data, padding, the two
/// zero blocks at the end).
pub fn tar_len(sizes: impl IntoIterator<Item = u64>) -> u64 {
    sizes.into_iter().map(|s| BLOCK as u64 + s + padding(s) as u64).sum::<u64>() + 2 * BLOCK as u64
}

fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}");
    let bytes = text.as_bytes();
    let start = bytes.len().saturating_sub(width);
    field[..width].copy_from_slice(&bytes[start..]);
    field[width] = 0;
}

/// A ustar header for a regular file of this name (under 100 bytes) and size. Sizes of 8 GiB
/// and more use the base-256 form GNU tar and bsdtar read.
pub fn header(name: &str, size: u64, mtime_secs: u64) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    let n = name.as_bytes();
    h[..n.len().min(99)].copy_from_slice(&n[..n.len().min(99)]);
    octal(&mut h[100..108], 0o600);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    if size < 0o77_777_777_777 {
        octal(&mut h[124..136], size);
    } else {
        h[124] = 0x80;
        h[128..136].copy_from_slice(&size.to_be_bytes());
    }
    octal(&mut h[136..148], mtime_secs);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[265..271].copy_from_slice(b"hearth");
    h[297..303].copy_from_slice(b"hearth");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    octal(&mut h[148..155], u64::from(sum));
    h[155] = b' ';
    h
}

/// One entry's header as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The file's name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// The type flag (`0` for a regular file).
    pub kind: u8,
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let t = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if t.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(t, 8).ok()
}

/// Reads a header block: `Ok(None)` for a zero block (the end of the archive), an error for one
/// whose checksum does not add up or that is not ustar.
pub fn parse_header(h: &[u8; BLOCK]) -> Result<Option<Header>, &'static str> {
    if h.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    let stored = parse_octal(&h[148..156]).ok_or("a file header's checksum is not a number")?;
    let sum: u64 =
        h.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { u64::from(b' ') } else { u64::from(b) }).sum();
    if sum != stored {
        return Err("a file header does not add up (its checksum differs)");
    }
    if &h[257..262] != b"ustar" {
        return Err("a file header is not in the ustar format");
    }
    let cstr = |f: &[u8]| String::from_utf8_lossy(&f[..f.iter().position(|&b| b == 0).unwrap_or(f.len())]).into_owned();
    let (name, prefix) = (cstr(&h[0..100]), cstr(&h[345..500]));
    let name = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
    let size = if h[124] & 0x80 != 0 {
        if h[124] != 0x80 || h[125..128].iter().any(|&b| b != 0) {
            return Err("a file header names a size too large to be real");
        }
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[128..136]);
        u64::from_be_bytes(b)
    } else {
        parse_octal(&h[124..136]).ok_or("a file header's size is not a number")?
    };
    Ok(Some(Header { name, size, kind: h[156] }))
}

// ----- reading --------------------------------------------------------------------------------

/// Where an archive's plain (tar) bytes come from: the file itself, or its decrypted chunks.
pub trait Source {
    /// Reads some bytes; `Ok(0)` at the end.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, BackupError>;
}

/// Reads until `buf` is full or the source ends; the bytes read.
pub fn read_full(src: &mut dyn Source, buf: &mut [u8]) -> Result<usize, BackupError> {
    let mut n = 0;
    while n < buf.len() {
        let got = src.read(&mut buf[n..])?;
        if got == 0 {
            break;
        }
        n += got;
    }
    Ok(n)
}

/// An unencrypted archive.
pub struct Plain<R>(pub R);

impl<R: Read> Source for Plain<R> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, BackupError> {
        loop {
            match self.0.read(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => return r.map_err(|e| BackupError::io("cannot read the archive", e)),
            }
        }
    }
}

/// The envelope's header, read.
#[derive(Clone)]
struct Envelope {
    bytes: [u8; HEADER_LEN],
    memory_kib: u32,
    passes: u32,
    lanes: u32,
    salt: [u8; 16],
    prefix: [u8; 7],
    chunk: usize,
    plain_len: u64,
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl Envelope {
    fn parse(bytes: [u8; HEADER_LEN]) -> Result<Envelope, String> {
        if bytes[24] != ENVELOPE_VERSION {
            return Err(format!(
                "its encryption is version {}, which this hearth does not know: restore it with a newer Hearth",
                bytes[24]
            ));
        }
        if bytes[25] != KDF_ARGON2ID {
            return Err(format!("it names key derivation {}, which this hearth does not know", bytes[25]));
        }
        let (memory_kib, passes, lanes) = (be32(&bytes[26..30]), be32(&bytes[30..34]), be32(&bytes[34..38]));
        if !(8..=KDF_MEMORY_MAX_KIB).contains(&memory_kib)
            || !(1..=KDF_PASSES_MAX).contains(&passes)
            || !(1..=KDF_LANES_MAX).contains(&lanes)
        {
            return Err(format!(
                "its key derivation asks for {memory_kib} KiB, {passes} passes and {lanes} lanes, more than a backup ever needs"
            ));
        }
        let chunk = be32(&bytes[61..65]) as usize;
        if !(4096..=16 << 20).contains(&chunk) {
            return Err(format!("its chunk size {chunk} is not one Hearth writes"));
        }
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&bytes[38..54]);
        let mut prefix = [0u8; 7];
        prefix.copy_from_slice(&bytes[54..61]);
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[65..73]);
        Ok(Envelope { bytes, memory_kib, passes, lanes, salt, prefix, chunk, plain_len: u64::from_be_bytes(len) })
    }

    /// The whole file's length for this tar length: header, then each chunk with its tag (the
    /// last one always shorter than a full chunk, possibly empty).
    fn sealed_len(&self) -> u64 {
        let chunks = self.plain_len / self.chunk as u64 + 1;
        HEADER_LEN as u64 + self.plain_len + chunks * TAG as u64
    }

    fn cipher(&self, passphrase: &Passphrase) -> Result<Aes256Gcm, BackupError> {
        let key = derive(passphrase, &self.salt, self.memory_kib, self.passes, self.lanes)?;
        Ok(Aes256Gcm::new(&key.into()))
    }
}

fn derive(
    passphrase: &Passphrase,
    salt: &[u8],
    memory_kib: u32,
    passes: u32,
    lanes: u32,
) -> Result<[u8; 32], BackupError> {
    let params = argon2::Params::new(memory_kib, passes, lanes, Some(32))
        .map_err(|e| BackupError::Damaged(format!("its key derivation parameters are not usable ({e})")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = [0u8; 32];
    argon
        .hash_password_into(passphrase.expose().as_bytes(), salt, &mut key)
        .map_err(|e| BackupError::Damaged(format!("the key could not be derived ({e})")))?;
    Ok(key)
}

fn nonce(prefix: &[u8; 7], index: u32, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..7].copy_from_slice(prefix);
    n[7..11].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    n
}

/// An encrypted archive, decrypted chunk by chunk (at most one chunk in memory).
pub struct Decrypt<R> {
    inner: R,
    envelope: Envelope,
    cipher: Aes256Gcm,
    index: u32,
    sealed: Vec<u8>,
    plain: Vec<u8>,
    pos: usize,
    done: bool,
}

impl<R: Read> Decrypt<R> {
    /// Reads the header from `inner` (positioned at the start) and derives the key. `file_len`,
    /// when known, is checked against the length the header gives first, so a truncated file is
    /// called truncated before any key is derived.
    pub fn open(mut inner: R, passphrase: &Passphrase, file_len: Option<u64>) -> Result<Decrypt<R>, BackupError> {
        let mut bytes = [0u8; HEADER_LEN];
        let got = read_full(&mut Plain(&mut inner), &mut bytes)?;
        if got < HEADER_LEN {
            return Err(BackupError::Truncated(format!(
                "it ends inside its encryption header ({got} of {HEADER_LEN} bytes)"
            )));
        }
        let envelope = Envelope::parse(bytes).map_err(BackupError::Damaged)?;
        if let Some(len) = file_len {
            let want = envelope.sealed_len();
            if len < want {
                return Err(BackupError::Truncated(format!("it has {len} bytes of the {want} its header announces")));
            }
            if len > want {
                return Err(BackupError::Damaged(format!(
                    "it has {} bytes more than its header announces",
                    len - want
                )));
            }
        }
        let cipher = envelope.cipher(passphrase)?;
        Ok(Decrypt {
            inner,
            sealed: Vec::with_capacity(envelope.chunk + TAG),
            envelope,
            cipher,
            index: 0,
            plain: Vec::new(),
            pos: 0,
            done: false,
        })
    }

    /// The length of the tar file inside.
    pub fn plain_len(&self) -> u64 {
        self.envelope.plain_len
    }

    fn next_chunk(&mut self) -> Result<(), BackupError> {
        let full = self.envelope.chunk + TAG;
        self.sealed.resize(full, 0);
        let got = read_full(&mut Plain(&mut self.inner), &mut self.sealed)?;
        if got < TAG {
            return Err(BackupError::Truncated(format!(
                "it ends after {} sealed chunks, before its last one",
                self.index
            )));
        }
        let last = got < full;
        let n = nonce(&self.envelope.prefix, self.index, last);
        let opened = self
            .cipher
            .decrypt(Nonce::from_slice(&n), Payload { msg: &self.sealed[..got], aad: &self.envelope.bytes })
            .map_err(|_| {
                if self.index == 0 {
                    BackupError::WrongPassphrase
                } else {
                    BackupError::Damaged(format!(
                        "its encrypted part does not authenticate from byte {} on: it was changed or cut",
                        HEADER_LEN as u64 + u64::from(self.index) * full as u64
                    ))
                }
            })?;
        self.plain = opened;
        self.pos = 0;
        self.index = self.index.checked_add(1).ok_or_else(|| BackupError::Damaged("it has too many chunks".into()))?;
        if last {
            self.done = true;
            let mut extra = [0u8; 1];
            if read_full(&mut Plain(&mut self.inner), &mut extra)? != 0 {
                return Err(BackupError::Damaged("it goes on after its last sealed chunk".into()));
            }
        }
        Ok(())
    }
}

impl<R: Read> Source for Decrypt<R> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, BackupError> {
        while self.pos == self.plain.len() {
            if self.done {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let n = buf.len().min(self.plain.len() - self.pos);
        buf[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

// ----- writing --------------------------------------------------------------------------------

/// Seals what is written into the envelope; [`Encrypt::finish`] seals the last chunk.
pub struct Encrypt<W: Write> {
    inner: W,
    cipher: Aes256Gcm,
    header: [u8; HEADER_LEN],
    prefix: [u8; 7],
    index: u32,
    buf: Vec<u8>,
    expected: u64,
    written: u64,
}

impl<W: Write> Encrypt<W> {
    /// Writes the header for a tar file of `plain_len` bytes, with a new salt and nonce prefix.
    pub fn new(mut inner: W, passphrase: &Passphrase, plain_len: u64) -> Result<Encrypt<W>, BackupError> {
        let mut salt = [0u8; 16];
        OsRng.fill_bytes(&mut salt);
        let mut prefix = [0u8; 7];
        OsRng.fill_bytes(&mut prefix);
        let mut header = [0u8; HEADER_LEN];
        header[..24].copy_from_slice(MAGIC);
        header[24] = ENVELOPE_VERSION;
        header[25] = KDF_ARGON2ID;
        header[26..30].copy_from_slice(&KDF_MEMORY_KIB.to_be_bytes());
        header[30..34].copy_from_slice(&KDF_PASSES.to_be_bytes());
        header[34..38].copy_from_slice(&KDF_LANES.to_be_bytes());
        header[38..54].copy_from_slice(&salt);
        header[54..61].copy_from_slice(&prefix);
        header[61..65].copy_from_slice(&(CHUNK as u32).to_be_bytes());
        header[65..73].copy_from_slice(&plain_len.to_be_bytes());
        let key = derive(passphrase, &salt, KDF_MEMORY_KIB, KDF_PASSES, KDF_LANES)?;
        inner.write_all(&header).map_err(|e| BackupError::io("cannot write the archive", e))?;
        Ok(Encrypt {
            inner,
            cipher: Aes256Gcm::new(&key.into()),
            header,
            prefix,
            index: 0,
            buf: Vec::with_capacity(CHUNK),
            expected: plain_len,
            written: 0,
        })
    }

    fn seal(&mut self, last: bool) -> std::io::Result<()> {
        let n = nonce(&self.prefix, self.index, last);
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&n), Payload { msg: &self.buf, aad: &self.header })
            .map_err(|_| std::io::Error::other("the archive could not be encrypted"))?;
        self.inner.write_all(&sealed)?;
        self.buf.clear();
        self.index = self.index.checked_add(1).ok_or_else(|| std::io::Error::other("the archive is too large"))?;
        Ok(())
    }

    /// Seals the last chunk; the inner writer back.
    pub fn finish(mut self) -> std::io::Result<W> {
        if self.written != self.expected {
            return Err(std::io::Error::other(format!(
                "the archive came to {} bytes, not the {} announced",
                self.written, self.expected
            )));
        }
        self.seal(true)?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Encrypt<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        self.written += n as u64;
        if self.buf.len() == CHUNK {
            // A full chunk is never the last one: the last is always shorter, possibly empty.
            self.seal(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_a_changed_byte_is_seen() {
        for (name, size) in [("manifest.json", 0u64), ("hearth.db", 123_456_789), ("secrets.key", 32)] {
            let h = header(name, size, 1_700_000_000);
            let parsed = parse_header(&h).expect("valid").expect("not the end");
            assert_eq!(parsed, Header { name: name.into(), size, kind: b'0' });
            let mut bad = h;
            bad[130] ^= 0x01;
            assert!(parse_header(&bad).is_err());
        }
        let big = header("hearth.db", 9 << 30, 0);
        assert_eq!(parse_header(&big).expect("valid").expect("entry").size, 9 << 30);
        assert_eq!(parse_header(&[0u8; BLOCK]), Ok(None));
        assert_eq!(tar_len([0, 1, 512]), 3 * 512 + 512 + 512 + 1024);
    }
}
