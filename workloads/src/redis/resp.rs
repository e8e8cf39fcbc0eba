//! A minimal Redis client: RESP2 requests and replies on one TCP connection,
//! no pipelining, no retries, no reconnects (the caller decides what a
//! broken connection means for its operation).

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    /// An error reply ("READONLY ...", "ERR ..."): the server did not do it.
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    /// `None`: a null array (EXEC after a failed WATCH).
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text (status or bulk), if it is one.
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Status(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// Why a command has no reply.
#[derive(Debug)]
pub enum RespError {
    /// Nothing was sent: the connection could not be made.
    Connect(String),
    /// The request may have reached the server: a timeout, a reset, a
    /// closed connection or a reply that does not parse.
    Unknown(String),
}

impl std::fmt::Display for RespError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RespError::Connect(e) | RespError::Unknown(e) => f.write_str(e),
        }
    }
}

/// Encodes a command as a RESP array of bulk strings.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Parses one reply from `r`.
pub async fn read_reply<R: AsyncBufReadExt + Unpin + Send>(r: &mut R) -> Result<Reply, String> {
    let mut line = Vec::new();
    if r.read_until(b'\n', &mut line)
        .await
        .map_err(|e| e.to_string())?
        == 0
    {
        return Err("the server closed the connection".into());
    }
    if !line.ends_with(b"\r\n") || line.len() < 3 {
        return Err(format!(
            "a reply line that does not end in CRLF: {:?}",
            String::from_utf8_lossy(&line)
        ));
    }
    let body = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
    let int = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| format!("not a number in a reply: {s:?}"))
    };
    Ok(match line[0] {
        b'+' => Reply::Status(body),
        b'-' => Reply::Error(body),
        b':' => Reply::Int(int(&body)?),
        b'$' => {
            let n = int(&body)?;
            if n < 0 {
                Reply::Bulk(None)
            } else {
                let mut buf = vec![0; n as usize + 2];
                r.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
                buf.truncate(n as usize);
                Reply::Bulk(Some(buf))
            }
        }
        b'*' => {
            let n = int(&body)?;
            if n < 0 {
                Reply::Array(None)
            } else {
                let mut items = Vec::with_capacity(n.min(1024) as usize);
                for _ in 0..n {
                    items.push(Box::pin(read_reply(r)).await?);
                }
                Reply::Array(Some(items))
            }
        }
        other => return Err(format!("an unknown reply type {:?}", other as char)),
    })
}

/// One connection to a server.
pub struct Conn {
    pub addr: SocketAddr,
    stream: BufReader<TcpStream>,
    timeout: Duration,
}

impl Conn {
    /// Connects within a second; `timeout` bounds each command.
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Conn, RespError> {
        let s = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr))
            .await
            .map_err(|_| RespError::Connect(format!("connecting to {addr} timed out")))?
            .map_err(|e| RespError::Connect(format!("connecting to {addr}: {e}")))?;
        let _ = s.set_nodelay(true);
        Ok(Conn {
            addr,
            stream: BufReader::new(s),
            timeout,
        })
    }

    /// Sends one command and reads its reply.
    pub async fn cmd(&mut self, args: &[&[u8]]) -> Result<Reply, RespError> {
        let req = encode(args);
        let work = async {
            self.stream
                .get_mut()
                .write_all(&req)
                .await
                .map_err(|e| e.to_string())?;
            read_reply(&mut self.stream).await
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(RespError::Unknown(format!("{}: {e}", self.addr))),
            Err(_) => Err(RespError::Unknown(format!(
                "{}: no reply within {:?}",
                self.addr, self.timeout
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> Result<Reply, String> {
        read_reply(&mut BufReader::new(bytes)).await
    }

    #[tokio::test]
    async fn replies_of_every_type() {
        assert_eq!(parse(b"+OK\r\n").await, Ok(Reply::Status("OK".into())));
        assert_eq!(
            parse(b"-READONLY You can't write\r\n").await,
            Ok(Reply::Error("READONLY You can't write".into()))
        );
        assert_eq!(parse(b":42\r\n").await, Ok(Reply::Int(42)));
        assert_eq!(parse(b"$-1\r\n").await, Ok(Reply::Bulk(None)));
        assert_eq!(
            parse(b"$5\r\na\r\nbc\r\n").await,
            Ok(Reply::Bulk(Some(b"a\r\nbc".to_vec())))
        );
        assert_eq!(parse(b"*-1\r\n").await, Ok(Reply::Array(None)));
        assert_eq!(
            parse(b"*2\r\n$2\r\nip\r\n:1\r\n").await,
            Ok(Reply::Array(Some(vec![
                Reply::Bulk(Some(b"ip".to_vec())),
                Reply::Int(1)
            ])))
        );
        assert!(parse(b"").await.is_err());
        assert!(parse(b"$3\r\nab").await.is_err());
        assert!(parse(b"?x\r\n").await.is_err());
        assert!(parse(b":x\r\n").await.is_err());
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        assert_eq!(
            encode(&[b"SET", b"k", b"a b"]),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\na b\r\n".to_vec()
        );
    }
}
