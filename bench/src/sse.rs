//! A small HTTP/1.1 client for one streamed request (std only): POST a JSON body, then hand each
//! server-sent event's `data:` payload to a callback with the time it arrived. What the load
//! generator needs and nothing more; every failure is an error string naming what went wrong.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Where a server listens, and the key it wants (sent as `Authorization: Bearer`).
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub api_key: Option<String>,
}

/// Posts `body` to `path` and calls `on_data(arrived, payload)` for every `data:` line of the
/// event stream until the server closes it or `on_data` returns false. A status other than 200
/// is an error holding the response body.
pub fn post_stream(
    to: &Endpoint,
    path: &str,
    body: &str,
    timeout: Duration,
    mut on_data: impl FnMut(Instant, &str) -> bool,
) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&to.addr, timeout).map_err(|e| format!("connect to {}: {e}", to.addr))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let auth = to.api_key.as_ref().map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\n{auth}Content-Length: {}\r\n\r\n",
        to.addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(body.as_bytes())).map_err(|e| format!("send to {}: {e}", to.addr))?;

    let mut reader = BufReader::new(stream);
    let (status, chunked) = read_head(&mut reader)?;
    let mut body = Body { reader, chunked, left: 0, done: false };
    if status != 200 {
        let mut text = Vec::new();
        while let Some(line) = body.line()? {
            text.extend(line);
        }
        return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&text).trim()));
    }
    while let Some(line) = body.line()? {
        let arrived = Instant::now();
        let line = String::from_utf8_lossy(&line);
        if let Some(data) = line.trim_end_matches(['\r', '\n']).strip_prefix("data:")
            && !on_data(arrived, data.trim_start())
        {
            break;
        }
    }
    Ok(())
}

/// Reads the status line and headers; returns the status and whether the body is chunked.
fn read_head(reader: &mut BufReader<TcpStream>) -> Result<(u16, bool), String> {
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| format!("reading the status line: {e}"))?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP status line: {:?}", line.trim_end()))?;
    let mut chunked = false;
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(|e| format!("reading headers: {e}"))? == 0 {
            return Err("the connection closed inside the headers".into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            return Ok((status, chunked));
        }
        if let Some((k, v)) = l.split_once(':')
            && k.trim().eq_ignore_ascii_case("transfer-encoding")
        {
            chunked |= v.to_ascii_lowercase().contains("chunked");
        }
    }
}

/// A response body read line by line, through the chunked encoding when there is one.
struct Body {
    reader: BufReader<TcpStream>,
    chunked: bool,
    /// Bytes left in the current chunk.
    left: usize,
    done: bool,
}

impl Body {
    /// The next line, with its newline; `None` at the end of the body.
    fn line(&mut self) -> Result<Option<Vec<u8>>, String> {
        let mut line = Vec::new();
        loop {
            if self.done {
                return Ok((!line.is_empty()).then_some(line));
            }
            if self.chunked && self.left == 0 {
                self.left = self.chunk_size()?;
                if self.left == 0 {
                    self.done = true;
                    continue;
                }
            }
            let buf = self.reader.fill_buf().map_err(|e| format!("reading the body: {e}"))?;
            if buf.is_empty() {
                if self.chunked {
                    return Err("the connection closed inside a chunk".into());
                }
                self.done = true;
                continue;
            }
            let avail = if self.chunked { buf.len().min(self.left) } else { buf.len() };
            let (take, ends) = match buf[..avail].iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (avail, false),
            };
            line.extend_from_slice(&buf[..take]);
            self.reader.consume(take);
            if self.chunked {
                self.left -= take;
                if self.left == 0 {
                    self.end_chunk()?;
                }
            }
            if ends {
                return Ok(Some(line));
            }
        }
    }

    /// Reads a chunk-size line.
    fn chunk_size(&mut self) -> Result<usize, String> {
        let mut size = String::new();
        self.reader.read_line(&mut size).map_err(|e| format!("reading a chunk size: {e}"))?;
        let hex = size.trim().split(';').next().unwrap_or("");
        usize::from_str_radix(hex, 16).map_err(|_| format!("bad chunk size {:?}", size.trim()))
    }

    /// Consumes the CRLF after a chunk's data.
    fn end_chunk(&mut self) -> Result<(), String> {
        let mut crlf = [0u8; 2];
        self.reader.read_exact(&mut crlf).map_err(|e| format!("reading a chunk's end: {e}"))?;
        if &crlf != b"\r\n" {
            return Err("a chunk does not end with CRLF".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Serves one connection with `response` (after reading the request head and body).
    fn serve_once(response: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut l = String::new();
                reader.read_line(&mut l).unwrap();
                if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if l == "\r\n" {
                    break;
                }
            }
            reader.read_exact(&mut vec![0; len]).unwrap();
            s.write_all(response).unwrap();
        });
        addr
    }

    fn events(response: &'static [u8]) -> Result<Vec<String>, String> {
        let to = Endpoint { addr: serve_once(response), api_key: None };
        let mut seen = Vec::new();
        post_stream(&to, "/x", "{}", Duration::from_secs(10), |_, d| {
            seen.push(d.to_owned());
            true
        })?;
        Ok(seen)
    }

    #[test]
    fn data_lines_come_through_chunks_split_anywhere() {
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\ndata: a\r\n9\r\n\n\ndata: b\r\nb\r\nc\n\ndata: [D\r\n6\r\nONE]\n\n\r\n0\r\n\r\n";
        assert_eq!(events(r).unwrap(), ["a", "bc", "[DONE]"]);
    }

    #[test]
    fn a_body_without_chunks_ends_at_close() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: 1\n\n: keep-alive\n\ndata:2\n\n";
        assert_eq!(events(r).unwrap(), ["1", "2"]);
    }

    #[test]
    fn errors_name_the_status_and_the_body() {
        let r = b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 13\r\n\r\n{\"error\":\"x\"}";
        assert_eq!(events(r).unwrap_err(), "HTTP 429: {\"error\":\"x\"}");
        let truncated = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\ndata: a\n";
        assert_eq!(events(truncated).unwrap_err(), "the connection closed inside a chunk");
        assert!(events(b"SMTP ready\r\n").unwrap_err().contains("not an HTTP status line"));
    }
}
