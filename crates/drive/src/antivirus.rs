//! Virus scanning with ClamAV: every upload is streamed to `clamd` (INSTREAM, over TCP or a Unix
//! socket) while its chunks are stored, and its version is committed only on a clean verdict. An
//! infected upload answers `422 virus_detected` and nothing becomes visible (its chunks are
//! collected as garbage). When clamd cannot be reached, `required` decides: refuse (503), or
//! accept unscanned with a warning.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use oppidum_core::config::AntivirusConfig;
use oppidum_store::ByteStream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;

/// Where clamd listens.
#[derive(Debug, Clone)]
enum Address {
    Tcp(String),
    Unix(String),
}

/// The scanner, as configured.
#[derive(Debug, Clone)]
pub struct Antivirus {
    address: Address,
    pub required: bool,
    limit: u64,
    timeout: Duration,
}

/// What clamd said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    Infected(String),
    /// clamd could not be reached or answered nonsense.
    Unavailable(String),
}

/// A scan in progress; see [`Antivirus::scan`].
pub struct Scan {
    task: JoinHandle<Verdict>,
}

impl Scan {
    /// The verdict, once the scanned stream has ended.
    pub async fn verdict(self) -> Verdict {
        self.task.await.unwrap_or_else(|err| Verdict::Unavailable(format!("the scan task failed: {err}")))
    }
}

impl Antivirus {
    /// The scanner of `config`, if an address is set.
    pub fn from_config(config: &AntivirusConfig) -> Option<Self> {
        let raw = config.address.as_deref()?;
        let address = match (raw.strip_prefix("tcp://"), raw.strip_prefix("unix:")) {
            (Some(host), _) => Address::Tcp(host.to_owned()),
            (_, Some(path)) => Address::Unix(path.to_owned()),
            // Refused by configuration validation; scanning stays required and fails closed.
            _ => Address::Tcp(raw.to_owned()),
        };
        Some(Self {
            address,
            required: config.required,
            limit: config.scan_limit.bytes(),
            timeout: Duration::from_secs(config.timeout_secs.max(1)),
        })
    }

    /// Tees `body` to clamd: returns the body to store (unchanged, at the pace clamd reads) and
    /// the scan, whose verdict is ready once the body has been read to its end.
    pub fn scan(&self, body: ByteStream) -> (ByteStream, Scan) {
        let (sender, receiver) = mpsc::channel::<Bytes>(4);
        let sent = Arc::new(AtomicU64::new(0));
        let limit = self.limit;
        let body = body
            .then(move |item| {
                let mut sender = sender.clone();
                let sent = sent.clone();
                async move {
                    if let Ok(chunk) = &item {
                        let already = sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                        let room = usize::try_from(limit.saturating_sub(already)).unwrap_or(usize::MAX);
                        if room > 0 {
                            // The scanner drains its channel even after failing: this never blocks for good.
                            let _ = sender.send(chunk.slice(..chunk.len().min(room))).await;
                        }
                    }
                    item
                }
            })
            .boxed();
        let scanner = self.clone();
        let task = tokio::spawn(async move { scanner.run(receiver).await });
        (body, Scan { task })
    }

    async fn run(&self, mut chunks: mpsc::Receiver<Bytes>) -> Verdict {
        let outcome = match &self.address {
            Address::Tcp(host) => {
                match tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(host)).await {
                    Ok(Ok(stream)) => self.instream(stream, &mut chunks).await,
                    Ok(Err(err)) => Err(format!("cannot connect to clamd at {host}: {err}")),
                    Err(_) => Err(format!("connecting to clamd at {host} timed out")),
                }
            }
            Address::Unix(path) => match tokio::net::UnixStream::connect(path).await {
                Ok(stream) => self.instream(stream, &mut chunks).await,
                Err(err) => Err(format!("cannot connect to clamd at {path}: {err}")),
            },
        };
        // Whatever happened, let the upload finish reading.
        while chunks.next().await.is_some() {}
        outcome.unwrap_or_else(Verdict::Unavailable)
    }

    async fn instream<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut stream: S,
        chunks: &mut mpsc::Receiver<Bytes>,
    ) -> Result<Verdict, String> {
        let io = |err: std::io::Error| format!("talking to clamd failed: {err}");
        stream.write_all(b"zINSTREAM\0").await.map_err(io)?;
        while let Some(chunk) = chunks.next().await {
            let len = u32::try_from(chunk.len()).map_err(|_| "chunk too large".to_owned())?;
            stream.write_all(&len.to_be_bytes()).await.map_err(io)?;
            stream.write_all(&chunk).await.map_err(io)?;
        }
        stream.write_all(&0u32.to_be_bytes()).await.map_err(io)?;
        let mut reply = Vec::new();
        let read = async {
            let mut buf = [0u8; 256];
            while !reply.ends_with(b"\0") && reply.len() < 4096 {
                let n = stream.read(&mut buf).await.map_err(io)?;
                if n == 0 {
                    break;
                }
                reply.extend_from_slice(&buf[..n]);
            }
            Ok::<_, String>(())
        };
        tokio::time::timeout(self.timeout, read).await.map_err(|_| "clamd did not answer in time".to_owned())??;
        Ok(parse_reply(&reply))
    }
}

/// `stream: OK`, `stream: <name> FOUND`, or an error line.
fn parse_reply(reply: &[u8]) -> Verdict {
    let text = String::from_utf8_lossy(reply);
    let text = text.trim_end_matches('\0').trim();
    let body = text.strip_prefix("stream:").map(str::trim);
    match body {
        Some("OK") => Verdict::Clean,
        Some(found) if found.ends_with(" FOUND") => {
            Verdict::Infected(found.trim_end_matches(" FOUND").chars().take(200).collect())
        }
        _ => Verdict::Unavailable(format!("clamd answered `{}`", text.chars().take(200).collect::<String>())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamd_replies_parse() {
        assert_eq!(parse_reply(b"stream: OK\0"), Verdict::Clean);
        assert_eq!(
            parse_reply(b"stream: Eicar-Test-Signature FOUND\0"),
            Verdict::Infected("Eicar-Test-Signature".into())
        );
        assert!(matches!(parse_reply(b"INSTREAM size limit exceeded. ERROR\0"), Verdict::Unavailable(_)));
        assert!(matches!(parse_reply(b""), Verdict::Unavailable(_)));
        assert!(matches!(parse_reply(&[0xff, 0xfe, 0]), Verdict::Unavailable(_)));
    }
}
