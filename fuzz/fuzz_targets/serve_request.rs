//! pm-serve's request readers on arbitrary bytes: the JSON parser (with its duplicate-key check),
//! the `Value` path of every body shape, and the fast path, which must accept only what the
//! `Value` path accepts and read it the same, bit for bit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pm_core::data::contract::Contract;
use pm_serve::input::Vocab;

fuzz_target!(|data: &[u8]| {
    static VOCAB: std::sync::OnceLock<Vocab> = std::sync::OnceLock::new();
    let vocab = VOCAB.get_or_init(|| {
        Vocab::new(&Contract::azure_pdm(), &[])
    });
    let fast = vocab.predict_request_fast(data);
    let list = vocab.request_list_fast(data, &["predictions", "instances"]);
    let slow = pm_serve::body::parse_json(data).ok().map(|v| {
        let _ = vocab.telemetry(&v);
        vocab.predict_request(&v, "")
    });
    if let Some(fast) = fast {
        match slow {
            Some(Ok(slow)) => assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "the paths read the body differently"),
            other => panic!("the fast path took a body the Value path refuses: {other:?}"),
        }
    }
    if let Some((_, items)) = list {
        assert!(pm_serve::body::parse_json(data).is_ok(), "the fast list path took a body that is not JSON");
        assert!(!items.is_empty());
    }
});
