//! WCS WebSocket messages from an unauthenticated client, and the stream names they carry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reelcast::source::StreamUri;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for reply in reelcast::signal::wcs::fuzz_message(text) {
        serde_json::from_str::<serde_json::Value>(&reply).expect("a reply is valid JSON");
    }
    if let Ok(uri) = StreamUri::parse(text) {
        // The canonical form parses back to the same stream, and a local name stays
        // inside media_dir.
        let again = StreamUri::parse(&uri.uri_string()).expect("canonical name parses");
        assert_eq!(again, uri);
        if let Some(path) = uri.media_path() {
            assert!(path.as_path().is_relative());
            assert!(path
                .as_path()
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_))));
        }
    }
});
