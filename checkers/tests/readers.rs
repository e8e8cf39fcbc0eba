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
/// Whatever reads has a client operation: nothing unread is ever checked.
fn exercise(text: &str) {
    for f in FORMATS {
        if let Ok(p) = read_history("fuzz", text, f) {
            assert!(
                !p.history.ops.is_empty(),
                "{f:?} read no operation from {text:?}"
            );
            for m in ModelKind::ALL {
                let opts = Options {
                    time_limit: Duration::from_millis(50),
                    memory_limit: 64 << 20,
                    threads: 1,
                };
                let _ = check(m, &serde_json::Value::Null, &p.history, &opts);
            }
        }
        if let Ok(p) = read_history_from("fuzz", text.as_bytes(), f, false) {
            assert!(
                !p.history.ops.is_empty(),
                "{f:?} read no operation from {text:?}"
            );
        }
    }
}

/// The same for bytes that need not be text.
fn exercise_bytes(bytes: &[u8]) {
    for f in FORMATS {
        if let Ok(p) = read_history_from("fuzz", bytes, f, false) {
            assert!(
                !p.history.ops.is_empty(),
                "{f:?} read no operation from {bytes:?}"
            );
        }
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        exercise(text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(s in ".{0,400}") {
        exercise(&s);
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..400)) {
        exercise_bytes(&b);
    }

    #[test]
    fn mutated_bytes_never_panic(
        which in 0usize..4,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = seeds()[which].clone().into_bytes();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        exercise_bytes(&bytes);
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
    fn writer_and_reader_round_trip(seed in any::<u64>(), ops in 1usize..60) {
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

/// Text that holds no readable operation, as users met it: each is an
/// input error naming the file, never a valid empty history.
#[test]
fn nothing_unread_is_valid() {
    let op = "{:process 0, :type :invoke, :f :read, :value nil}\n{:process 0, :type :ok, :f :read, :value nil}\n";
    let jsonl_ops = "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n{\"process\":0,\"type\":\"ok\",\"f\":\"read\"}\n";
    let cases: Vec<(&str, String, Format)> = vec![
        ("empty", String::new(), Format::Auto),
        ("blank", " \n\n".into(), Format::Auto),
        ("prose", "hello world\n".into(), Format::Auto),
        ("NUL first", format!("\0{jsonl_ops}"), Format::Auto),
        (
            "garbage first line",
            format!("garbage\n{jsonl_ops}"),
            Format::Auto,
        ),
        ("stray ]", format!("{op}]\n{op}"), Format::Auto),
        (
            "unclosed {{ early",
            format!("{{:process 0, :type :invoke\n{op}{op}"),
            Format::Auto,
        ),
        (
            "unclosed string early",
            format!("{{:process 0, :type :invoke, :f \"read}}\n{op}{op}"),
            Format::Auto,
        ),
        ("unclosed vector", format!("[{op}"), Format::Auto),
        ("jsonl read as a log", jsonl_ops.into(), Format::JepsenLog),
        ("edn read as jsonl", op.into(), Format::Jsonl),
        (
            "nemesis only",
            "{:process :nemesis, :type :info, :f :start, :value nil}\n".into(),
            Format::Auto,
        ),
    ];
    for (what, text, f) in cases {
        let e = read_history("h.edn", &text, f).unwrap_err();
        assert!(e.to_string().starts_with("h.edn"), "{what}: {e}");
        let e = read_history_from("h.edn", text.as_bytes(), f, false).unwrap_err();
        assert!(e.to_string().starts_with("h.edn"), "{what}: {e}");
    }
    // The unclosed bracket is named on the line where its record starts.
    let e = read_history(
        "h.edn",
        &format!("{op}{{:process 1, :type :invoke\n{op}"),
        Format::Auto,
    )
    .unwrap_err();
    assert_eq!(e.line, Some(3), "{e}");
    // Echoed input is cut: a 5 MB keyword gives a short message.
    let huge = format!("{{:process 0, :type :{}, :f :read}}\n", "x".repeat(5 << 20));
    let e = read_history("h.edn", &huge, Format::Edn).unwrap_err();
    assert!(e.to_string().len() < 1000, "{} bytes", e.to_string().len());
}

/// Knossos's data files are EDN lists (or vectors) of op maps with `;`
/// comments; this one, written in that shape, reads as the same
/// nonlinearizable history: a read of 3 while only 0 and 4 were written.
#[test]
fn knossos_list_with_comments_is_read() {
    let text = "({:type :invoke, :f :write, :value 0, :process 0}
 {:type :ok, :f :write, :value 0, :process 0}
 ; two operations overlap here
 {:type :invoke, :f :read, :value nil, :process 1}
 {:type :invoke, :f :write, :value 4, :process 2}
 ; a value nobody wrote
 {:type :ok, :f :read, :value 3, :process 1}
 {:type :ok, :f :write, :value 4, :process 2}
 #_{:type :invoke, :f :read, :value nil, :process 9}
 ^{:note \"metadata\"} {:type :invoke, :f :read, :value nil, :process 3}
 {:type :ok, :f :read, :value 4, :process 3}
)
";
    let p = read_history("rethink.edn", text, Format::Auto).unwrap();
    assert_eq!(p.format, Format::Edn);
    assert_eq!(p.history.ops.len(), 4);
    let r = check_cas(&p.history);
    assert_eq!(r.valid, checkers::Validity::Invalid);
    assert_eq!(r.anomalies[0].extra["op"], 1, "{:?}", r.anomalies);
}

/// Jepsen's history.txt, as Jepsen writes it: `process type f value [error]`.
#[test]
fn jepsen_history_txt_with_error_column() {
    let text = "0\t:invoke\t:write\t1
1\t:invoke\t:cas\t[3 [1 1]]
0\t:ok\t:write\t1
1\t:fail\t:cas\t[3 [1 1]]\t:precondition
2\t:invoke\t:write\t2
2\t:fail\t:write\t2\tREADONLY You can't write against a read only replica.
3\t:invoke\t:read\tnil
3\t:info\t:read\tnil\tCarmine connection error
4\t:invoke\t:read\tnil
4\t:ok\t:read\t1
";
    let p = read_history("history.txt", text, Format::Auto).unwrap();
    assert_eq!(p.format, Format::JepsenLog);
    assert_eq!(p.history.ops.len(), 5);
    let events: Vec<_> = p
        .history
        .events
        .iter()
        .filter_map(|e| e.error.clone())
        .collect();
    assert_eq!(
        events,
        [
            serde_json::json!("precondition"),
            serde_json::json!("READONLY You can't write against a read only replica."),
            serde_json::json!("Carmine connection error"),
        ]
    );
    let r = check_cas(&p.history);
    assert_eq!(r.valid, checkers::Validity::Valid);
}

fn check_cas(h: &checkers::history::History) -> checkers::CheckResult {
    check(
        ModelKind::CasRegister,
        &serde_json::Value::Null,
        h,
        &Options::default(),
    )
    .unwrap()
}

// Regression: history.txt of an independent test (`[key value]` tuples) was
// read without splitting the tuples, unlike the history.edn beside it.
#[test]
fn independent_history_txt_reads_like_its_history_edn() {
    let txt = "3\t:invoke\t:write\t[3 1]
3\t:ok\t:write\t[3 1]
4\t:invoke\t:cas\t[3 [1 1]]
4\t:fail\t:cas\t[3 [1 1]]\t:precondition
5\t:invoke\t:read\t[3 nil]
5\t:ok\t:read\t[3 2]
";
    let edn = "{:process 3, :type :invoke, :f :write, :value [3 1]}
{:process 3, :type :ok, :f :write, :value [3 1]}
{:process 4, :type :invoke, :f :cas, :value [3 [1 1]]}
{:process 4, :type :fail, :f :cas, :value [3 [1 1]], :error :precondition}
{:process 5, :type :invoke, :f :read, :value [3 nil]}
{:process 5, :type :ok, :f :read, :value [3 2]}
";
    let t = read_history("history.txt", txt, Format::Auto).unwrap();
    let e = read_history("history.edn", edn, Format::Auto).unwrap();
    assert_eq!(t.history.ops, e.history.ops);
    assert_eq!(t.history.ops[1].key, Some(serde_json::json!(3)));
    assert_eq!(t.history.ops[1].input, serde_json::json!([1, 1]));
    let (rt, re) = (check_cas(&t.history), check_cas(&e.history));
    assert_eq!(
        (rt.valid, re.valid),
        (checkers::Validity::Invalid, checkers::Validity::Invalid)
    );
}
