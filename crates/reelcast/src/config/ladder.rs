//! `hls_abr_ladder`: the renditions an HLS ABR playlist offers below its source, as
//! `HEIGHT:KBPS` pairs (`720:2500,480:1200,360:800,240:400`).
//!
//! Owns: the [`Rung`] type and the text form of the list. Must not: decide which rungs
//! a given source gets (that is the HLS side, which keeps those below the source's size).

use super::values::{join, Form};

/// One step of the ladder: a picture height (the width follows the source's aspect) and
/// a video bit rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rung {
    /// Picture height, pixels.
    pub height: u32,
    /// Video bit rate, kbit/s.
    pub kbps: u32,
}

/// The default ladder: the common 720p/480p/360p/240p steps.
pub fn default_ladder() -> Vec<Rung> {
    [(720, 2500), (480, 1200), (360, 800), (240, 400)]
        .into_iter()
        .map(|(height, kbps)| Rung { height, kbps })
        .collect()
}

/// Rungs the list may have, at most.
const MAX_RUNGS: usize = 8;

/// The `hls_abr_ladder` form.
pub struct AbrLadder;

const EXPECTED: &str = "expected HEIGHT:KBPS pairs, comma-separated (720:2500,480:1200), \
                        at most 8, heights 16-2160, bit rates 50-20000 kbit/s";

impl Form for AbrLadder {
    type Value = Vec<Rung>;
    fn parse(text: &str) -> Result<Vec<Rung>, &'static str> {
        let mut rungs = Vec::new();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (height, kbps) = item.split_once(':').ok_or(EXPECTED)?;
            let number = |t: &str| t.trim().parse::<u32>().map_err(|_| EXPECTED);
            let rung = Rung {
                height: number(height)?,
                kbps: number(kbps.trim_end_matches(['k', 'K']))?,
            };
            if !(16..=2160).contains(&rung.height) || !(50..=20_000).contains(&rung.kbps) {
                return Err(EXPECTED);
            }
            if !rungs.iter().any(|r: &Rung| r.height == rung.height) {
                rungs.push(rung);
            }
        }
        if rungs.len() > MAX_RUNGS {
            return Err(EXPECTED);
        }
        // Highest first: the order the playlist lists them in.
        rungs.sort_by_key(|r| std::cmp::Reverse(r.height));
        Ok(rungs)
    }
    fn show(value: &Vec<Rung>) -> String {
        join(value.iter().map(|r| format!("{}:{}", r.height, r.kbps)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ladder_reads_back_highest_first_and_refuses_nonsense() {
        let l = AbrLadder::parse("360:800, 720:2500k ,360:900").unwrap();
        assert_eq!(AbrLadder::show(&l), "720:2500,360:800");
        assert_eq!(AbrLadder::parse("").unwrap(), vec![]);
        assert_eq!(
            AbrLadder::show(&default_ladder()),
            "720:2500,480:1200,360:800,240:400"
        );
        for bad in ["720", "720:x", "8:100", "720:10", "a:b,", "1:2:3"] {
            assert!(AbrLadder::parse(bad).is_err(), "{bad}");
        }
    }
}
