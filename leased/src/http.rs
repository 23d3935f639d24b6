//! A minimal HTTP/1.1 GET client for the CLI views, which read the running server's own API.
//!
//! Why not a full client library: the views make a handful of GETs to a server on this host
//! (or the operator's LAN), plain HTTP, `Connection: close`; a few dozen lines over a
//! `TcpStream` avoid a TLS stack and a second async runtime in every CLI call. An API behind
//! TLS is not read this way: the views fall back to the lease store.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail};

/// Largest answer read (the lease table of a large server as JSON fits easily).
const MAX_BODY: u64 = 256 * 1024 * 1024;

/// GETs `path` from `addr` with `X-Api-Key: key`; returns the body of a 200 answer.
pub fn get(addr: SocketAddr, key: &str, path: &str, timeout: Duration) -> anyhow::Result<String> {
    request(addr, key, "GET", path, timeout)
}

/// POSTs an empty body to `path` (a command such as `/ha/maintenance`); returns the body of a
/// 200 answer, else an error carrying the API's message.
pub fn post(addr: SocketAddr, key: &str, path: &str, timeout: Duration) -> anyhow::Result<String> {
    request(addr, key, "POST", path, timeout)
}

fn request(
    addr: SocketAddr,
    key: &str,
    method: &str,
    path: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("cannot connect to the API at {addr}"))?;
    s.set_read_timeout(Some(timeout)).ok();
    s.set_write_timeout(Some(timeout)).ok();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nX-Api-Key: {key}\r\nAccept: application/json\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .context("sending the request")?;
    let mut raw = Vec::new();
    s.take(MAX_BODY)
        .read_to_end(&mut raw)
        .context("reading the answer")?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("the API's answer has no header end")?;
    let head = String::from_utf8_lossy(raw.get(..split).unwrap_or_default()).into_owned();
    let body = raw.get(split + 4..).unwrap_or_default();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("the API's answer has no status")?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    let body = String::from_utf8(body).context("the API's answer is not UTF-8")?;
    if status != 200 {
        bail!(
            "the API answered {status} to {method} {path}: {}",
            body.trim()
        );
    }
    Ok(body)
}

/// Decodes a chunked body.
fn dechunk(mut b: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("bad chunk header")?;
        let size_text = String::from_utf8_lossy(b.get(..eol).unwrap_or_default()).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .context("bad chunk size")?;
        b = b.get(eol + 2..).unwrap_or_default();
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(b.get(..size).context("truncated chunk")?);
        b = b.get(size + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
        assert!(dechunk(b"zz\r\n").is_err());
        assert!(dechunk(b"9\r\nab").is_err());
    }
}
