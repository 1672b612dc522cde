//! The recorder's value forms: `record_audio_codec`, `stream_record_policy` and
//! `stream_record_policy_template` (WCS's keys and words where WCS has them).

use super::values::Form;

/// `record_audio_codec`: what a recording's audio track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordAudioCodec {
    /// The stream's Opus re-encoded once to AAC-LC: every player plays it (WCS's
    /// `h264-mp4` recordings are H.264 + AAC).
    #[default]
    Aac,
    /// Opus as it came (`Opus` sample entry): no re-encoding, fewer players.
    Opus,
}

/// `record_audio_codec`: `aac` or `opus`, any case.
pub struct AudioCodecForm;

impl Form for AudioCodecForm {
    type Value = RecordAudioCodec;
    fn parse(text: &str) -> Result<RecordAudioCodec, &'static str> {
        match text.to_ascii_lowercase().as_str() {
            "aac" => Ok(RecordAudioCodec::Aac),
            "opus" => Ok(RecordAudioCodec::Opus),
            _ => Err("expected aac or opus"),
        }
    }
    fn show(value: &RecordAudioCodec) -> String {
        match value {
            RecordAudioCodec::Aac => "aac",
            RecordAudioCodec::Opus => "opus",
        }
        .to_string()
    }
}

/// `stream_record_policy`: how a recording is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordPolicy {
    /// `stream_record_policy_template` with its fields filled in (WCS's default).
    #[default]
    Template,
    /// The stream's name (`NAME.mp4`).
    StreamName,
}

/// `stream_record_policy`: `template` or `streamName` (WCS's spelling; any case).
pub struct PolicyForm;

impl Form for PolicyForm {
    type Value = RecordPolicy;
    fn parse(text: &str) -> Result<RecordPolicy, &'static str> {
        match text.to_ascii_lowercase().as_str() {
            "template" => Ok(RecordPolicy::Template),
            "streamname" => Ok(RecordPolicy::StreamName),
            _ => Err("expected template or streamName"),
        }
    }
    fn show(value: &RecordPolicy) -> String {
        match value {
            RecordPolicy::Template => "template",
            RecordPolicy::StreamName => "streamName",
        }
        .to_string()
    }
}

/// `stream_record_policy_template`: any text up to 255 bytes; `{field}`s are filled in
/// when a recording starts (unknown ones are left as written).
pub struct Template;

impl Form for Template {
    type Value = String;
    fn parse(text: &str) -> Result<String, &'static str> {
        if text.len() > 255 {
            return Err("expected a template of at most 255 bytes");
        }
        Ok(text.to_string())
    }
    fn show(value: &String) -> String {
        value.clone()
    }
}
