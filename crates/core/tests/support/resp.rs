//! A small blocking RESP2/RESP3 client and frame parser for the
//! differential tests: enough to talk to a real redis-server and to read
//! back our own encoded replies with the same parser, so both sides are
//! compared as the same kind of tree.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// A parsed reply. Nulls keep their RESP2 kind so that `$-1` and `*-1`
/// are told apart.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Frame {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    NullBulk,
    NullArray,
    Null,
    Double(String),
    Bool(bool),
    Array(Vec<Frame>),
    Set(Vec<Frame>),
    Map(Vec<(Frame, Frame)>),
    /// A RESP3 push frame (`>`): Pub/Sub messages and confirmations.
    Push(Vec<Frame>),
}

pub fn encode_command(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

pub fn read_frame(r: &mut impl BufRead) -> std::io::Result<Frame> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if line.len() < 3 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "short line",
        ));
    }
    let kind = line[0];
    let body = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
    let n = || body.parse::<i64>().unwrap();
    Ok(match kind {
        b'+' => Frame::Simple(body),
        b'-' => Frame::Error(body),
        b':' => Frame::Int(n()),
        b'$' if n() < 0 => Frame::NullBulk,
        b'$' => {
            let mut buf = vec![0; n() as usize + 2];
            r.read_exact(&mut buf)?;
            buf.truncate(buf.len() - 2);
            Frame::Bulk(buf)
        }
        b'*' if n() < 0 => Frame::NullArray,
        b'*' => Frame::Array((0..n()).map(|_| read_frame(r)).collect::<Result<_, _>>()?),
        b'>' => Frame::Push((0..n()).map(|_| read_frame(r)).collect::<Result<_, _>>()?),
        b'~' => Frame::Set((0..n()).map(|_| read_frame(r)).collect::<Result<_, _>>()?),
        b'%' => Frame::Map(
            (0..n())
                .map(|_| Ok((read_frame(r)?, read_frame(r)?)))
                .collect::<std::io::Result<_>>()?,
        ),
        b'_' => Frame::Null,
        b',' => Frame::Double(body),
        b'#' => Frame::Bool(body == "t"),
        other => panic!("unexpected RESP type byte {other:?} in {line:?}"),
    })
}

pub fn parse_frame(bytes: &[u8]) -> Frame {
    let mut r = BufReader::new(bytes);
    let f = read_frame(&mut r).expect("our own reply parses");
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "trailing bytes after our reply");
    f
}

pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    pub fn connect(port: u16) -> std::io::Result<Client> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
        })
    }

    pub fn call(&mut self, args: &[Vec<u8>]) -> Frame {
        self.writer.write_all(&encode_command(args)).unwrap();
        read_frame(&mut self.reader).unwrap()
    }

    /// Works around a Redis 7.0 bug before `commands` reach a
    /// redis-server outside a transaction: SORT reads a number with
    /// `strtod` without clearing `errno` first, so after any earlier
    /// command's `ERANGE` (a ZADD of `1e400`, say) it refuses valid numbers
    /// ("One or more scores can't be converted into double"). A MULTI
    /// block's SORTs run at EXEC: clear before its MULTI.
    #[allow(dead_code)]
    pub fn clear_errno_before_sort(&mut self, commands: &[&[Vec<u8>]]) {
        let sorts = commands.iter().any(|args| {
            args.first().is_some_and(|name| {
                [&b"sort"[..], b"sort_ro", b"multi"]
                    .iter()
                    .any(|n| name.eq_ignore_ascii_case(n))
            })
        });
        if sorts {
            self.clear_errno();
        }
    }

    /// INCRBYFLOAT clears Redis's `errno` (see
    /// [`Client::clear_errno_before_sort`]); its scratch key is deleted at
    /// once.
    #[allow(dead_code)]
    pub fn clear_errno(&mut self) {
        for reset in [
            &["INCRBYFLOAT", "__errno_reset", "0"][..],
            &["DEL", "__errno_reset"],
        ] {
            let args: Vec<Vec<u8>> = reset.iter().map(|a| a.as_bytes().to_vec()).collect();
            self.call(&args);
        }
    }

    /// Sends every command in one write, then reads their replies (the
    /// cluster differential's pipelines; the single-node one has none).
    #[allow(dead_code)]
    pub fn pipeline(&mut self, commands: &[Vec<Vec<u8>>]) -> Vec<Frame> {
        let mut out = Vec::new();
        for args in commands {
            out.extend(encode_command(args));
        }
        self.writer.write_all(&out).unwrap();
        commands
            .iter()
            .map(|_| read_frame(&mut self.reader).unwrap())
            .collect()
    }

    /// Sends a command without reading anything (Pub/Sub's replies come
    /// as any number of frames).
    #[allow(dead_code)]
    pub fn send_str(&mut self, args: &[&str]) {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        self.writer.write_all(&encode_command(&args)).unwrap();
    }

    /// The next frame, or `None` when none comes within `limit`.
    #[allow(dead_code)]
    pub fn read_within(&mut self, limit: std::time::Duration) -> Option<Frame> {
        if self.reader.buffer().is_empty() {
            self.writer.set_read_timeout(Some(limit)).unwrap();
            let filled = self.reader.fill_buf().map(|b| !b.is_empty());
            self.writer.set_read_timeout(None).unwrap();
            match filled {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None;
                }
                Err(e) => panic!("read failed: {e}"),
            }
        }
        Some(read_frame(&mut self.reader).unwrap())
    }

    pub fn call_str(&mut self, args: &[&str]) -> Frame {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        self.call(&args)
    }
}

/// A redis-server on a free loopback port, stopped on drop.
pub struct RedisServer {
    child: std::process::Child,
    pub port: u16,
}

impl RedisServer {
    /// A redis-server on a port that was free a moment ago. Another
    /// program may take the port first (the kernel hands the same range
    /// out to outgoing connections), and then this one exits: it is
    /// started again on another port.
    pub fn start() -> RedisServer {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = std::process::Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("redis-server is installed (scripts/deps.d/25-bench-tools.sh)");
            let mut server = RedisServer { child, port };
            for _ in 0..500 {
                if answers_as(port, server.child.id()) {
                    return server;
                }
                if let Ok(Some(_)) = server.child.try_wait() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        panic!("redis-server did not start (5 ports tried)");
    }
}

/// Whether the redis-server of process `pid` answers on the loopback
/// `port`. Asked by its process id, since another program may hold the
/// port, and since a connect to a port nobody listens on can succeed
/// anyway, connected to itself (TCP's simultaneous open, when the kernel
/// picks that same port as the connection's own), "answering" with what
/// was sent.
pub fn answers_as(port: u16, pid: u32) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(1)));
    if stream.write_all(b"INFO server\r\n").is_err() {
        return false;
    }
    let want = format!("process_id:{pid}\r\n");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while seen.len() < 64 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
        if String::from_utf8_lossy(&seen).contains(&want) {
            return true;
        }
    }
    false
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
