//! Tests over whole files: synthetic boxes, random and mutated input (no panic), and
//! real files made by ffmpeg (checked against ffprobe).

use crate::{
    open_in_memory, Codec, FollowStep, Movie, MovieOpener, Mp4Error, OpenStep, SampleInfo,
    SampleTable, SampleWalker, TrackKind, WalkStep,
};

// ---------- synthetic files ----------

fn bx(fourcc: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(fourcc);
    v.extend_from_slice(payload);
    v
}

fn full(fourcc: &[u8; 4], version: u8, flags: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = ((u32::from(version) << 24) | flags).to_be_bytes().to_vec();
    p.extend_from_slice(payload);
    bx(fourcc, &p)
}

fn be32(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_be_bytes()).collect()
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

fn avc1_entry(w: u16, h: u16) -> Vec<u8> {
    let mut p = vec![0u8; 6];
    p.extend_from_slice(&1u16.to_be_bytes());
    p.extend_from_slice(&[0u8; 16]);
    p.extend_from_slice(&w.to_be_bytes());
    p.extend_from_slice(&h.to_be_bytes());
    p.extend_from_slice(&[0u8; 50]);
    p.extend(bx(b"avcC", &[1, 0x64, 0, 0x1f, 0xff, 0xe0, 0]));
    bx(b"avc1", &p)
}

/// A moov-at-end file with one H.264 track of `n` samples of 100 bytes, 2 per chunk,
/// B-frame-like ctts, keyframes at 0 and 4, and an edit list (empty 1 s + media 1024).
fn synthetic_file() -> Vec<u8> {
    let n = 6u32;
    let ftyp = bx(b"ftyp", b"isom\0\0\x02\0isomavc1");
    let mdat_payload: Vec<u8> = (0..n * 100).map(|i| (i % 251) as u8).collect();
    let mdat = bx(b"mdat", &mdat_payload);
    let data_start = (ftyp.len() + 8) as u32;
    let stbl = bx(
        b"stbl",
        &cat(&[
            full(b"stsd", 0, 0, &cat(&[be32(&[1]), avc1_entry(320, 240)])),
            full(b"stts", 0, 0, &be32(&[1, n, 512])),
            full(b"ctts", 1, 0, &be32(&[3, 1, 1024, 1, 0xffff_fe00, 4, 512])),
            full(b"stsc", 0, 0, &be32(&[1, 1, 2, 1])),
            full(b"stsz", 0, 0, &be32(&[0, n, 100, 100, 100, 100, 100, 100])),
            full(
                b"stco",
                0,
                0,
                &be32(&[3, data_start, data_start + 200, data_start + 400]),
            ),
            full(b"stss", 0, 0, &be32(&[2, 1, 5])),
        ]),
    );
    let mdia = bx(
        b"mdia",
        &cat(&[
            full(b"mdhd", 0, 0, &be32(&[0, 0, 12800, n * 512, 0])),
            full(
                b"hdlr",
                0,
                0,
                &cat(&[be32(&[0]), b"vide".to_vec(), vec![0; 13]]),
            ),
            bx(b"minf", &stbl),
        ]),
    );
    let elst = full(
        b"elst",
        0,
        0,
        &be32(&[2, 1000, 0xffff_ffff, 1 << 16, 2000, 1024, 1 << 16]),
    );
    let trak = bx(
        b"trak",
        &cat(&[
            full(b"tkhd", 0, 3, &be32(&[0, 0, 7, 0, 0])),
            bx(b"edts", &elst),
            mdia,
        ]),
    );
    let moov = bx(
        b"moov",
        &cat(&[full(b"mvhd", 0, 0, &be32(&[0, 0, 1000, 3000])), trak]),
    );
    cat(&[ftyp, mdat, moov])
}

#[test]
fn synthetic_moov_at_end_file_is_indexed() {
    let file = synthetic_file();
    let m = open_in_memory(&file).unwrap();
    assert_eq!(&m.major_brand, b"isom");
    assert!(!m.fragmented);
    let t = &m.tracks[0];
    assert_eq!((t.id, t.kind, t.timescale), (7, TrackKind::Video, 12800));
    assert!(matches!(
        t.codec,
        Codec::H264 {
            width: 320,
            height: 240,
            ..
        }
    ));
    assert_eq!(t.edit.media_time, 1024);
    assert_eq!(t.edit.delay, 12800); // 1000 ms of empty edit in track ticks
    let s: Vec<_> = t.samples.index().unwrap().iter().collect();
    assert_eq!(s.len(), 6);
    let ctts: Vec<i32> = s.iter().map(|s| s.cts_offset).collect();
    assert_eq!(ctts, vec![1024, -512, 512, 512, 512, 512]);
    let sync: Vec<bool> = s.iter().map(|s| s.sync).collect();
    assert_eq!(sync, vec![true, false, false, false, true, false]);
    let offsets: Vec<u64> = s.iter().map(|s| s.offset).collect();
    let d = 24 + 8;
    assert_eq!(
        offsets,
        vec![d, d + 100, d + 200, d + 300, d + 400, d + 500]
    );
    assert_eq!(t.presentation_time(&s[0]), 12800);
    assert_eq!(t.to_us(12800), 1_000_000);
    assert_eq!(
        t.samples.index().unwrap().first_sync_at_or_before(5 * 512),
        Some(4)
    );
}

#[test]
fn opener_reads_headers_then_moov_never_mdat() {
    let file = synthetic_file();
    let mut o = MovieOpener::new(file.len() as u64);
    let mut reads = Vec::new();
    while let OpenStep::Read { offset, len } = o.poll().unwrap() {
        reads.push((offset, len));
        let s = offset as usize;
        o.feed(offset, &file[s..s + len as usize]).unwrap();
    }
    // A header read may see the first 8 payload bytes of the mdat, never more.
    let mdat_payload = 32u64..(32 + 600);
    for (off, len) in &reads {
        let overlap = (off + len)
            .min(mdat_payload.end)
            .saturating_sub((*off).max(mdat_payload.start));
        assert!(
            overlap <= 8,
            "read {off}+{len} reads mdat payload; reads: {reads:?}"
        );
    }
    assert!(reads.len() <= 4, "{reads:?}");
    assert!(matches!(o.poll(), Err(Mp4Error::Misuse(_))));
}

#[test]
fn plain_errors_for_common_bad_files() {
    assert_eq!(open_in_memory(&[]).unwrap_err(), Mp4Error::NotMp4);
    assert_eq!(
        open_in_memory(b"hello world, this is text").unwrap_err(),
        Mp4Error::NotMp4
    );
    let ftyp = bx(b"ftyp", b"isom\0\0\0\0");
    let no_moov = cat(&[ftyp.clone(), bx(b"mdat", &[0; 40])]);
    assert_eq!(open_in_memory(&no_moov).unwrap_err(), Mp4Error::NoMoov);
    assert_eq!(
        open_in_memory(&no_moov).unwrap_err().to_string(),
        "no moov box: not a playable MP4"
    );
    let mut small = ftyp.clone();
    small.extend_from_slice(&[0, 0, 0, 3, b'f', b'r', b'e', b'e']);
    assert_eq!(
        open_in_memory(&small).unwrap_err().to_string(),
        format!(
            "box size 3 is smaller than its header at offset {}",
            ftyp.len()
        )
    );
    let file = synthetic_file();
    let cut = &file[..file.len() - 10];
    assert_eq!(
        open_in_memory(cut).unwrap_err().to_string(),
        "truncated file: moov box ends past end of file"
    );
}

#[test]
fn largesize_and_size_zero_boxes_are_walked() {
    let file = synthetic_file();
    let ftyp_len = 24;
    // Rewrite mdat with a 64-bit size: header grows by 8, so rebuild with offsets +8.
    let mdat_len = 8 + 600;
    let mut v = file[..ftyp_len].to_vec();
    v.extend_from_slice(&1u32.to_be_bytes());
    v.extend_from_slice(b"mdat");
    v.extend_from_slice(&((mdat_len + 8) as u64).to_be_bytes());
    v.extend_from_slice(&file[ftyp_len + 8..]);
    let m = open_in_memory(&v).unwrap();
    assert_eq!(m.tracks[0].samples.len(), 6);
    // mdat with size 0 (to end of file) and no moov after it.
    let mut z = file[..ftyp_len].to_vec();
    z.extend_from_slice(&[0, 0, 0, 0]);
    z.extend_from_slice(b"mdat");
    z.extend_from_slice(&[0; 100]);
    assert_eq!(open_in_memory(&z).unwrap_err(), Mp4Error::NoMoov);
}

/// The synthetic file with its third chunk's offset moved far past the end of the file.
fn samples_past_end_file() -> Vec<u8> {
    let mut v = synthetic_file();
    let pos = v.windows(4).position(|w| w == b"stco").unwrap();
    let third = pos + 4 + 4 + 4 + 8;
    v[third..third + 4].copy_from_slice(&0x7fff_0000u32.to_be_bytes());
    v
}

#[test]
fn samples_without_a_chunk_are_not_counted_past_the_end() {
    // stco says 2 chunks (of the 3 it holds): 4 samples are described, none past EOF.
    let mut v = synthetic_file();
    let pos = v.windows(4).position(|w| w == b"stco").unwrap();
    v[pos + 8..pos + 12].copy_from_slice(&2u32.to_be_bytes());
    for m in [open_in_memory(&v).unwrap(), walk_paged(&v, 16).unwrap().0] {
        assert_eq!(m.tracks[0].samples.len(), 4);
        assert_eq!(m.tracks[0].samples_beyond_eof, 0);
    }
    assert_paged_matches_index(&v);
}

#[test]
fn samples_past_end_of_file_are_dropped() {
    let m = open_in_memory(&samples_past_end_file()).unwrap();
    assert_eq!(m.tracks[0].samples.len(), 4);
    assert_eq!(m.tracks[0].samples_beyond_eof, 2);
}

// ---------- no panics on random and mutated input ----------

/// xorshift64*: a tiny deterministic PRNG.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Opens `data` with [`MovieOpener::paged`] and walks every track with `window`-byte
/// table reads; returns each track's samples and the walk's read count, or the first error.
fn walk_paged(data: &[u8], window: u64) -> Result<(Movie, Vec<Vec<SampleInfo>>, usize), Mp4Error> {
    let mut o = MovieOpener::paged(data.len() as u64);
    let m = loop {
        match o.poll()? {
            OpenStep::Read { offset, len } => {
                let end = (offset + len).min(data.len() as u64) as usize;
                o.feed(offset, &data[offset as usize..end])?;
            }
            OpenStep::Done(m) => break m,
        }
    };
    let mut all = Vec::new();
    let mut reads = 0;
    for t in &m.tracks {
        let mut w = SampleWalker::with_window(window);
        let mut v = Vec::new();
        loop {
            match w.poll(&t.samples) {
                WalkStep::Sample(s) => v.push(s),
                WalkStep::Read { offset, len } => {
                    reads += 1;
                    assert!(len <= window.max(16), "asked {len} bytes, window {window}");
                    let end = (offset + len).min(data.len() as u64) as usize;
                    w.feed(offset, data.get(offset as usize..end).unwrap_or_default())?;
                }
                WalkStep::End => break,
            }
        }
        assert_eq!(v.len(), t.samples.len());
        assert_eq!(w.next_index(), v.len());
        all.push(v);
    }
    Ok((m, all, reads))
}

/// The paged walk yields exactly what the in-memory index holds, whatever the window.
fn assert_paged_matches_index(data: &[u8]) {
    let indexed = open_in_memory(data).unwrap();
    for window in [16, 17, 100, 4096] {
        let (paged, walked, _) = walk_paged(data, window).unwrap();
        assert_eq!(paged.tracks.len(), indexed.tracks.len());
        assert_eq!(paged.duration_us, indexed.duration_us);
        for ((p, samples), t) in paged.tracks.iter().zip(&walked).zip(&indexed.tracks) {
            let want: Vec<_> = t.samples.index().unwrap().iter().collect();
            assert_eq!(samples, &want, "track {} window {window}", t.id);
            assert_eq!(p.samples.len(), t.samples.len());
            assert_eq!(p.samples.end_dts(), t.samples.end_dts());
            assert_eq!(p.samples.has_cts_offsets(), t.samples.has_cts_offsets());
            assert_eq!(p.samples.cts_offsets_vary(), t.samples.cts_offsets_vary());
            assert_eq!(p.samples.sync_count(), t.samples.sync_count());
            assert_eq!(p.samples_beyond_eof, t.samples_beyond_eof);
            let fragmented = matches!(p.samples, SampleTable::Indexed(_));
            assert_eq!(fragmented, paged.fragmented);
        }
    }
}

#[test]
fn paged_tables_walk_like_the_index() {
    let file = synthetic_file();
    assert_paged_matches_index(&file);
    let (m, _, reads) = walk_paged(&file, 16).unwrap();
    assert!(matches!(m.tracks[0].samples, SampleTable::Paged(_)));
    assert_eq!(m.tracks[0].samples.heap_bytes(), 0);
    assert!(reads >= 6, "{reads} reads");
    // Samples past the end of the file: the walk stops where the index does.
    assert_paged_matches_index(&samples_past_end_file());
}

/// Found by the `mp4_open` fuzz target (its crashing input): `moof` boxes after a moov
/// without `mvex` (here a damaged one) were indexed by `MovieOpener::new` but not by
/// `paged`, so one file had a sample or none depending on how it was opened.
#[test]
fn fragments_of_a_movie_without_mvex_are_ignored_both_ways() {
    let file = include_bytes!("testdata/moof_without_mvex.mp4");
    let m = open_in_memory(file).unwrap();
    assert!(!m.fragmented);
    assert!(m.tracks.iter().all(|t| t.samples.is_empty()));
    assert_paged_matches_index(file);
}

/// Found by the `mp4_open` fuzz target (its input, which timed out): a 36-byte `trun`
/// with no per-sample fields and a default size of 0 declared 16,777,216 samples, each
/// indexed one by one. Empty samples are now capped like 1-byte ones, by the file size.
#[test]
fn a_trun_of_millions_of_empty_samples_is_capped_by_the_file_size() {
    let file = include_bytes!("testdata/trun_of_empty_samples.mp4");
    let m = open_in_memory(file).unwrap();
    let samples: usize = m.tracks.iter().map(|t| t.samples.len()).sum();
    assert!(
        samples <= file.len() + 16,
        "{samples} samples in {} bytes",
        file.len()
    );
}

#[test]
fn paged_walk_of_a_file_that_shrank_fails_plainly() {
    let file = synthetic_file();
    let (m, _, _) = walk_paged(&file, 16).unwrap();
    let t = &m.tracks[0];
    let mut w = SampleWalker::with_window(16);
    let err = loop {
        match w.poll(&t.samples) {
            WalkStep::Read { offset, .. } => {
                if let Err(e) = w.feed(offset, &[]) {
                    break e;
                }
            }
            other => panic!("{other:?}"),
        }
    };
    assert!(err.to_string().starts_with("truncated file"), "{err}");
}

/// Opens `data` and, if it opens, touches every sample and a few random ones.
fn exercise(data: &[u8]) {
    if let Ok(m) = open_in_memory(data) {
        for t in &m.tracks {
            let n = t.samples.len();
            let mut count = 0;
            for s in t.samples.index().unwrap() {
                let _ = t.to_us(t.presentation_time(&s));
                count += 1;
            }
            assert_eq!(count, n);
            for i in [0, 1, n / 2, n.saturating_sub(1), n, n + 1, usize::MAX] {
                let _ = t.samples.index().unwrap().get(i);
                let _ = t.samples.index().unwrap().sync_at_or_before(i);
                let _ = t.samples.index().unwrap().sync_at_or_after(i);
                let _ = t.samples.index().unwrap().cursor_at(i).next();
            }
            for dts in [i64::MIN, -1, 0, 1000, i64::MAX] {
                let _ = t.samples.index().unwrap().first_sync_at_or_before(dts);
            }
            let _ = t.duration_us();
            let _ = t.samples.heap_bytes();
        }
    }
    // The paged walk of the same bytes never panics, and agrees with the index.
    if let (Ok(m), Ok((_, walked, _))) = (open_in_memory(data), walk_paged(data, 32)) {
        for (t, w) in m.tracks.iter().zip(&walked) {
            if let Some(ix) = t.samples.index().filter(|_| !m.fragmented) {
                assert_eq!(w.len(), ix.len());
            }
        }
    }
}

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..=rng.below(4) {
        if v.is_empty() {
            break;
        }
        let at = rng.below(v.len());
        match rng.below(6) {
            0 => v[at] = rng.next() as u8,
            1 => {
                let end = (at + 4).min(v.len());
                let word = [0u32, 1, 3, 7, 8, 0x7fff_ffff, 0xffff_ffff, 0x8000_0000][rng.below(8)];
                let b = word.to_be_bytes();
                v[at..end].copy_from_slice(&b[..end - at]);
            }
            2 => v.truncate(at),
            3 => {
                let end = (at + 1 + rng.below(64)).min(v.len());
                v.drain(at..end);
            }
            4 => {
                let b = rng.next().to_be_bytes();
                let end = (at + 8).min(v.len());
                v[at..end].copy_from_slice(&b[..end - at]);
            }
            _ => {
                let ins: Vec<u8> = (0..rng.below(32)).map(|_| rng.next() as u8).collect();
                v.splice(at..at, ins);
            }
        }
    }
    v
}

#[test]
fn random_and_mutated_input_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2000 {
        let len = rng.below(200);
        let mut v: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if rng.below(2) == 0 && v.len() >= 8 {
            v[4..8].copy_from_slice([b"ftyp", b"moov", b"mdat", b"moof"][rng.below(4)]);
        }
        exercise(&v);
    }
    let base = synthetic_file();
    for _ in 0..6000 {
        exercise(&mutate(&mut rng, &base));
    }
}

// ---------- real files made by ffmpeg ----------

mod ffmpeg {
    use super::*;
    use std::os::unix::fs::FileExt;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// The temp dir for generated files, or `None` (test skipped) when ffmpeg is
    /// missing; with `CI=true` a missing ffmpeg fails the test.
    fn workdir() -> Option<PathBuf> {
        test_support::tools_available(&["ffmpeg", "ffprobe"], "the real-file test")
            .then(|| test_support::temp_dir("mp4-test"))
    }

    fn make(dir: &Path, name: &str, args: &str) -> PathBuf {
        let out = dir.join(name);
        let base = "-y -v error -f lavfi -i testsrc=size=320x240:rate=25 \
                    -f lavfi -i sine=frequency=440:sample_rate=44100 -t 2";
        let mut cmd = Command::new("ffmpeg");
        cmd.args(base.split_whitespace())
            .args(args.split_whitespace())
            .arg(&out);
        let res = cmd.output().expect("run ffmpeg");
        assert!(
            res.status.success(),
            "ffmpeg {name} failed: {}",
            String::from_utf8_lossy(&res.stderr)
        );
        out
    }

    /// ffprobe's stream start_time in seconds.
    fn probe_start(path: &Path, sel: &str) -> f64 {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", sel])
            .args(["-show_entries", "stream=start_time", "-of", "csv=p=0"])
            .arg(path)
            .output()
            .expect("run ffprobe");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .and_then(|l| l.trim().trim_end_matches(',').parse().ok())
            .unwrap_or(0.0)
    }

    fn probe_count(path: &Path, sel: &str) -> usize {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", sel, "-count_packets"])
            .args(["-show_entries", "stream=nb_read_packets", "-of", "csv=p=0"])
            .arg(path)
            .output()
            .expect("run ffprobe");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .and_then(|l| l.trim().trim_end_matches(',').parse().ok())
            .unwrap_or(0)
    }

    /// Opens with positional reads like the server; returns the movie and the reads.
    fn open_file(path: &Path) -> (Movie, Vec<(u64, u64)>) {
        let f = std::fs::File::open(path).unwrap();
        let mut o = MovieOpener::new(f.metadata().unwrap().len());
        let mut reads = Vec::new();
        loop {
            match o.poll().unwrap() {
                OpenStep::Read { offset, len } => {
                    reads.push((offset, len));
                    let mut buf = vec![0; len as usize];
                    f.read_exact_at(&mut buf, offset).unwrap();
                    o.feed(offset, &buf).unwrap();
                }
                OpenStep::Done(m) => return (m, reads),
            }
        }
    }

    /// The byte range of the first top-level box of type `kind` in the file at `path`.
    fn top_level_box(path: &Path, kind: &[u8; 4]) -> (u64, u64) {
        let bytes = std::fs::read(path).unwrap();
        let mut at = 0usize;
        while at + 8 <= bytes.len() {
            let size32 = u64::from(u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()));
            let size = match size32 {
                1 => u64::from_be_bytes(bytes[at + 8..at + 16].try_into().unwrap()),
                0 => (bytes.len() - at) as u64,
                n => n,
            };
            if &bytes[at + 4..at + 8] == kind {
                return (at as u64, at as u64 + size);
            }
            at += size as usize;
        }
        panic!("no top-level {kind:?} box in {path:?}");
    }

    /// Checks counts against ffprobe, sync first sample, in-file sample bytes, plausible
    /// NAL lengths, presentation starting at 0.
    fn check(path: &Path) -> Movie {
        let (m, _) = open_file(path);
        let bytes = std::fs::read(path).unwrap();
        let nv = probe_count(path, "v");
        let na = probe_count(path, "a");
        assert_eq!(
            m.video().map_or(0, |t| t.samples.len()),
            nv,
            "{path:?} video"
        );
        assert_eq!(
            m.audio().map_or(0, |t| t.samples.len()),
            na,
            "{path:?} audio"
        );
        for t in &m.tracks {
            assert_eq!(t.samples_beyond_eof, 0);
            let first = t.samples.index().unwrap().get(0).expect("samples");
            assert!(first.sync, "{path:?} track {} first sample not sync", t.id);
            let min_pts = t
                .samples
                .index()
                .unwrap()
                .iter()
                .map(|s| t.presentation_time(&s))
                .min()
                .unwrap();
            // Presentation starts where ffprobe says (0 when an edit list shifts it;
            // fragmented ffmpeg files carry no edit list), within one frame.
            let sel = if t.kind == TrackKind::Video { "v" } else { "a" };
            let want = (probe_start(path, sel) * f64::from(t.timescale)).round() as i64;
            let frame = i64::from(first.duration);
            assert!(
                (min_pts - want).abs() <= frame,
                "{path:?} track {} starts at {min_pts} ticks, ffprobe {want} (frame {frame})",
                t.id
            );
            if !m.fragmented {
                assert!(min_pts.abs() <= frame, "{path:?}: edit shift not applied");
            }
            for s in t.samples.index().unwrap() {
                let end = s.offset as usize + s.size as usize;
                assert!(end <= bytes.len());
                if matches!(t.codec, Codec::H264 { .. }) {
                    let nal =
                        u32::from_be_bytes(bytes[s.offset as usize..][..4].try_into().unwrap());
                    assert!(
                        nal > 0 && nal + 4 <= s.size,
                        "NAL length {nal} in {} bytes",
                        s.size
                    );
                    let nal_type = bytes[s.offset as usize + 4] & 0x1f;
                    assert!((1..=12).contains(&nal_type));
                }
            }
            // Random access agrees with the cursor.
            for (i, s) in t.samples.index().unwrap().iter().enumerate().step_by(7) {
                assert_eq!(t.samples.index().unwrap().get(i), Some(s));
            }
        }
        assert!(
            m.duration_us > 1_800_000 && m.duration_us < 2_200_000,
            "{}",
            m.duration_us
        );
        m
    }

    /// Files in the codecs the server transcodes, as ffmpeg writes them: each track is
    /// named with its decoder configuration (what libavcodec needs to start).
    #[test]
    fn ffmpeg_files_in_other_codecs_carry_their_configuration() {
        use crate::{AudioFormat, VideoFormat};
        let Some(dir) = workdir() else { return };
        let cases = [
            (
                "hevc.mp4",
                "-c:v libx265 -preset ultrafast -tag:v hvc1 -x265-params log-level=error -an",
            ),
            (
                "hev1.mp4",
                "-c:v libx265 -preset ultrafast -tag:v hev1 -x265-params log-level=error -an",
            ),
            (
                "vp9.mp4",
                "-c:v libvpx-vp9 -deadline realtime -cpu-used 8 -an",
            ),
            ("mpeg4.mp4", "-c:v mpeg4 -c:a libmp3lame"),
            (
                "av1_flac.mp4",
                "-c:v libsvtav1 -preset 12 -c:a flac -strict -2",
            ),
            ("ac3.mp4", "-vn -c:a ac3"),
            ("eac3.mp4", "-vn -c:a eac3"),
        ];
        for (name, args) in cases {
            let (m, _) = open_file(&make(&dir, name, args));
            let video = m.video().map(|t| &t.codec);
            let audio = m.audio().map(|t| &t.codec);
            match name {
                "hevc.mp4" | "hev1.mp4" => match video {
                    Some(Codec::OtherVideo {
                        format: VideoFormat::Hevc,
                        config,
                        width: 320,
                        height: 240,
                    }) => assert_eq!(config.first(), Some(&1), "hvcC version 1"),
                    other => panic!("{name}: {other:?}"),
                },
                "vp9.mp4" => assert!(
                    matches!(
                        video,
                        Some(Codec::OtherVideo {
                            format: VideoFormat::Vp9,
                            ..
                        })
                    ),
                    "{video:?}"
                ),
                "av1_flac.mp4" => {
                    // av1C: marker and version 1 (0x81); FLAC: its 34-byte STREAMINFO.
                    match video {
                        Some(Codec::OtherVideo {
                            format: VideoFormat::Av1,
                            config,
                            ..
                        }) => assert_eq!(config.first(), Some(&0x81)),
                        other => panic!("{name}: {other:?}"),
                    }
                    match audio {
                        Some(Codec::OtherAudio {
                            format: AudioFormat::Flac,
                            config,
                            ..
                        }) => assert_eq!(config.len(), 34),
                        other => panic!("{name}: {other:?}"),
                    }
                }
                "mpeg4.mp4" => {
                    match video {
                        // The VOL header starts with a start code.
                        Some(Codec::OtherVideo {
                            format: VideoFormat::Mpeg4Part2,
                            config,
                            ..
                        }) => assert_eq!(config.get(..3), Some(&[0u8, 0, 1][..])),
                        other => panic!("{name}: {other:?}"),
                    }
                    assert!(
                        matches!(
                            audio,
                            Some(Codec::OtherAudio {
                                format: AudioFormat::Mp3,
                                sample_rate: 44100,
                                ..
                            })
                        ),
                        "{audio:?}"
                    );
                }
                _ => {
                    let want = if name == "ac3.mp4" {
                        AudioFormat::Ac3
                    } else {
                        AudioFormat::Eac3
                    };
                    assert!(
                        matches!(audio, Some(Codec::OtherAudio { format, .. }) if *format == want),
                        "{name}: {audio:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn ffmpeg_files_match_ffprobe() {
        let Some(dir) = workdir() else { return };
        let h264 = "-c:v libx264 -preset ultrafast -pix_fmt yuv420p";
        let cases = [
            (
                "faststart.mp4",
                format!("{h264} -bf 0 -c:a aac -movflags +faststart"),
            ),
            ("moov_end.mp4", format!("{h264} -bf 0 -c:a aac")),
            ("bframes.mp4", format!("{h264} -bf 2 -c:a aac")),
            (
                "frag.mp4",
                format!("{h264} -bf 2 -g 12 -c:a aac -movflags frag_keyframe+empty_moov"),
            ),
            (
                "frag_moof_base.mp4",
                format!(
                    "{h264} -g 12 -c:a aac -movflags frag_keyframe+empty_moov+default_base_moof"
                ),
            ),
            ("opus.mp4", format!("{h264} -c:a libopus")),
            ("mono.mp4", format!("{h264} -c:a aac -ac 1")),
            ("six.mp4", format!("{h264} -c:a aac -ac 6")),
            ("video_only.mp4", format!("{h264} -an")),
            ("audio_only.mp4", "-vn -c:a aac".to_string()),
        ];
        for (name, args) in &cases {
            let path = make(&dir, name, args);
            let m = check(&path);
            assert_paged_matches_index(&std::fs::read(&path).unwrap());
            match *name {
                "frag.mp4" | "frag_moof_base.mp4" => {
                    let bytes = std::fs::read(&path).unwrap();
                    for step in [997, 64 << 10, bytes.len()] {
                        assert_followed_matches_index(&bytes, step);
                    }
                    assert!(m.fragmented);
                    assert!(m.video().unwrap().samples.sync_count() >= 4);
                }
                "bframes.mp4" => {
                    let v = m.video().unwrap();
                    assert!(v.samples.has_cts_offsets());
                    assert!(v.edit.media_time > 0);
                }
                "opus.mp4" => {
                    let a = m.audio().unwrap();
                    assert!(
                        matches!(a.codec, Codec::Opus { channels: 1, .. }),
                        "{:?}",
                        a.codec
                    );
                }
                "mono.mp4" | "six.mp4" => {
                    let want = if *name == "mono.mp4" { 1 } else { 6 };
                    let a = m.audio().unwrap();
                    match &a.codec {
                        Codec::Aac {
                            channels,
                            sample_rate,
                            object_type,
                            ..
                        } => {
                            assert_eq!((*channels, *sample_rate, *object_type), (want, 44100, 2));
                        }
                        c => panic!("{c:?}"),
                    }
                }
                "video_only.mp4" => assert!(m.audio().is_none()),
                "audio_only.mp4" => assert!(m.video().is_none()),
                _ => {
                    let v = m.video().unwrap();
                    assert!(matches!(
                        v.codec,
                        Codec::H264 {
                            width: 320,
                            height: 240,
                            ..
                        }
                    ));
                }
            }
        }
        // moov at the end: the opener never reads the mdat payload.
        let path = dir.join("moov_end.mp4");
        let (_, reads) = open_file(&path);
        let (mdat_start, mdat_end) = top_level_box(&path, b"mdat");
        assert!(
            mdat_end - mdat_start > 1_000,
            "a real payload to stay out of"
        );
        // Only the mdat's header (at most 16 bytes) may be read, none of its payload.
        let payload = mdat_start + 16..mdat_end;
        assert!(
            reads
                .iter()
                .all(|&(offset, len)| offset + len <= payload.start || offset >= payload.end),
            "a read inside the mdat payload {payload:?}: {reads:?}"
        );
        assert!(reads.len() <= 6, "{reads:?}");
        // Mutations of a real file never panic.
        let bytes = std::fs::read(dir.join("frag.mp4")).unwrap();
        let mut rng = Rng(42);
        for _ in 0..300 {
            exercise(&mutate(&mut rng, &bytes));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Opening `file` up to its fragments and following it as it grows `step` bytes at a
/// time indexes the same samples as opening it whole, and no fragment is indexed before
/// all its samples' bytes are there.
fn assert_followed_matches_index(file: &[u8], step: usize) {
    let whole = open_in_memory(file).unwrap();
    let mut opener = MovieOpener::new(file.len() as u64);
    opener.leave_fragments();
    let mut movie = loop {
        match opener.poll().unwrap() {
            OpenStep::Read { offset, len } => {
                let at = offset as usize;
                opener.feed(offset, &file[at..at + len as usize]).unwrap();
            }
            OpenStep::Done(m) => break m,
        }
    };
    let mut follower = opener
        .take_follower()
        .expect("a fragmented movie has a follower");
    assert!(
        movie.tracks.iter().all(|t| t.samples.is_empty()),
        "empty_moov: no samples yet"
    );
    let mut size = follower.position() as usize;
    let mut fragments = 0;
    while size < file.len() {
        size = (size + step).min(file.len());
        loop {
            match follower.poll(size as u64).unwrap() {
                FollowStep::Read { offset, len } => {
                    let at = offset as usize;
                    assert!(at + len as usize <= size, "read past the size given");
                    follower.feed(offset, &file[at..at + len as usize]).unwrap();
                }
                FollowStep::Fragment(pieces) => {
                    fragments += 1;
                    for (track, piece) in movie.tracks.iter_mut().zip(&pieces) {
                        assert!(piece
                            .iter()
                            .all(|s| s.offset + u64::from(s.size) <= size as u64));
                        let SampleTable::Indexed(ix) = &mut track.samples else {
                            panic!("fragmented tracks are indexed");
                        };
                        ix.append(piece);
                    }
                }
                FollowStep::Wait => break,
            }
        }
    }
    assert!(fragments > 1, "{fragments} fragments");
    for (a, b) in whole.tracks.iter().zip(&movie.tracks) {
        let (a, b) = (a.samples.index().unwrap(), b.samples.index().unwrap());
        assert_eq!(a.len(), b.len(), "step {step}");
        assert!(a.iter().eq(b.iter()), "step {step}: samples differ");
        for i in (0..b.len()).step_by(13) {
            assert_eq!(a.get(i), b.get(i), "sample {i}");
        }
        assert_eq!(a.sync_count(), b.sync_count());
        assert_eq!(a.has_cts_offsets(), b.has_cts_offsets());
    }
}

// ---------- memory a file can claim ----------

/// A file of `head` followed by `zeros` zero bytes that are never stored (a sparse file:
/// what an attacker pays nothing for). Opens it with `opener`; returns the result, the
/// largest read and the bytes read in all.
fn open_sparse(
    head: &[u8],
    zeros: u64,
    mut opener: MovieOpener,
) -> (Result<Movie, Mp4Error>, u64, u64) {
    let size = head.len() as u64 + zeros;
    let (mut largest, mut total) = (0, 0);
    loop {
        match opener.poll() {
            Ok(OpenStep::Read { offset, len }) => {
                assert!(
                    offset + len <= size,
                    "read {offset}+{len} past the end ({size})"
                );
                largest = largest.max(len);
                total += len;
                let data: Vec<u8> = (offset..offset + len)
                    .map(|i| head.get(i as usize).copied().unwrap_or(0))
                    .collect();
                opener.feed(offset, &data).unwrap();
            }
            Ok(OpenStep::Done(m)) => return (Ok(m), largest, total),
            Err(e) => return (Err(e), largest, total),
        }
    }
}

/// The synthetic (moov-last) file with `child` appended inside its moov, whose last
/// `zeros` bytes are left to the caller to add as zeros. The moov's size counts them.
fn with_moov_child(child: &[u8], zeros: u64) -> Vec<u8> {
    let mut file = synthetic_file();
    let moov_at = file.windows(4).rposition(|w| w == b"moov").unwrap() - 4;
    let size = u32::from_be_bytes(file[moov_at..moov_at + 4].try_into().unwrap());
    let new = u64::from(size) + child.len() as u64 + zeros;
    file[moov_at..moov_at + 4].copy_from_slice(&u32::try_from(new).unwrap().to_be_bytes());
    file.extend_from_slice(child);
    file
}

#[test]
fn a_250_mb_moov_is_walked_in_pieces_never_read_whole() {
    // A real small moov padded with a 250 MB `udta` it does not need: a sparse file an
    // attacker makes for free, or a file with a huge cover picture.
    let huge = 250u64 << 20;
    let mut udta = ((huge + 8) as u32).to_be_bytes().to_vec();
    udta.extend_from_slice(b"udta");
    let head = with_moov_child(&udta, huge);
    for paged in [true, false] {
        let size = head.len() as u64 + huge;
        let opener = if paged {
            MovieOpener::paged(size)
        } else {
            MovieOpener::new(size)
        };
        let (movie, largest, total) = open_sparse(&head, huge, opener);
        let movie = movie.unwrap();
        assert_eq!(movie.tracks.len(), 1);
        assert_eq!(movie.tracks[0].samples.len(), 6);
        assert!(
            largest <= 64 << 10,
            "a read of {largest} bytes (paged: {paged})"
        );
        assert!(
            total <= 256 << 10,
            "{total} bytes read to open (paged: {paged})"
        );
    }
    // The same file with the moov read whole would have asked for 250 MB at once.
}

#[test]
fn a_moov_of_millions_of_tiny_boxes_is_refused_plainly() {
    // 100 000 empty `free` boxes inside the moov: walked one by one, then refused
    // rather than walked for ever.
    let frees: Vec<u8> = (0..100_000).flat_map(|_| bx(b"free", &[])).collect();
    let head = with_moov_child(&frees, 0);
    let (movie, largest, _) = open_sparse(&head, 0, MovieOpener::paged(head.len() as u64));
    let err = movie.unwrap_err().to_string();
    assert!(err.contains("more than 65536 boxes inside"), "{err}");
    assert!(largest <= 64 << 10);
}

#[test]
fn a_fragment_claiming_millions_of_samples_is_refused_before_it_is_indexed() {
    // mvex makes the file fragmented; one 36-byte moof says 10 million samples of the
    // default size 0: 40 MB of index for nothing.
    let trex = full(b"trex", 0, 0, &be32(&[7, 1, 512, 0, 0]));
    let mut file = with_moov_child(&bx(b"mvex", &trex), 0);
    let tfhd = full(b"tfhd", 0, 0x2_0000, &be32(&[7]));
    let trun = full(b"trun", 0, 0, &be32(&[10_000_000]));
    file.extend(bx(b"moof", &bx(b"traf", &cat(&[tfhd, trun]))));
    // In a file of 64 MB (zeros after the moof), so that the count is not already capped
    // by the file's size.
    let zeros = 64 << 20;
    let size = file.len() as u64 + zeros;
    let mut opener = MovieOpener::new(size);
    opener.set_index_limit(1 << 20);
    let (movie, _, _) = open_sparse(&file, zeros, opener);
    assert_eq!(
        movie.unwrap_err(),
        Mp4Error::IndexTooLarge { limit: 1 << 20 }
    );
    // Under the default limit (32 MiB) it is refused too; a real fragment opens.
    let (movie, _, _) = open_sparse(&file, zeros, MovieOpener::new(size));
    assert!(
        matches!(movie, Err(Mp4Error::IndexTooLarge { .. })),
        "{movie:?}"
    );
}
