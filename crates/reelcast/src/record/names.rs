//! Recording file names: WCS's `stream_record_policy` (`template` or `streamName`), the
//! template's `{fields}`, and names made safe to be one file in `record_dir`.
//!
//! Owns only text: no file system (the caller checks which names are taken). A safe
//! name holds no path separator, no `..` component, no control character, does not start
//! with `.` (hidden names are the recorder's own: sidecars and temporaries), ends in
//! `.mp4`, and is at most 255 bytes (cut on a character boundary).
//!
//! `{endTime}`, `{endTimeMillis}` and `{duration}` are known only at stop: a name
//! using them is made twice, at start with those fields `0` (the `recordName` reported
//! at start), and at finalize with the real values; the finished file takes the second
//! name (see docs/RECORDING.md).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::RecordPolicy;

/// The longest file name most file systems take, in bytes (WCS cuts at 255 too).
pub const MAX_NAME_BYTES: usize = 255;

/// What a template's fields are filled from.
#[derive(Debug, Clone, Default)]
pub struct NameFields {
    /// `{streamName}`.
    pub stream_name: String,
    /// `{mediaSessionId}`.
    pub media_session_id: String,
    /// `{sessionId}`: the signalling session (empty for a translation).
    pub session_id: String,
    /// `{login}`: who published (empty for a translation).
    pub login: String,
    /// `{audioCodec}`: what the file carries (`aac`, `opus`), empty without audio.
    pub audio_codec: String,
    /// `{videoCodec}`: `H264`, empty without video.
    pub video_codec: String,
    /// When the recording started.
    pub start: Option<SystemTime>,
    /// When it ended (at finalize).
    pub end: Option<SystemTime>,
}

fn millis(t: Option<SystemTime>) -> u128 {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis())
}

/// True when the template names a field known only at stop.
pub fn needs_end(template: &str) -> bool {
    ["{endTime}", "{endTimeMillis}", "{duration}"]
        .iter()
        .any(|f| template.contains(f))
}

/// The file name for `fields` under `policy` (`.mp4` added when missing), made safe.
pub fn file_name(policy: RecordPolicy, template: &str, fields: &NameFields) -> String {
    let raw = match policy {
        RecordPolicy::StreamName => fields.stream_name.clone(),
        RecordPolicy::Template => expand(template, fields),
    };
    safe(&raw)
}

/// The template with its fields filled in. `{startTime}`/`{endTime}` are seconds since
/// 1970 (WCS writes epoch times), the `Millis` forms milliseconds, `{duration}`
/// milliseconds; unknown `{…}` stay as written.
pub fn expand(template: &str, f: &NameFields) -> String {
    let start = millis(f.start);
    let end = millis(f.end);
    let duration = end.saturating_sub(start) * u128::from(f.end.is_some());
    template
        .replace("{streamName}", &f.stream_name)
        .replace("{mediaSessionId}", &f.media_session_id)
        .replace("{sessionId}", &f.session_id)
        .replace("{login}", &f.login)
        .replace("{audioCodec}", &f.audio_codec)
        .replace("{videoCodec}", &f.video_codec)
        .replace("{startTimeMillis}", &start.to_string())
        .replace("{endTimeMillis}", &end.to_string())
        .replace("{startTime}", &(start / 1000).to_string())
        .replace("{endTime}", &(end / 1000).to_string())
        .replace("{duration}", &duration.to_string())
}

/// `raw` as one safe file name in the folder (see the module docs).
pub fn safe(raw: &str) -> String {
    let mut name: String = raw
        .chars()
        .map(|c| match c {
            '/' | '\\' | ':' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    while name.contains("..") {
        name = name.replace("..", "_");
    }
    let name = name.trim_start_matches(['.', ' ']).trim_end();
    let stem = name.strip_suffix(".mp4").unwrap_or(name);
    let stem = if stem.is_empty() { "recording" } else { stem };
    format!("{}.mp4", cut(stem, MAX_NAME_BYTES - ".mp4".len() - 4))
}

/// `s` cut to at most `max` bytes on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The first of `name`, `name-1.mp4`, `name-2.mp4`, … for which `taken` is false
/// (bounded: after 10 000 tries the last is returned).
pub fn unique(name: &str, taken: impl Fn(&str) -> bool) -> String {
    if !taken(name) {
        return name.to_string();
    }
    let stem = name.strip_suffix(".mp4").unwrap_or(name);
    let mut candidate = name.to_string();
    for i in 1..10_000 {
        candidate = format!("{stem}-{i}.mp4");
        if !taken(&candidate) {
            break;
        }
    }
    candidate
}

/// The sidecar that marks `name` as being written: `.NAME.recording`.
pub fn sidecar(name: &str) -> String {
    format!(".{name}.recording")
}

/// The recording a sidecar marks, if `file` is one.
pub fn of_sidecar(file: &str) -> Option<&str> {
    file.strip_prefix('.')?.strip_suffix(".recording")
}

/// The temporary the finalized file is written to before it is renamed over `name`.
pub fn temporary(name: &str) -> String {
    format!(".{name}.finalizing")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fields() -> NameFields {
        NameFields {
            stream_name: "cam".into(),
            media_session_id: "m-1".into(),
            session_id: "s-9".into(),
            login: "alice".into(),
            audio_codec: "aac".into(),
            video_codec: "H264".into(),
            start: Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
            end: Some(UNIX_EPOCH + Duration::from_millis(1_700_000_004_623)),
        }
    }

    #[test]
    fn template_fields_are_filled_in() {
        let t = "{streamName}-{mediaSessionId}-{sessionId}-{login}-{audioCodec}-{videoCodec}-\
                 {startTime}-{endTime}-{startTimeMillis}-{endTimeMillis}-{duration}-{other}";
        assert_eq!(
            file_name(RecordPolicy::Template, t, &fields()),
            "cam-m-1-s-9-alice-aac-H264-1700000000-1700000004-1700000000123-1700000004623-4500-{other}.mp4"
        );
        assert_eq!(file_name(RecordPolicy::StreamName, t, &fields()), "cam.mp4");
        let mut f = fields();
        f.end = None;
        assert_eq!(expand("{duration}-{endTime}", &f), "0-0");
        assert!(needs_end("a{endTime}") && !needs_end("{startTime}"));
    }

    #[test]
    fn unsafe_names_stay_one_file_in_the_folder() {
        assert_eq!(safe("../../etc/passwd"), "____etc_passwd.mp4");
        assert_eq!(safe("a/b\\c"), "a_b_c.mp4");
        assert_eq!(safe("x\u{0}\n\u{7f}y.mp4"), "x___y.mp4");
        assert_eq!(safe(".hidden"), "hidden.mp4");
        assert_eq!(safe(""), "recording.mp4");
        assert_eq!(safe(".."), "_.mp4");
        let long = "é".repeat(300);
        let s = safe(&long);
        assert!(
            s.len() <= MAX_NAME_BYTES && s.as_bytes().ends_with(b".mp4"),
            "{}",
            s.len()
        );
    }

    #[test]
    fn a_name_in_use_gets_a_suffix() {
        let taken = ["a.mp4", "a-1.mp4"];
        assert_eq!(unique("a.mp4", |n| taken.contains(&n)), "a-2.mp4");
        assert_eq!(unique("b.mp4", |n| taken.contains(&n)), "b.mp4");
        assert_eq!(of_sidecar(&sidecar("x.mp4")), Some("x.mp4"));
        assert_eq!(of_sidecar("x.mp4"), None);
    }
}
