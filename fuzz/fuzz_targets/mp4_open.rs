//! The MP4 opener and the sample-table walker over a whole file in memory: a file anyone
//! can upload to `media_dir` or an S3 bucket. Both ways of holding samples are driven
//! (indexed in memory, and paged tables walked 4 KiB at a time) and must agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mp4::{MovieOpener, OpenStep, SampleWalker, WalkStep};

/// Samples walked per track at most (a tiny input can declare millions).
const WALK_LIMIT: usize = 20_000;

fn read(file: &[u8], offset: u64, len: u64) -> &[u8] {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(file.len());
    let end = start
        .saturating_add(usize::try_from(len).unwrap_or(usize::MAX))
        .min(file.len());
    &file[start..end]
}

fn open_paged(file: &[u8]) -> Result<mp4::Movie, mp4::Mp4Error> {
    let mut opener = MovieOpener::paged(file.len() as u64);
    loop {
        match opener.poll()? {
            OpenStep::Read { offset, len } => {
                assert!(offset + len <= file.len() as u64, "read past the file size");
                opener.feed(offset, read(file, offset, len))?
            }
            OpenStep::Done(movie) => return Ok(movie),
        }
    }
}

fuzz_target!(|file: &[u8]| {
    let indexed = mp4::open_in_memory(file);
    let paged = open_paged(file);
    let (Ok(indexed), Ok(paged)) = (indexed, paged) else {
        return;
    };
    assert_eq!(indexed.tracks.len(), paged.tracks.len());
    for (ix, pg) in indexed.tracks.iter().zip(&paged.tracks) {
        assert_eq!(ix.samples.len(), pg.samples.len(), "sample counts differ");
        let _ = (
            ix.duration_us(),
            pg.samples.end_dts(),
            pg.samples.sync_count(),
        );
        let (mut a, mut b) = (SampleWalker::new(), SampleWalker::with_window(64));
        for _ in 0..WALK_LIMIT {
            let from_index = a.poll(&ix.samples);
            let from_file = loop {
                match b.poll(&pg.samples) {
                    WalkStep::Read { offset, len } => {
                        if b.feed(offset, read(file, offset, len)).is_err() {
                            return;
                        }
                    }
                    step => break step,
                }
            };
            assert_eq!(from_index, from_file, "indexed and paged walks differ");
            match from_index {
                WalkStep::Sample(s) => {
                    let _ = (
                        ix.presentation_time(&s),
                        ix.decode_time(&s),
                        ix.to_us(s.dts),
                    );
                }
                _ => break,
            }
        }
    }
});
