//! A client of ClamAV's daemon (`clamd`) over TCP: `INSTREAM` scanning of a byte stream, and
//! `PING`. It fails closed: anything but clamd's clear `OK` is not clean, and a scanner that
//! cannot be reached, answers late or answers what this client cannot read is an error the caller
//! must treat as "do not accept" (503), never as clean.
//!
//! The protocol (clamd(8)): send `zINSTREAM\0`, then chunks as a 4-byte big-endian length and the
//! bytes, then a zero length; the reply is one NUL-terminated line: `stream: OK`,
//! `stream: <signature> FOUND`, or an error such as `INSTREAM size limit exceeded. ERROR` (clamd
//! may close the connection before reading everything sent; the reply is read all the same).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bytes per chunk sent to clamd.
const CHUNK: usize = 64 * 1024;
/// The longest reply read.
const MAX_REPLY: u64 = 1024;

/// What clamd said of the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    /// The name of the signature that matched.
    Infected(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// Not reachable, too slow, or the connection broke: nothing was decided.
    #[error("the virus scanner is unavailable: {0}")]
    Unavailable(String),
    /// Larger than clamd accepts (its `StreamMaxLength`).
    #[error("larger than the virus scanner accepts")]
    TooLarge,
    /// clamd answered something else (an error of its own): nothing was decided.
    #[error("the virus scanner answered an error: {0}")]
    Failed(String),
}

/// Where clamd listens, and how long a scan may take.
#[derive(Debug, Clone)]
pub struct Scanner {
    address: String,
    timeout: Duration,
}

impl Scanner {
    /// `address` is `host:port`; `timeout` bounds each whole exchange.
    pub fn new(address: impl Into<String>, timeout: Duration) -> Self {
        Scanner { address: address.into(), timeout }
    }

    /// Whether clamd answers `PONG`.
    pub async fn ping(&self) -> Result<(), ScanError> {
        let reply = self
            .exchange(|mut stream| async move {
                stream.write_all(b"zPING\0").await?;
                read_reply(&mut stream).await
            })
            .await?;
        match reply.as_str() {
            "PONG" => Ok(()),
            other => Err(ScanError::Failed(other.to_owned())),
        }
    }

    /// Scans everything `reader` yields, within the scanner's timeout.
    pub async fn scan<R: AsyncRead + Unpin + Send>(&self, mut reader: R) -> Result<Verdict, ScanError> {
        let work = async {
            let mut session = self.start().await?;
            let mut buffer = vec![0u8; CHUNK];
            loop {
                let n = reader.read(&mut buffer).await.map_err(|e| ScanError::Unavailable(e.to_string()))?;
                if n == 0 {
                    break;
                }
                session.send(&buffer[..n]).await?;
            }
            session.finish().await
        };
        tokio::time::timeout(self.timeout, work).await.unwrap_or_else(|_| Err(self.late()))
    }

    /// Scans `bytes`.
    pub async fn scan_bytes(&self, bytes: &[u8]) -> Result<Verdict, ScanError> {
        self.scan(bytes).await
    }

    /// Opens an `INSTREAM` scan fed piece by piece ([`ScanSession::send`]) as the bytes arrive,
    /// so nothing need be held whole; [`ScanSession::finish`] gives the verdict. Each step is
    /// bounded by the scanner's timeout.
    pub async fn start(&self) -> Result<ScanSession, ScanError> {
        let connect = async {
            let mut stream = TcpStream::connect(&self.address).await?;
            stream.write_all(b"zINSTREAM\0").await?;
            Ok::<_, std::io::Error>(stream)
        };
        match tokio::time::timeout(self.timeout, connect).await {
            Ok(Ok(stream)) => Ok(ScanSession { stream, timeout: self.timeout }),
            Ok(Err(e)) => Err(ScanError::Unavailable(e.to_string())),
            Err(_) => Err(self.late()),
        }
    }

    fn late(&self) -> ScanError {
        ScanError::Unavailable(format!("no answer within {} s", self.timeout.as_secs_f32()))
    }

    async fn exchange<F, Fut>(&self, talk: F) -> Result<String, ScanError>
    where
        F: FnOnce(TcpStream) -> Fut,
        Fut: std::future::Future<Output = std::io::Result<String>>,
    {
        let work = async {
            let stream = TcpStream::connect(&self.address).await?;
            talk(stream).await
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(ScanError::Unavailable(e.to_string())),
            Err(_) => Err(self.late()),
        }
    }
}

/// An `INSTREAM` scan under way ([`Scanner::start`]).
pub struct ScanSession {
    stream: TcpStream,
    timeout: Duration,
}

impl ScanSession {
    /// Sends the next bytes of the stream.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), ScanError> {
        let stream = &mut self.stream;
        let sent = async {
            for piece in bytes.chunks(CHUNK) {
                let length = u32::try_from(piece.len()).map_err(std::io::Error::other)?;
                stream.write_all(&length.to_be_bytes()).await?;
                stream.write_all(piece).await?;
            }
            Ok::<_, std::io::Error>(())
        };
        match tokio::time::timeout(self.timeout, sent).await {
            Ok(Ok(())) => Ok(()),
            // clamd closes early on a stream past its limit, and says why: read what it said.
            Ok(Err(e)) => match tokio::time::timeout(self.timeout, read_reply(&mut self.stream)).await {
                Ok(Ok(reply)) if !reply.is_empty() => parse(&reply).and(Err(ScanError::Unavailable(e.to_string()))),
                _ => Err(ScanError::Unavailable(e.to_string())),
            },
            Err(_) => Err(ScanError::Unavailable(format!("no answer within {} s", self.timeout.as_secs_f32()))),
        }
    }

    /// Ends the stream and reads clamd's verdict.
    pub async fn finish(mut self) -> Result<Verdict, ScanError> {
        let stream = &mut self.stream;
        let work = async {
            // A failed write is not yet an answer: clamd may have closed early and said why.
            let ended = async {
                stream.write_all(&0u32.to_be_bytes()).await?;
                stream.flush().await
            }
            .await;
            match (read_reply(stream).await, ended) {
                (Ok(reply), _) if !reply.is_empty() => Ok(reply),
                (_, Err(e)) | (Err(e), Ok(())) => Err(e),
                (Ok(reply), Ok(())) => Ok(reply),
            }
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok(reply)) => parse(&reply),
            Ok(Err(e)) => Err(ScanError::Unavailable(e.to_string())),
            Err(_) => Err(ScanError::Unavailable(format!("no answer within {} s", self.timeout.as_secs_f32()))),
        }
    }
}

/// One reply, up to its NUL (or the end of the connection).
async fn read_reply(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut bytes = Vec::new();
    let mut limited = stream.take(MAX_REPLY);
    let mut byte = [0u8; 1];
    while limited.read(&mut byte).await? == 1 {
        if byte[0] == 0 {
            break;
        }
        bytes.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&bytes).trim().to_owned())
}

/// clamd's answer to `INSTREAM`.
fn parse(reply: &str) -> Result<Verdict, ScanError> {
    if reply == "stream: OK" {
        return Ok(Verdict::Clean);
    }
    if let Some(name) = reply.strip_prefix("stream: ").and_then(|r| r.strip_suffix(" FOUND")) {
        return Ok(Verdict::Infected(name.to_owned()));
    }
    if reply.contains("size limit exceeded") {
        return Err(ScanError::TooLarge);
    }
    if reply.is_empty() {
        return Err(ScanError::Unavailable("the connection closed without an answer".into()));
    }
    Err(ScanError::Failed(reply.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read_strictly() {
        assert_eq!(parse("stream: OK"), Ok(Verdict::Clean));
        assert_eq!(parse("stream: Eicar-Test-Signature FOUND"), Ok(Verdict::Infected("Eicar-Test-Signature".into())));
        assert_eq!(parse("INSTREAM size limit exceeded. ERROR"), Err(ScanError::TooLarge));
        assert!(matches!(parse(""), Err(ScanError::Unavailable(_))));
        assert!(matches!(parse("stream: OK but not quite"), Err(ScanError::Failed(_))));
        assert!(matches!(parse("Can't allocate memory ERROR"), Err(ScanError::Failed(_))));
    }
}
