//! No input can make a reader panic; the writer and reader round-trip.

use checkers::gen::{generate, GenConfig};
use checkers::history::{jsonl, read_history, read_history_from, Format};
use checkers::linear::{check, Options};
use checkers::model::ModelKind;
use proptest::prelude::*;
use std::time::Duration;

const FORMATS: [Format; 4] = [Format::Auto, Format::Jsonl, Format::Edn, Format::JepsenLog];

fn seeds() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/porcupine");
    let head = |p: &str, n: usize| -> String {
        std::fs::read_to_string(dir.join(p))
            .unwrap()
            .lines()
            .take(n)
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let events = generate(&GenConfig {
        ops: 10,
        keys: 2,
        crash_rate: 0.2,
        ..GenConfig::default()
    });
    vec![
        head("jepsen/etcd_001.log", 30),
        head("kv/c10-bad.txt", 30),
        jsonl::to_string(&events),
        format!("[{}]", head("kv/c01-ok.txt", 20)),
    ]
}

/// Reads with every format, and checks whatever parses, under a tiny budget.
fn exercise(text: &str) {
    for f in FORMATS {
        if let Ok(p) = read_history("fuzz", text, f) {
            for m in ModelKind::ALL {
                let opts = Options {
                    time_limit: Duration::from_millis(50),
                    memory_limit: 64 << 20,
                    threads: 1,
                };
                let _ = check(m, &serde_json::Value::Null, &p.history, &opts);
            }
        }
        let _ = read_history_from("fuzz", text.as_bytes(), f, false);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(s in ".{0,400}") {
        exercise(&s);
    }

    #[test]
    fn edn_shaped_noise_never_panics(s in r#"[\[\]{}()#_:"\\ \n,;a-z0-9.\-+/NM]{0,300}"#) {
        exercise(&s);
    }

    #[test]
    fn mutated_histories_never_panic(
        which in 0usize..4,
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<char>()), 1..8),
    ) {
        let mut chars: Vec<char> = seeds()[which].chars().collect();
        for (at, kind, c) in edits {
            if chars.is_empty() {
                break;
            }
            let i = at.index(chars.len());
            match kind {
                0 => { chars.remove(i); }
                1 => chars.insert(i, c),
                _ => chars[i] = c,
            }
        }
        exercise(&chars.into_iter().collect::<String>());
    }

    #[test]
    fn writer_and_reader_round_trip(seed in any::<u64>(), ops in 0usize..60) {
        let events = generate(&GenConfig { ops, keys: 3, crash_rate: 0.2, seed, ..GenConfig::default() });
        let text = jsonl::to_string(&events);
        let p = read_history("rt", &text, Format::Auto).unwrap();
        prop_assert_eq!(&p.history.events, &events);
        let s = read_history_from("rt", text.as_bytes(), Format::Auto, true).unwrap();
        prop_assert_eq!(&s.history.events, &events);
        prop_assert_eq!(s.history.ops, p.history.ops);
    }
}

// Regression: a line longer than the reader's chunk, and chunk boundaries.
#[test]
fn long_lines_and_many_chunks_stream_correctly() {
    let long = "x".repeat(20 << 20);
    let mut text =
        format!("{{\"process\":0,\"type\":\"invoke\",\"f\":\"write\",\"value\":\"{long}\"}}\n");
    text.push_str(&format!(
        "{{\"process\":0,\"type\":\"ok\",\"f\":\"write\",\"value\":\"{long}\"}}\n"
    ));
    let events = generate(&GenConfig {
        ops: 60_000,
        keys: 3,
        crash_rate: 0.1,
        ..GenConfig::default()
    });
    text.push_str(&jsonl::to_string(&events));
    let p = read_history_from("big", text.as_bytes(), Format::Auto, true).unwrap();
    assert_eq!(p.history.events.len(), events.len() + 2);
    assert_eq!(
        p.history.events[2..],
        events
            .iter()
            .map(|e| {
                let mut e = e.clone();
                e.index += 2;
                e
            })
            .collect::<Vec<_>>()[..]
    );
    assert_eq!(*p.lines.last().unwrap(), events.len() + 2);
    // A bad line deep inside names its line.
    let mut lines: Vec<&str> = text.lines().collect();
    lines[50_000] = "{\"process\":0,";
    let bad = lines.join("\n") + "\n";
    let e = read_history_from("big", bad.as_bytes(), Format::Auto, false).unwrap_err();
    assert_eq!(e.line, Some(50_001));
}
