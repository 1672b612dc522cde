//! Bounded big-endian reading over a byte slice, and ISO-BMFF box headers.
//!
//! Owns: turning bytes into numbers and boxes without ever reading past the slice.
//! Every read returns `Err(Mp4Error::Damaged)` naming the box being read and the
//! absolute file offset, never panics. Must not touch: anything about tracks or samples.

use crate::error::Mp4Error;

/// A cursor over one box's payload. `base` is the absolute file offset of `data[0]`.
#[derive(Clone)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    base: u64,
    fourcc: [u8; 4],
    /// Bytes of the box that follow `data` in the file but were not read (a sample
    /// table's entries: only its head is read while opening).
    unread: u64,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8], base: u64, fourcc: [u8; 4]) -> Self {
        Reader {
            data,
            pos: 0,
            base,
            fourcc,
            unread: 0,
        }
    }

    /// A reader over the first bytes of a box whose payload is `len` bytes long.
    pub(crate) fn head(data: &'a [u8], base: u64, fourcc: [u8; 4], len: u64) -> Self {
        Reader {
            unread: len.saturating_sub(data.len() as u64),
            ..Reader::new(data, base, fourcc)
        }
    }

    /// Bytes left in the box, read or not.
    pub(crate) fn remaining_in_box(&self) -> u64 {
        (self.remaining() as u64).saturating_add(self.unread)
    }

    pub(crate) fn fourcc(&self) -> [u8; 4] {
        self.fourcc
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    /// Absolute file offset of the next byte.
    pub(crate) fn offset(&self) -> u64 {
        self.base.saturating_add(self.pos as u64)
    }

    pub(crate) fn error(&self, reason: impl Into<String>) -> Mp4Error {
        Mp4Error::damaged(self.fourcc, self.offset(), reason)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], Mp4Error> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        match end {
            Some(end) => {
                let out = self.data.get(self.pos..end).unwrap_or_default();
                self.pos = end;
                Ok(out)
            }
            None => Err(self.error(format!(
                "needs {n} more bytes but only {} remain",
                self.remaining()
            ))),
        }
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = self.data.get(self.pos..).unwrap_or_default();
        self.pos = self.data.len();
        out
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<(), Mp4Error> {
        self.bytes(n).map(|_| ())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Mp4Error> {
        let b = self.bytes(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b); // `bytes(N)` returned exactly N bytes.
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Mp4Error> {
        Ok(self.array::<1>()?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16, Mp4Error> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub(crate) fn i16(&mut self) -> Result<i16, Mp4Error> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, Mp4Error> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub(crate) fn i32(&mut self) -> Result<i32, Mp4Error> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, Mp4Error> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, Mp4Error> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    pub(crate) fn fourcc_value(&mut self) -> Result<[u8; 4], Mp4Error> {
        self.array()
    }

    /// Reads a full-box header: (version, flags).
    pub(crate) fn full_box(&mut self) -> Result<(u8, u32), Mp4Error> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00ff_ffff))
    }

    /// Reads an entry count and checks that `count * entry_size` bytes are present,
    /// so no allocation is ever sized by a count the file cannot back.
    pub(crate) fn count(&mut self, entry_size: usize) -> Result<usize, Mp4Error> {
        let n = self.u32()? as usize;
        match n.checked_mul(entry_size) {
            Some(need) if need as u64 <= self.remaining_in_box() => Ok(n),
            _ => Err(self.error(format!(
                "says {n} entries of {entry_size} bytes but holds only {} bytes",
                self.remaining_in_box()
            ))),
        }
    }

    /// Iterates the child boxes of the rest of this payload.
    pub(crate) fn children(&mut self) -> Children<'a> {
        let base = self.offset();
        let data = self.rest();
        Children {
            data,
            pos: 0,
            base,
            parent: self.fourcc,
        }
    }
}

/// A parsed box header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BoxHeader {
    pub fourcc: [u8; 4],
    /// Absolute offset of the box's first byte.
    pub offset: u64,
    pub header_len: u64,
    /// Total size including the header; `None` for size 0 ("to end of file/parent").
    pub size: Option<u64>,
}

/// Parses a box header from `bytes` (at least 8, 16 for a 64-bit size).
/// Returns `Ok(None)` when `bytes` is too short to hold the header.
pub(crate) fn parse_header(bytes: &[u8], offset: u64) -> Result<Option<BoxHeader>, Mp4Error> {
    let (Some(size), Some(fourcc)) = (bytes.get(0..4), bytes.get(4..8)) else {
        return Ok(None);
    };
    let mut fc = [0u8; 4];
    fc.copy_from_slice(fourcc); // The slice is exactly 4 bytes (`get(4..8)`).
    let mut sz = [0u8; 4];
    sz.copy_from_slice(size); // Exactly 4 bytes (`get(0..4)`).
    let size32 = u32::from_be_bytes(sz);
    let (size, header_len) = match size32 {
        0 => (None, 8),
        1 => {
            let Some(large) = bytes.get(8..16) else {
                return Ok(None);
            };
            let mut l = [0u8; 8];
            l.copy_from_slice(large); // Exactly 8 bytes (`get(8..16)`).
            (Some(u64::from_be_bytes(l)), 16)
        }
        n => (Some(u64::from(n)), 8),
    };
    if let Some(s) = size {
        if s < header_len {
            return Err(Mp4Error::BoxTooSmall { size: s, offset });
        }
    }
    Ok(Some(BoxHeader {
        fourcc: fc,
        offset,
        header_len,
        size,
    }))
}

/// Iterator over the child boxes in a parent's payload.
pub(crate) struct Children<'a> {
    data: &'a [u8],
    pos: usize,
    base: u64,
    parent: [u8; 4],
}

impl<'a> Iterator for Children<'a> {
    type Item = Result<(BoxHeader, Reader<'a>), Mp4Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.data.get(self.pos..)?;
        if rest.len() < 8 {
            // Up to 7 bytes of padding after the last child are tolerated (some muxers
            // write a 4-byte zero terminator, e.g. in QuickTime `udta`).
            self.pos = self.data.len();
            return None;
        }
        let offset = self.base.saturating_add(self.pos as u64);
        let header = match parse_header(rest, offset) {
            Ok(Some(h)) => h,
            Ok(None) => {
                self.pos = self.data.len();
                return Some(Err(Mp4Error::damaged(
                    self.parent,
                    offset,
                    "child box header is cut off",
                )));
            }
            Err(e) => {
                self.pos = self.data.len();
                return Some(Err(e));
            }
        };
        let size = header.size.unwrap_or(rest.len() as u64);
        if size > rest.len() as u64 {
            self.pos = self.data.len();
            return Some(Err(Mp4Error::damaged(
                self.parent,
                offset,
                format!(
                    "child box {} of {size} bytes is larger than the {} bytes left in its parent",
                    crate::error::FourCc(header.fourcc),
                    rest.len()
                ),
            )));
        }
        // size <= rest.len() (checked above) and header_len <= size (parse_header).
        let payload = rest
            .get(header.header_len as usize..size as usize)
            .unwrap_or_default();
        self.pos = self.pos.saturating_add(size as usize);
        Some(Ok((
            header,
            Reader::new(
                payload,
                offset.saturating_add(header.header_len),
                header.fourcc,
            ),
        )))
    }
}
