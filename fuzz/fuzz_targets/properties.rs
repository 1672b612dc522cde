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
        if let Ok(key) = settings.set(&entry.key, &entry.value, &origin) {
            // What `set` took, `get` gives back in a form `set` takes again.
            let text = settings.get(key).expect("a known key has a value");
            settings
                .set(key, &text, &origin)
                .expect("get's text is accepted by set");
        }
    }
});
