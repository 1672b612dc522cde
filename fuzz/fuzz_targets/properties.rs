//! A WCS `flashphoner.properties` file: the Java properties parser, then every entry set
//! as the loader sets it (values from an operator's file, but often copied from elsewhere).
#![no_main]

use libfuzzer_sys::fuzz_target;
use reelcast::config::{parse_properties, Origin, Settings};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut settings = Settings::default();
    for entry in parse_properties(&text) {
        assert!(entry.line >= 1);
        let origin = Origin::Default;
        let Ok(key) = settings.set(&entry.key, &entry.value, &origin) else {
            continue;
        };
        // What `set` took, `get` gives back in a form `set` takes again (per-host S3
        // credentials, `aws_s3_credentials.HOST`, have no `get`).
        if let Some(text) = settings.get(key) {
            settings
                .set(key, &text, &origin)
                .expect("get's text is accepted by set");
        }
    }
});
