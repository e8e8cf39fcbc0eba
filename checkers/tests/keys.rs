//! Every failing key is named, each with its own witness.

use checkers::history::{read_history, Format};
use checkers::linear::{check, Options};
use checkers::model::ModelKind;
use checkers::Validity;

/// Key `k`: write 1, then a read that saw `seen` after the write completed.
fn key(k: &str, p: u64, seen: u64) -> String {
    let w = p * 2;
    let r = w + 1;
    format!(
        "{{\"process\":{w},\"type\":\"invoke\",\"f\":\"write\",\"key\":\"{k}\",\"value\":1}}
{{\"process\":{w},\"type\":\"ok\",\"f\":\"write\",\"key\":\"{k}\",\"value\":1}}
{{\"process\":{r},\"type\":\"invoke\",\"f\":\"read\",\"key\":\"{k}\",\"value\":null}}
{{\"process\":{r},\"type\":\"ok\",\"f\":\"read\",\"key\":\"{k}\",\"value\":{seen}}}
"
    )
}

// Regression: with several failing keys only the first was named.
#[test]
fn every_failing_key_is_named_with_its_witness() {
    let text = [
        key("a", 0, 2),
        key("b", 1, 1),
        key("c", 2, 3),
        key("d", 3, 1),
    ]
    .concat();
    let p = read_history("kv.jsonl", &text, Format::Auto).unwrap();
    let r = check(
        ModelKind::Kv,
        &serde_json::Value::Null,
        &p.history,
        &Options::default(),
    )
    .unwrap();
    assert_eq!(r.valid, Validity::Invalid);
    let keys: Vec<&str> = r
        .anomalies
        .iter()
        .map(|a| a["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["a", "c"]);
    for a in &r.anomalies {
        let k = a["key"].as_str().unwrap();
        let m = a["message"].as_str().unwrap();
        assert!(m.contains(&format!("on key \"{k}\"")), "{m}");
        assert!(a["op"].is_number(), "{a}");
    }
    assert!(
        r.summary().contains("2 keys fail: \"a\", \"c\""),
        "{}",
        r.summary()
    );
    assert_eq!(r.counterexample.unwrap()["key"], "a");
}
