//! `zero_copy`'s sender over real TCP sockets on loopback: a body leaves whole and in
//! order through the pipes (also when the socket takes it a bit at a time), a peer that
//! goes away mid-body ends the write with an error, what cannot go through a pipe goes
//! the plain way, and no descriptor is left behind.

#![cfg(target_os = "linux")]

use std::future::Future;
use std::io::{self, IoSlice};
use std::sync::{Mutex, Once, PoisonError};
use std::time::Duration;

use reelcast::zero_copy::{sender, shareable, spliced_bytes, Sender};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The tests count the process's descriptors and spliced bytes: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
/// Set once the process has made its first connection.
static WARM: Once = Once::new();

/// Runs `test` alone on a runtime of its own; no descriptor may be left open after it
/// (the connection's pipes, the bodies' pipes once the bodies are dropped).
fn alone<F: Future<Output = ()>>(test: impl FnOnce() -> F) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    // What the process opens once for good on its first connection is not a leak.
    WARM.call_once(|| {
        runtime().block_on(async {
            let (mut out, mut client) = pair(None).await;
            out.write_all(b"x").await.unwrap();
            client.read_exact(&mut [0]).await.unwrap();
        });
    });
    let fds = open_fds();
    runtime().block_on(test());
    assert_eq!(open_fds(), fds, "descriptors left open: {:?}", fd_names());
}

fn fd_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .map(|p| p.display().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn body(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 4096) as u8)
        .collect()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

/// A connected pair: the server's end as a [`Sender`] (its send buffer `sndbuf` bytes
/// when given), the client's plain.
async fn pair(sndbuf: Option<usize>) -> (Sender, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    if let Some(size) = sndbuf {
        socket2::SockRef::from(&server)
            .set_send_buffer_size(size)
            .unwrap();
        socket2::SockRef::from(&client)
            .set_recv_buffer_size(size)
            .unwrap();
    }
    (sender(server), client)
}

/// Writes `head` then `body` as hyper does: one vectored write, then again from where
/// the socket stopped taking bytes. The number of writes it took.
async fn write_answer(out: &mut Sender, head: &[u8], body: &[u8]) -> io::Result<usize> {
    let (mut done, mut writes) = (0, 0);
    while done < head.len() + body.len() {
        let n = if done < head.len() {
            let bufs = [IoSlice::new(&head[done..]), IoSlice::new(body)];
            out.write_vectored(&bufs).await?
        } else {
            out.write_vectored(&[IoSlice::new(&body[done - head.len()..])])
                .await?
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        done += n;
        writes += 1;
    }
    Ok(writes)
}

async fn read_exact(client: &mut TcpStream, len: usize, pause: Option<Duration>) -> Vec<u8> {
    let mut got = vec![0; len];
    let mut at = 0;
    while at < len {
        let end = (at + 1500).min(len);
        let n = client.read(&mut got[at..end]).await.unwrap();
        assert!(n > 0, "the connection closed after {at} of {len} bytes");
        at += n;
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
    }
    got
}

#[test]
fn bodies_leave_whole_through_pipes_and_nothing_is_left_open() {
    alone(|| async {
        let data = body(200_003);
        let shared = shareable(data.clone());
        let (mut out, mut client) = pair(None).await;
        let before = spliced_bytes();
        // Three answers on one connection, as keep-alive gives them.
        for i in 0..3 {
            let head = format!("HEAD {i}\r\n\r\n");
            let (written, got) = tokio::join!(
                write_answer(&mut out, head.as_bytes(), &shared),
                read_exact(&mut client, head.len() + data.len(), None)
            );
            written.unwrap();
            assert_eq!(&got[..head.len()], head.as_bytes());
            assert!(got[head.len()..] == data[..], "answer {i}: other bytes");
        }
        assert!(
            spliced_bytes() - before >= 3 * data.len() as u64,
            "the bodies were copied, not spliced"
        );
    });
}

#[test]
fn a_socket_that_takes_little_at_a_time_gets_the_body_in_order() {
    alone(|| async {
        let data = body(150_000);
        let shared = shareable(data.clone());
        let (mut out, mut client) = pair(Some(4096)).await;
        let head = b"HTTP/1.1 200 OK\r\n\r\n";
        let (written, got) = tokio::join!(
            write_answer(&mut out, head, &shared),
            read_exact(
                &mut client,
                head.len() + data.len(),
                Some(Duration::from_micros(200))
            )
        );
        let writes = written.unwrap();
        assert!(
            writes > 2,
            "the socket took it all at once: no partial sends"
        );
        assert_eq!(&got[..head.len()], head);
        assert!(got[head.len()..] == data[..], "other bytes");
    });
}

#[test]
fn a_peer_gone_mid_body_ends_the_write_with_an_error() {
    alone(|| async {
        let data = body(300_000);
        let shared = shareable(data.clone());
        let (mut out, mut client) = pair(Some(8192)).await;
        let writer = async {
            // Until the peer's going shows: the first answers may still fit the buffers.
            for _ in 0..100 {
                write_answer(&mut out, b"head\r\n\r\n", &shared).await?;
            }
            Ok::<_, io::Error>(())
        };
        let reader = async {
            let mut some = vec![0; 10_000];
            client.read_exact(&mut some).await.unwrap();
            drop(client);
        };
        let (written, ()) = tokio::join!(
            tokio::time::timeout(Duration::from_secs(10), writer),
            reader
        );
        let written = written.expect("the write hung after the peer went");
        assert!(written.is_err(), "the write succeeded to a closed peer");
    });
}

#[test]
fn what_no_pipe_holds_goes_the_plain_way() {
    alone(|| async {
        let data = body(100_000);
        let shared = shareable(data.clone());
        let small = shareable(body(1000));
        let (mut out, mut client) = pair(None).await;
        let before = spliced_bytes();
        // A slice from the middle of a body (a part of a segment), and a small body.
        let middle = shared.slice(30_000..70_000);
        let (written, got) = tokio::join!(
            write_answer(&mut out, b"h\r\n", &middle),
            read_exact(&mut client, 3 + middle.len(), None)
        );
        written.unwrap();
        assert!(got[3..] == data[30_000..70_000]);
        let (written, got) = tokio::join!(
            write_answer(&mut out, b"h\r\n", &small),
            read_exact(&mut client, 3 + small.len(), None)
        );
        written.unwrap();
        assert!(got[3..] == small[..]);
        assert_eq!(spliced_bytes(), before, "these have no pipe to go through");
    });
}
