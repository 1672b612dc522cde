//! What a viewer asks of a stream's video on play (WCS "Stream transcoding"): a picture
//! size, a bit rate, or both (the SDK's `constraints: {video: {width, height, bitrate}}`,
//! sent in `playStream`; WHEP's `?width=&height=&bitrate=`).
//!
//! Owns: reading those numbers from a request, bounding them (a plain refusal for
//! nonsense), and deciding whether a source needs a transcode for them at all. Pure: no
//! streams, no encoders. The rendition that serves them is `stream::rendition` (shared
//! streams) or the reader's own transcode (personal VOD).

use ::transcode::fit_size;

use super::StreamError;

/// Widths and heights a viewer may ask for, in pixels.
pub const SIZE_RANGE: std::ops::RangeInclusive<u32> = 16..=3840;
/// Bit rates a viewer may ask for, in kbit/s.
pub const BITRATE_RANGE_KBPS: std::ops::RangeInclusive<u32> = 50..=20_000;

/// A viewer's video constraints, each bounded; `None`: not asked (the SDK sends 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VideoConstraints {
    /// Picture width asked.
    pub width: Option<u32>,
    /// Picture height asked.
    pub height: Option<u32>,
    /// Bit rate asked, kbit/s.
    pub bitrate_kbps: Option<u32>,
    /// VP8 instead of H.264: the viewer's browser offered no H.264 (not a play
    /// parameter; set from the viewer's offer). Part of a rendition's key.
    pub vp8: bool,
}

impl VideoConstraints {
    /// The constraints of a play from its raw numbers (JSON numbers or numeric strings;
    /// absent, `null` or 0: not asked). `Ok(None)`: nothing asked. A value that is not a
    /// whole number or out of bounds is refused in plain words.
    pub fn from_request(
        width: Option<&serde_json::Value>,
        height: Option<&serde_json::Value>,
        bitrate: Option<&serde_json::Value>,
    ) -> Result<Option<Self>, StreamError> {
        let c = VideoConstraints {
            width: bounded("width", width, &SIZE_RANGE)?,
            height: bounded("height", height, &SIZE_RANGE)?,
            bitrate_kbps: bounded("bitrate", bitrate, &BITRATE_RANGE_KBPS)?,
            vp8: false,
        };
        Ok((c != VideoConstraints::default()).then_some(c))
    }

    /// The picture size a source of `width`×`height` is encoded at for these constraints.
    pub fn size_for(&self, width: u32, height: u32) -> (u32, u32) {
        fit_size(width, height, self.width, self.height)
    }

    /// `asked` (or nothing asked) encoded to VP8, for a viewer whose browser offered no
    /// H.264.
    pub fn vp8(asked: Option<Self>) -> Self {
        VideoConstraints {
            vp8: true,
            ..asked.unwrap_or_default()
        }
    }

    /// Whether a source of `width`×`height` (0×0: not known yet) needs a transcode for
    /// these constraints: VP8 or a bit rate is asked, or a size other than the source's.
    pub fn need_transcode(&self, width: u32, height: u32) -> bool {
        self.vp8
            || self.bitrate_kbps.is_some()
            || width == 0
            || height == 0
            || self.size_for(width, height) != (width & !1, height & !1)
    }

    /// The same rendition said in full for a source of `width`×`height` (its exact size),
    /// so that asks which come to the same picture share one encoder (`width: 320` and
    /// `320x180` of a 16:9 source). Unchanged while the source's size is not known.
    #[must_use]
    pub fn resolved_for(&self, width: u32, height: u32) -> Self {
        if width == 0 || height == 0 {
            return *self;
        }
        let (w, h) = self.size_for(width, height);
        VideoConstraints {
            width: Some(w),
            height: Some(h),
            bitrate_kbps: self.bitrate_kbps,
            vp8: self.vp8,
        }
    }

    /// The bit rate asked, in bits per second.
    pub fn bit_rate(&self) -> Option<u64> {
        self.bitrate_kbps.map(|k| u64::from(k) * 1000)
    }
}

/// One constraint: `None` when absent or 0, else a whole number within `range`.
fn bounded(
    name: &str,
    value: Option<&serde_json::Value>,
    range: &std::ops::RangeInclusive<u32>,
) -> Result<Option<u32>, StreamError> {
    use serde_json::Value;
    let bad = || {
        StreamError::Other(format!(
            "Bad constraints: {name} must be 0 or {} to {}",
            range.start(),
            range.end()
        ))
    };
    let n = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(n), _) => n,
            // 320.0 from a client that sends floats.
            (None, Some(f)) if f.fract() == 0.0 && f >= 0.0 && f <= f64::from(u32::MAX) => f as u64,
            _ => return Err(bad()),
        },
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.trim().parse::<u64>().map_err(|_| bad())?,
        Some(_) => return Err(bad()),
    };
    if n == 0 {
        return Ok(None);
    }
    u32::try_from(n)
        .ok()
        .filter(|n| range.contains(n))
        .map(Some)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(w: serde_json::Value, h: serde_json::Value, b: serde_json::Value) -> String {
        match VideoConstraints::from_request(Some(&w), Some(&h), Some(&b)) {
            Ok(c) => format!("{c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn constraints_are_read_bounded_and_refused_in_plain_words() {
        assert_eq!(parse(json!(0), json!(0), json!(0)), "None");
        assert_eq!(parse(json!(null), json!(""), json!(0)), "None");
        assert_eq!(
            parse(json!(320), json!("180"), json!(300.0)),
            "Some(VideoConstraints { width: Some(320), height: Some(180), bitrate_kbps: Some(300), vp8: false })"
        );
        for (w, h, b) in [
            (json!(-1), json!(0), json!(0)),
            (json!(8), json!(0), json!(0)),
            (json!(0), json!(5000), json!(0)),
            (json!(0), json!(0), json!(10)),
            (json!(0), json!(0), json!(1e12)),
            (json!(320.5), json!(0), json!(0)),
            (json!("wide"), json!(0), json!(0)),
            (json!([320]), json!(0), json!(0)),
        ] {
            let said = parse(w.clone(), h, b);
            assert!(said.starts_with("Bad constraints: "), "{w}: {said}");
        }
        assert_eq!(
            parse(json!(1), json!(0), json!(0)),
            "Bad constraints: width must be 0 or 16 to 3840"
        );
    }

    #[test]
    fn only_a_size_or_bit_rate_other_than_the_sources_needs_a_transcode() {
        let c = |width, height, bitrate_kbps| VideoConstraints {
            width,
            height,
            bitrate_kbps,
            vp8: false,
        };
        assert!(!c(Some(1280), Some(720), None).need_transcode(1280, 720));
        assert!(!c(Some(1920), None, None).need_transcode(1280, 720));
        assert!(c(Some(320), Some(180), None).need_transcode(1280, 720));
        assert!(c(None, None, Some(500)).need_transcode(1280, 720));
        assert!(c(Some(320), None, None).need_transcode(0, 0));
        // VP8 is always a transcode, at the source's size unless a size is asked too.
        let vp8 = VideoConstraints::vp8(None);
        assert!(vp8.need_transcode(1280, 720));
        assert_eq!(vp8.resolved_for(1280, 720).size_for(1280, 720), (1280, 720));
        assert!(vp8.resolved_for(1280, 720).vp8);
        assert_ne!(
            vp8.resolved_for(1280, 720),
            c(None, None, None).resolved_for(1280, 720)
        );
        assert_eq!(c(None, Some(180), None).size_for(1280, 720), (320, 180));
        // Asks that come to the same picture are the same rendition.
        assert_eq!(
            c(Some(320), None, Some(300)).resolved_for(1280, 720),
            c(Some(320), Some(180), Some(300))
        );
        assert_eq!(
            c(None, None, Some(300)).resolved_for(1280, 720),
            c(Some(1280), Some(720), Some(300))
        );
        assert_eq!(
            c(Some(320), None, None).resolved_for(0, 0),
            c(Some(320), None, None)
        );
    }
}
