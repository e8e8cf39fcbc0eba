//! The sentences that explain a read no order can place: on small
//! hand-made histories, the writes that could have produced the value are
//! named with the reason each is ruled out.

use checkers::history::{Event, EventType, History, Process};
use checkers::linear::{check, Options};
use checkers::model::ModelKind;
use checkers::Validity;
use serde_json::{json, Value};

/// (process, f, value, invoke time, completion time or None) in ms; the
/// completion returns `value` (a read's result).
fn history(ops: &[(u64, &str, Value, u64, Option<u64>)]) -> History {
    let mut stamps = Vec::new();
    for (p, f, v, call, ret) in ops {
        let input = if *f == "read" { Value::Null } else { v.clone() };
        stamps.push((*call, 1, *p, f.to_string(), input, EventType::Invoke));
        if let Some(r) = ret {
            stamps.push((*r, 0, *p, f.to_string(), v.clone(), EventType::Ok));
        }
    }
    stamps.sort_by_key(|s| (s.0, s.1));
    let events = stamps
        .into_iter()
        .enumerate()
        .map(|(i, (t, _, p, f, value, kind))| Event {
            index: i as u64,
            time: Some(t * 1_000_000),
            process: Process::Client(p),
            kind,
            f,
            key: None,
            value,
            node: None,
            error: None,
        })
        .collect();
    History::from_events(events).unwrap()
}

fn message(h: &History) -> String {
    let r = check(ModelKind::CasRegister, &Value::Null, h, &Options::default()).unwrap();
    assert_eq!(r.valid, Validity::Invalid);
    r.counterexample.unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_write_followed_by_a_read_of_another_value_is_ruled_out_by_name() {
    let h = history(&[
        (0, "write", json!(1), 0, Some(100)),
        (1, "write", json!(2), 1, Some(3)),
        (2, "read", json!(2), 4, Some(5)),
        (3, "read", json!(1), 6, Some(7)),
        (4, "read", json!(2), 8, Some(9)),
    ]);
    let m = message(&h);
    assert!(m.starts_with("process 4 read 2 (invoked at 0.008 s, completed at 0.009 s), but no write of 2 can be the last before it: "), "{m}");
    assert!(m.contains("process 1's write 2 (invoked at 0.001 s, completed at 0.003 s) was followed by process 3's read 1 (invoked at 0.006 s, completed at 0.007 s), which saw another value before the read began"), "{m}");
    assert!(!m.contains("held 2"), "{m}");
}

#[test]
fn a_crashed_write_used_up_leaves_the_completed_one_ruled_out() {
    // The crashed write of 1 explains the read of 1; the read of 2 after
    // it has only the write of 2, which that read of 1 followed.
    let h = history(&[
        (0, "write", json!(1), 0, Some(2)),
        (1, "write", json!(2), 3, Some(5)),
        (7, "write", json!(1), 1, None),
        (3, "read", json!(1), 6, Some(8)),
        (4, "read", json!(2), 9, Some(10)),
        (5, "write", json!(2), 11, Some(12)),
    ]);
    let m = message(&h);
    assert!(m.starts_with("process 4 read 2 (invoked at 0.009 s, completed at 0.010 s), but no write of 2 can be the last before it: "), "{m}");
    assert!(m.contains("process 1's write 2 (invoked at 0.003 s, completed at 0.005 s) was followed by process 3's read 1"), "{m}");
    // The witness is cut at the read's completion: later writes are not named.
    assert!(!m.contains("process 5"), "{m}");
}
