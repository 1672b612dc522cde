//! RFC 4571 framing: how ICE-TCP (RFC 6544) carries datagrams on a TCP stream. Each
//! packet (STUN, DTLS, SRTP, SRTCP) is sent as a two-byte big-endian length and then the
//! packet.
//!
//! Sans-IO: bytes in, whole packets out, and packets framed into a buffer. Owns only the
//! framing; must not know sockets or what the packets are.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Largest packet a peer may send us on a TCP stream: what the UDP path takes in one
/// datagram (the hub's receive buffer). Browsers send packets of one path MTU at most.
pub(super) const MAX_INBOUND_FRAME: usize = 2048;

/// A stream that cannot be a peer's ICE-TCP: the connection is to be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum FrameError {
    #[error("frame of {0} bytes is larger than any packet we take")]
    TooLarge(usize),
}

/// Cuts a received byte stream into packets. Holds at most one frame's bytes plus what
/// one read brought: a peer cannot make it grow past `max` + its read size.
pub(super) struct FrameReader {
    buf: BytesMut,
    max: usize,
}

impl FrameReader {
    pub(super) fn new(max: usize) -> Self {
        FrameReader {
            buf: BytesMut::with_capacity(max + 2),
            max,
        }
    }

    /// Takes bytes as they came off the stream (any split: half a length, several frames).
    pub(super) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole packet, `None` until one is complete. Empty frames (length 0) carry
    /// nothing and are skipped. A length over `max` is an error: the stream is not framed
    /// packets, and waiting for the rest would hold up to 64 KiB for nothing.
    pub(super) fn next_packet(&mut self) -> Result<Option<Bytes>, FrameError> {
        loop {
            if self.buf.len() < 2 {
                return Ok(None);
            }
            let len = usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]]));
            if len > self.max {
                return Err(FrameError::TooLarge(len));
            }
            if self.buf.len() < 2 + len {
                return Ok(None);
            }
            self.buf.advance(2);
            let packet = self.buf.split_to(len).freeze();
            if !packet.is_empty() {
                return Ok(Some(packet));
            }
        }
    }
}

/// Appends `packet` framed to `out`. False (nothing appended) for a packet that does not
/// fit a frame; ours are at most one MTU.
pub(super) fn frame_into(out: &mut BytesMut, packet: &[u8]) -> bool {
    let Ok(len) = u16::try_from(packet.len()) else {
        return false;
    };
    out.reserve(2 + packet.len());
    out.put_u16(len);
    out.put_slice(packet);
    true
}

/// Bytes a framed packet takes.
pub(super) fn framed_len(packet: &[u8]) -> usize {
    2 + packet.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(packets: &[&[u8]]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for p in packets {
            assert!(frame_into(&mut out, p));
        }
        out.to_vec()
    }

    #[test]
    fn packets_come_out_whole_whatever_the_reads_split() {
        let packets: [&[u8]; 3] = [b"stun", &[7u8; 1500], b"x"];
        let stream = framed(&packets);
        // Every split size, down to one byte at a time (half a length field included).
        for step in [1, 2, 3, 5, 1000, stream.len()] {
            let mut reader = FrameReader::new(MAX_INBOUND_FRAME);
            let mut got: Vec<Bytes> = Vec::new();
            for chunk in stream.chunks(step) {
                reader.push(chunk);
                while let Some(p) = reader.next_packet().unwrap() {
                    got.push(p);
                }
            }
            let got: Vec<&[u8]> = got.iter().map(|b| &b[..]).collect();
            assert_eq!(got, packets, "reads of {step} bytes");
        }
    }

    #[test]
    fn an_oversized_length_is_refused_before_its_bytes_arrive() {
        let mut reader = FrameReader::new(MAX_INBOUND_FRAME);
        reader.push(&framed(&[b"ok"]));
        reader.push(&[0xff, 0xff]);
        assert_eq!(reader.next_packet().unwrap().as_deref(), Some(&b"ok"[..]));
        assert_eq!(reader.next_packet(), Err(FrameError::TooLarge(0xffff)));
        // One byte over the limit is refused, the limit itself taken.
        let mut reader = FrameReader::new(10);
        reader.push(&framed(&[&[1u8; 10]]));
        assert_eq!(reader.next_packet().unwrap().map(|p| p.len()), Some(10));
        reader.push(&[0, 11]);
        assert_eq!(reader.next_packet(), Err(FrameError::TooLarge(11)));
    }

    #[test]
    fn zero_length_frames_are_skipped() {
        let mut reader = FrameReader::new(MAX_INBOUND_FRAME);
        reader.push(&[0, 0, 0, 0]);
        assert_eq!(reader.next_packet(), Ok(None));
        reader.push(&framed(&[b"", b"a", b""]));
        assert_eq!(reader.next_packet().unwrap().as_deref(), Some(&b"a"[..]));
        assert_eq!(reader.next_packet(), Ok(None));
    }

    #[test]
    fn framing_writes_a_big_endian_length() {
        assert_eq!(framed(&[&[9u8; 300]])[..3], [1, 44, 9]);
        assert_eq!(framed_len(&[0; 300]), 302);
        let mut out = BytesMut::new();
        assert!(!frame_into(&mut out, &vec![0u8; 70_000]));
        assert!(out.is_empty());
    }
}
