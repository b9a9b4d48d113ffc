//! The RESP request parser side by side with the real `redis-server`
//! (Debian's; `scripts/deps.d/25-bench-tools.sh`): the same bytes go to
//! both, and what Redis made of them (the argument it echoes back, or the
//! protocol error it answers before closing) must be what the parser gives.
//! Inline lines are generated from quotes, backslashes, hex escapes and
//! blanks, where hand-written cases miss things; bad headers are listed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use distcache_wire::resp::{RespLimits, parse_request};

#[path = "../../core/tests/support/resp.rs"]
#[allow(dead_code)] // this test uses the readiness check alone
mod resp_support;
use resp_support::answers_as;

/// A `redis-server` on a free loopback port, killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/deps.d/25-bench-tools.sh installs it)");
        let started = Instant::now();
        while !answers_as(port, child.id()) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { child, port }
    }

    /// Sends `bytes` on a fresh connection and returns Redis's first reply:
    /// `Ok(bulk)` for a bulk string, `Err(line)` for any other reply line.
    fn ask(&self, bytes: &[u8]) -> Result<Vec<u8>, String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(bytes).unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).expect("a reply");
        let line = line.trim_end().to_string();
        match line.strip_prefix('$') {
            Some(len) => {
                let len: usize = len.parse().expect("a bulk length");
                let mut data = vec![0; len + 2];
                reader.read_exact(&mut data).expect("the bulk");
                data.truncate(len);
                Ok(data)
            }
            None => Err(line),
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What our parser makes of `bytes`, in the form `Redis::ask` reports:
/// the echoed argument, or the error line Redis would send.
fn ours(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut buf = BytesMut::from(bytes);
    match parse_request(&mut buf, &RespLimits::default()) {
        Err(e) => Err(format!("-ERR {e}")),
        Ok(None) => Err("(waiting for more)".into()),
        Ok(Some(args)) if args.len() == 2 && args[0].eq_ignore_ascii_case(b"ECHO") => {
            Ok(args[1].to_vec())
        }
        Ok(Some(args)) if args[0].eq_ignore_ascii_case(b"ECHO") => {
            Err("-ERR wrong number of arguments for 'echo' command".into())
        }
        Ok(Some(args)) => Err(format!("(not an ECHO: {args:?})")),
    }
}

/// A small deterministic generator (the test must be repeatable).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

#[test]
fn inline_requests_parse_as_redis_parses_them() {
    let redis = Redis::start();
    // Segments: bare, "double-quoted" or 'single-quoted' runs of pieces
    // (escapes included), now and then a stray quote or a missing closing
    // one, so that both the accepted and the refused paths are walked.
    let pieces: &[&str] = &[
        "a", "b", "x", "4", "F", " ", r"\t", r"\\", r"\x", r"\x4", r"\x41", r"\x7e", r"\xZZ",
        r"\n", r"\r", r"\b", r"\a", r"\'", r#"\""#, "\"", "'", "é",
    ];
    let mut rng = Lcg(0x5eed);
    let mut compared = 0;
    let mut errors = 0;
    for case in 0..600 {
        let mut arg = String::new();
        for _ in 0..(1 + rng.next() % 3) {
            let quote = ["", "\"", "'"][rng.next() as usize % 3];
            let mut body = String::new();
            for _ in 0..(1 + rng.next() % 4) {
                let piece = pieces[rng.next() as usize % pieces.len()];
                // Inside quotes, a bare quote of the same kind would close
                // them early: mostly leave those out.
                if !quote.is_empty() && piece == quote && rng.next() % 4 != 0 {
                    continue;
                }
                if quote.is_empty() && piece == " " {
                    continue;
                }
                body.push_str(piece);
            }
            let close = if rng.next() % 20 == 0 { "" } else { quote };
            arg.push_str(&format!("{quote}{body}{close}"));
            if !quote.is_empty() && rng.next() % 3 == 0 {
                arg.push(' ');
            }
        }
        let line = format!("ECHO {arg}\r\n");
        let (theirs, mine) = (redis.ask(line.as_bytes()), ours(line.as_bytes()));
        assert_eq!(mine, theirs, "case {case}: {line:?}");
        compared += 1;
        errors += usize::from(theirs.is_err());
    }
    // The generator reaches both outcomes.
    assert!(
        errors > 30 && compared - errors > 150,
        "{errors} errors of {compared}"
    );
}

#[test]
fn multibulk_requests_and_their_refusals_match_redis() {
    let redis = Redis::start();
    let cases: &[&[u8]] = &[
        b"*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n",
        b"*2\r\n$4\r\nECHO\r\n$0\r\n\r\n",
        b"*2\r\n$4\r\nECHO\r\n$4\r\na\r\nb\r\n",
        b"*x\r\n",
        b"*1\r\n+PING\r\n",
        b"*2\r\n$4\r\nECHO\r\n$-1\r\n",
        b"*2\r\n$4\r\nECHO\r\n$abc\r\n",
        b"*2\r\n$4\r\nECHO\r\n$600000000\r\n",
        b"*3\r\n$4\r\nECHO\r\n$1\r\na\r\n$1\r\nb\r\n",
    ];
    for bytes in cases {
        assert_eq!(
            ours(bytes),
            redis.ask(bytes),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}
