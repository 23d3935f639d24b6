//! The partner link's byte format, under TLS or on plain TCP.
//!
//! Both ends first send an *opening*: the magic `LEASEDHA`, the link version, whether a
//! shared key is in use, and a fresh random nonce. Then frames: a 32-bit big-endian length and
//! the payload (one encoded `PartnerMessage`); with a shared key, each frame also carries an
//! HMAC-SHA256 tag over its sequence number, length and payload, under a key derived from the
//! shared key and both nonces, one per direction. A frame that fails its tag ends the link; a
//! replayed or reordered frame fails too (the sequence number is in the tag), and so does a
//! frame replayed from another connection (the nonces are).
//!
//! Why not a TLS pre-shared key: rustls does not offer external PSKs. The shared key thus
//! authenticates every frame itself; `[ha.tls]` adds confidentiality, and both can be combined.
//!
//! Each end proves it knows the key before the link counts as up: its first frame is empty and
//! tagged, and the opening's partner must check it before anything else is read. Until then a
//! frame longer than zero bytes is refused, so an unauthenticated peer cannot make this server
//! allocate a large buffer.

use leased_ha::MAX_FRAME;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The first bytes of every partner link.
const MAGIC: &[u8; 8] = b"LEASEDHA";
/// The byte format's version (not the message codec's: that one is in the hello).
const LINK_VERSION: u8 = 1;
const NONCE_LEN: usize = 32;
const TAG_LEN: usize = 32;
const OPENING_LEN: usize = MAGIC.len() + 2 + NONCE_LEN;

/// Which end of the link this is: the keys differ by direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// It connected.
    Dialer,
    /// It accepted.
    Acceptor,
}

/// Why a link could not be opened or ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    /// The connection failed or closed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The peer does not speak the partner link at all.
    #[error("the peer is not a leased HA partner (its first bytes are not the link's opening)")]
    NotAPartner,
    /// Another byte-format version.
    #[error("the partner speaks partner-link version {0}; this server speaks {LINK_VERSION}")]
    Version(u8),
    /// One end has a shared key, the other not.
    #[error("the partner {0} a shared key; this server {1}: set the same [ha] shared_key on both")]
    KeyMismatch(&'static str, &'static str),
    /// A tag did not match: another key, or tampering.
    #[error("a frame failed authentication: the partner does not know this server's shared key")]
    BadTag,
    /// Longer than the codec allows (or than zero bytes before the key was proven).
    #[error("a frame of {0} bytes is longer than allowed here")]
    TooLong(usize),
    /// TLS failed (handshake, certificate).
    #[error("TLS: {0}")]
    Tls(String),
    /// The partner took too long to open.
    #[error("the partner did not complete the link's opening in time")]
    Timeout,
}

/// Writes frames (and tags them when the link has a key).
pub(crate) struct FrameWriter<W> {
    w: W,
    key: Option<hmac::Key>,
    seq: u64,
}

/// Reads frames (and checks their tags).
pub(crate) struct FrameReader<R> {
    r: R,
    key: Option<hmac::Key>,
    seq: u64,
    /// Largest frame accepted now: zero until the partner proved its key.
    limit: usize,
}

fn tag(key: &hmac::Key, seq: u64, payload: &[u8]) -> hmac::Tag {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(&seq.to_be_bytes());
    ctx.update(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    ctx.update(payload);
    ctx.sign()
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Queues one frame in the writer (call [`FrameWriter::flush`] to send what is queued).
    pub(crate) async fn write(&mut self, payload: &[u8]) -> Result<(), LinkError> {
        let len = u32::try_from(payload.len()).map_err(|_| LinkError::TooLong(payload.len()))?;
        self.w.write_all(&len.to_be_bytes()).await?;
        self.w.write_all(payload).await?;
        if let Some(key) = &self.key {
            self.w
                .write_all(tag(key, self.seq, payload).as_ref())
                .await?;
        }
        self.seq = self.seq.wrapping_add(1);
        Ok(())
    }

    /// Sends everything written so far.
    pub(crate) async fn flush(&mut self) -> Result<(), LinkError> {
        self.w.flush().await?;
        Ok(())
    }

    /// Closes the write side (the partner sees the end of the stream).
    pub(crate) async fn shutdown(&mut self) {
        // The link is going away either way; a failed shutdown changes nothing.
        let _ = self.w.shutdown().await;
    }
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// The next frame's payload; `None` at a clean end of the stream.
    pub(crate) async fn read(&mut self) -> Result<Option<Vec<u8>>, LinkError> {
        let mut len = [0u8; 4];
        match self.r.read_exact(&mut len).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > self.limit {
            return Err(LinkError::TooLong(len));
        }
        let mut payload = vec![0u8; len];
        self.r.read_exact(&mut payload).await?;
        if let Some(key) = &self.key {
            let mut got = [0u8; TAG_LEN];
            self.r.read_exact(&mut got).await?;
            let mut ctx_tag = Vec::with_capacity(8 + 4 + len);
            ctx_tag.extend_from_slice(&self.seq.to_be_bytes());
            ctx_tag.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
            ctx_tag.extend_from_slice(&payload);
            hmac::verify(key, &ctx_tag, &got).map_err(|_| LinkError::BadTag)?;
        }
        self.seq = self.seq.wrapping_add(1);
        Ok(Some(payload))
    }
}

/// The per-direction key: HMAC-SHA256 under the shared key of a label naming the direction
/// and both nonces (the dialer's first).
fn direction_key(shared: &[u8], label: &[u8], dialer: &[u8], acceptor: &[u8]) -> hmac::Key {
    let k = hmac::Key::new(hmac::HMAC_SHA256, shared);
    let mut ctx = hmac::Context::with_key(&k);
    ctx.update(b"leased-ha link v1 ");
    ctx.update(label);
    ctx.update(dialer);
    ctx.update(acceptor);
    hmac::Key::new(hmac::HMAC_SHA256, ctx.sign().as_ref())
}

/// Opens the link on `stream` (already TLS when configured): openings both ways, then each end
/// proves the key with an empty tagged frame. Returns the two halves ready for messages.
pub(crate) async fn open<S>(
    stream: S,
    side: Side,
    shared_key: Option<&[u8]>,
) -> Result<
    (
        FrameReader<tokio::io::ReadHalf<S>>,
        FrameWriter<tokio::io::BufWriter<tokio::io::WriteHalf<S>>>,
    ),
    LinkError,
>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut r, w) = tokio::io::split(stream);
    let mut w = tokio::io::BufWriter::new(w);
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| LinkError::Io(std::io::Error::other("no random bytes for the nonce")))?;
    let mut opening = Vec::with_capacity(OPENING_LEN);
    opening.extend_from_slice(MAGIC);
    opening.push(LINK_VERSION);
    opening.push(u8::from(shared_key.is_some()));
    opening.extend_from_slice(&nonce);
    w.write_all(&opening).await?;
    w.flush().await?;

    let mut theirs = [0u8; OPENING_LEN];
    r.read_exact(&mut theirs).await?;
    let (magic, rest) = theirs.split_at(MAGIC.len());
    if magic != MAGIC {
        return Err(LinkError::NotAPartner);
    }
    let (head, their_nonce) = rest.split_at(2);
    if head.first() != Some(&LINK_VERSION) {
        return Err(LinkError::Version(head.first().copied().unwrap_or(0)));
    }
    let their_keyed = head.get(1) == Some(&1);
    let keys = match (shared_key, their_keyed) {
        (Some(k), true) => {
            let (d, a) = match side {
                Side::Dialer => (&nonce[..], their_nonce),
                Side::Acceptor => (their_nonce, &nonce[..]),
            };
            let d2a = direction_key(k, b"dialer to acceptor", d, a);
            let a2d = direction_key(k, b"acceptor to dialer", d, a);
            Some(match side {
                Side::Dialer => (d2a, a2d),
                Side::Acceptor => (a2d, d2a),
            })
        }
        (None, false) => None,
        (Some(_), false) => return Err(LinkError::KeyMismatch("has no", "has one")),
        (None, true) => return Err(LinkError::KeyMismatch("has", "has none")),
    };
    let (send, recv) = match keys {
        Some((s, r)) => (Some(s), Some(r)),
        None => (None, None),
    };
    let mut writer = FrameWriter {
        w,
        key: send,
        seq: 0,
    };
    let mut reader = FrameReader {
        r,
        key: recv,
        seq: 0,
        limit: 0,
    };
    writer.write(&[]).await?;
    writer.flush().await?;
    match reader.read().await? {
        Some(p) if p.is_empty() => {}
        Some(p) => return Err(LinkError::TooLong(p.len())),
        None => {
            return Err(LinkError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the partner closed the link during its opening",
            )));
        }
    }
    reader.limit = MAX_FRAME;
    Ok((reader, writer))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pair(
        a_key: Option<&'static [u8]>,
        b_key: Option<&'static [u8]>,
    ) -> (
        Result<(), LinkError>,
        Result<(), LinkError>,
        Option<(Vec<u8>, Vec<u8>)>,
    ) {
        let (a, b) = tokio::io::duplex(1 << 16);
        let da = tokio::spawn(async move {
            let (mut r, mut w) = open(a, Side::Dialer, a_key).await?;
            w.write(b"hello from a").await?;
            w.flush().await?;
            let got = r.read().await?.unwrap_or_default();
            Ok::<_, LinkError>(got)
        });
        let db = tokio::spawn(async move {
            let (mut r, mut w) = open(b, Side::Acceptor, b_key).await?;
            w.write(b"hello from b").await?;
            w.flush().await?;
            let got = r.read().await?.unwrap_or_default();
            Ok::<_, LinkError>(got)
        });
        let (ra, rb) = (da.await.unwrap(), db.await.unwrap());
        match (ra, rb) {
            (Ok(x), Ok(y)) => (Ok(()), Ok(()), Some((x, y))),
            (x, y) => (x.map(drop), y.map(drop), None),
        }
    }

    #[tokio::test]
    async fn the_same_key_opens_and_frames_flow_both_ways() {
        let key: &[u8] = b"0123456789abcdef0123";
        let (a, b, got) = pair(Some(key), Some(key)).await;
        assert!(a.is_ok() && b.is_ok());
        let (at_a, at_b) = got.unwrap();
        assert_eq!(at_a, b"hello from b");
        assert_eq!(at_b, b"hello from a");
        let (a, b, got) = pair(None, None).await;
        assert!(
            a.is_ok() && b.is_ok() && got.is_some(),
            "TLS-only links have no tags"
        );
    }

    #[tokio::test]
    async fn another_key_or_none_is_refused_before_any_message() {
        let (a, b, _) = pair(Some(b"0123456789abcdef"), Some(b"fedcba9876543210")).await;
        assert!(matches!(a, Err(LinkError::BadTag)), "{a:?}");
        assert!(matches!(b, Err(LinkError::BadTag)), "{b:?}");
        let (a, b, _) = pair(Some(b"0123456789abcdef"), None).await;
        assert!(matches!(a, Err(LinkError::KeyMismatch(..))), "{a:?}");
        assert!(matches!(b, Err(LinkError::KeyMismatch(..))), "{b:?}");
    }

    #[tokio::test]
    async fn a_stranger_or_a_large_first_frame_is_refused() {
        let (mut peer, ours) = tokio::io::duplex(1 << 16);
        let t = tokio::spawn(async move { open(ours, Side::Acceptor, None).await.map(drop) });
        // At least an opening's length, so the read completes and is judged.
        peer.write_all(b"GET / HTTP/1.1\r\nHost: partner.example\r\nAccept: */*\r\n\r\n")
            .await
            .unwrap();
        assert!(matches!(t.await.unwrap(), Err(LinkError::NotAPartner)));

        // A peer that opens correctly but sends a 16 MB "proof" is cut off before the read.
        let (mut peer, ours) = tokio::io::duplex(1 << 16);
        let t = tokio::spawn(async move { open(ours, Side::Acceptor, None).await.map(drop) });
        let mut opening = MAGIC.to_vec();
        opening.extend_from_slice(&[LINK_VERSION, 0]);
        opening.extend_from_slice(&[7u8; NONCE_LEN]);
        opening.extend_from_slice(&(16u32 << 20).to_be_bytes());
        peer.write_all(&opening).await.unwrap();
        assert!(matches!(t.await.unwrap(), Err(LinkError::TooLong(_))));
    }

    #[tokio::test]
    async fn a_tampered_or_replayed_frame_ends_the_link() {
        let key: &[u8] = b"0123456789abcdef";
        let (a, b) = tokio::io::duplex(1 << 16);
        let ta = tokio::spawn(async move { open(a, Side::Dialer, Some(key)).await });
        let tb = tokio::spawn(async move { open(b, Side::Acceptor, Some(key)).await });
        let (_ra, mut wa) = ta.await.unwrap().unwrap();
        let (mut rb, _wb) = tb.await.unwrap().unwrap();
        wa.write(b"one").await.unwrap();
        wa.flush().await.unwrap();
        assert_eq!(rb.read().await.unwrap().unwrap(), b"one");
        // The same frame again, byte for byte (its tag names sequence number 1, the proof frame
        // having been 0), as a replaying middlebox would send it: the reader expects 2.
        let k = wa.key.clone().unwrap();
        wa.w.write_all(&3u32.to_be_bytes()).await.unwrap();
        wa.w.write_all(b"one").await.unwrap();
        wa.w.write_all(tag(&k, 1, b"one").as_ref()).await.unwrap();
        wa.flush().await.unwrap();
        assert!(matches!(rb.read().await, Err(LinkError::BadTag)));
    }
}
