//! Hand-made histories, one or more per anomaly type, read both as JSON
//! lines and as Jepsen EDN, and checked as list-append or rw-register.

use checkers::history::{read_history, Format};
use checkers::txn::{check, Models, TxnKind};
use checkers::{CheckResult, Validity};
use serde_json::{json, Value};

/// (process, type, value): events in order, index and time filled in.
type Ev = (u64, &'static str, Value);

fn jsonl(events: &[Ev]) -> String {
    let mut s = String::new();
    for (i, (p, t, v)) in events.iter().enumerate() {
        let e =
            json!({"index": i, "time": i * 1000, "process": p, "type": t, "f": "txn", "value": v});
        s.push_str(&e.to_string());
        s.push('\n');
    }
    s
}

/// The same events as Jepsen's history.edn: micro-op names and string keys
/// become keywords.
fn edn(events: &[Ev]) -> String {
    fn val(v: &Value, top: bool) -> String {
        match v {
            Value::Null => "nil".into(),
            Value::String(s) if top => format!(":{s}"),
            Value::String(s) => format!("{s:?}"),
            Value::Array(a) => {
                let parts: Vec<String> = a.iter().map(|x| val(x, false)).collect();
                format!("[{}]", parts.join(" "))
            }
            other => other.to_string(),
        }
    }
    let mut s = String::new();
    for (i, (p, t, v)) in events.iter().enumerate() {
        let mops: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let m = m.as_array().unwrap();
                format!(
                    "[{} {} {}]",
                    val(&m[0], true),
                    val(&m[1], true),
                    val(&m[2], false)
                )
            })
            .collect();
        s.push_str(&format!(
            "{{:type :{t}, :f :txn, :value [{}], :time {}, :process {p}, :index {i}}}\n",
            mops.join(" "),
            i * 1000
        ));
    }
    s
}

/// Checks the history three ways: JSON lines through the ordinary reader,
/// EDN, and JSON lines through the streaming transaction reader.
fn run(kind: TxnKind, models: &str, events: &[Ev]) -> [CheckResult; 3] {
    let m = Models::parse(models).unwrap();
    let text = jsonl(events);
    let a = read_history("h.jsonl", &text, Format::Jsonl).unwrap();
    let b = read_history("h.edn", &edn(events), Format::Edn).unwrap();
    let c = checkers::txn::read::read_jsonl("h.jsonl", kind, text.as_bytes()).unwrap();
    [
        check(kind, m, &a.history, None).unwrap(),
        check(kind, m, &b.history, None).unwrap(),
        checkers::txn::check_txns(kind, m, &c.txns, std::time::Instant::now(), None),
    ]
}

fn types(r: &CheckResult) -> Vec<String> {
    r.anomalies.iter().map(|a| a.kind.clone()).collect()
}

/// Asserts both formats find `kind` and judge the history invalid under `models`.
fn finds(kind: TxnKind, models: &str, anomaly: &str, events: &[Ev]) -> Value {
    let rs = run(kind, models, events);
    for r in &rs {
        assert!(
            types(r).iter().any(|t| t == anomaly),
            "expected {anomaly} in {:?}",
            types(r)
        );
        assert_eq!(r.valid, Validity::Invalid, "{anomaly}: {:?}", r.anomalies);
    }
    rs[0]
        .anomalies
        .iter()
        .find(|a| a.kind == anomaly)
        .map(|a| serde_json::to_value(a).unwrap())
        .unwrap()
}

fn ok_txn(p: u64, inv: Value, out: Value) -> [Ev; 2] {
    [(p, "invoke", inv), (p, "ok", out)]
}

const LA: TxnKind = TxnKind::ListAppend;
const RR: TxnKind = TxnKind::RwRegister;

#[test]
fn g0_write_cycle() {
    let h = [
        (0, "invoke", json!([["append", "x", 1], ["append", "y", 1]])),
        (1, "invoke", json!([["append", "x", 2], ["append", "y", 2]])),
        (0, "ok", json!([["append", "x", 1], ["append", "y", 1]])),
        (1, "ok", json!([["append", "x", 2], ["append", "y", 2]])),
        (2, "invoke", json!([["r", "x", null], ["r", "y", null]])),
        (2, "ok", json!([["r", "x", [1, 2]], ["r", "y", [2, 1]]])),
    ];
    let a = finds(LA, "read-uncommitted", "G0", &h);
    let edges = a["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 2);
    assert!(edges.iter().all(|e| e["type"] == "ww"));
    let text = edges[0]["explanation"].as_str().unwrap();
    assert!(text.contains("appended") && text.contains("(ww)"), "{text}");
}

#[test]
fn g1a_aborted_read() {
    let h = [
        (0, "invoke", json!([["append", "x", 1]])),
        (0, "fail", json!([["append", "x", 1]])),
        (1, "invoke", json!([["r", "x", null]])),
        (1, "ok", json!([["r", "x", [1]]])),
    ];
    finds(LA, "read-committed", "G1a", &h);
    // Read uncommitted allows it.
    for r in run(LA, "read-uncommitted", &h) {
        assert_eq!(r.valid, Validity::Valid);
    }
}

#[test]
fn g1b_intermediate_read() {
    let h = [
        (0, "invoke", json!([["append", "x", 1], ["append", "x", 2]])),
        (1, "invoke", json!([["r", "x", null]])),
        (1, "ok", json!([["r", "x", [1]]])),
        (0, "ok", json!([["append", "x", 1], ["append", "x", 2]])),
    ];
    finds(LA, "read-committed", "G1b", &h);
}

#[test]
fn g1c_circular_information_flow() {
    let h = [
        (0, "invoke", json!([["append", "x", 1], ["r", "y", null]])),
        (1, "invoke", json!([["append", "y", 1], ["r", "x", null]])),
        (0, "ok", json!([["append", "x", 1], ["r", "y", [1]]])),
        (1, "ok", json!([["append", "y", 1], ["r", "x", [1]]])),
    ];
    let a = finds(LA, "read-committed", "G1c", &h);
    assert!(a["edges"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["type"] == "wr"));
}

#[test]
fn g_single_read_skew() {
    let h = [
        (0, "invoke", json!([["r", "x", null], ["r", "y", null]])),
        (1, "invoke", json!([["append", "x", 1], ["append", "y", 1]])),
        (1, "ok", json!([["append", "x", 1], ["append", "y", 1]])),
        (0, "ok", json!([["r", "x", []], ["r", "y", [1]]])),
        (2, "invoke", json!([["r", "x", null]])),
        (2, "ok", json!([["r", "x", [1]]])),
    ];
    let a = finds(LA, "snapshot-isolation", "G-single", &h);
    let msg = a["message"].as_str().unwrap();
    assert!(
        msg.contains("read x=[] without 1, which T2 appended and committed"),
        "{msg}"
    );
}

#[test]
fn g2_item_write_skew_allowed_by_si() {
    let h = [
        (0, "invoke", json!([["append", "x", 1], ["r", "y", null]])),
        (1, "invoke", json!([["append", "y", 1], ["r", "x", null]])),
        (0, "ok", json!([["append", "x", 1], ["r", "y", []]])),
        (1, "ok", json!([["append", "y", 1], ["r", "x", []]])),
        (2, "invoke", json!([["r", "x", null], ["r", "y", null]])),
        (2, "ok", json!([["r", "x", [1]], ["r", "y", [1]]])),
    ];
    finds(LA, "serializable", "G2-item", &h);
    finds(LA, "repeatable-read", "G2-item", &h);
    for r in run(LA, "snapshot-isolation", &h) {
        assert_eq!(r.valid, Validity::Valid, "{:?}", r.anomalies);
        assert!(types(&r).contains(&"G2-item".to_string()));
    }
}

#[test]
fn g_nonadjacent() {
    let mut h: Vec<Ev> = vec![
        (0, "invoke", json!([["r", "x", null], ["r", "w", null]])),
        (1, "invoke", json!([["append", "x", 1], ["append", "y", 1]])),
        (2, "invoke", json!([["r", "y", null], ["r", "z", null]])),
        (3, "invoke", json!([["append", "z", 1], ["append", "w", 1]])),
        (1, "ok", json!([["append", "x", 1], ["append", "y", 1]])),
        (3, "ok", json!([["append", "z", 1], ["append", "w", 1]])),
        (0, "ok", json!([["r", "x", []], ["r", "w", [1]]])),
        (2, "ok", json!([["r", "y", [1]], ["r", "z", []]])),
    ];
    h.extend(ok_txn(
        4,
        json!([["r", "x", null], ["r", "z", null]]),
        json!([["r", "x", [1]], ["r", "z", [1]]]),
    ));
    let a = finds(LA, "snapshot-isolation", "G-nonadjacent", &h);
    assert_eq!(a["edges"].as_array().unwrap().len(), 4);
}

#[test]
fn g0_process() {
    let mut h: Vec<Ev> = Vec::new();
    h.extend(ok_txn(
        0,
        json!([["append", "x", 2]]),
        json!([["append", "x", 2]]),
    ));
    h.extend(ok_txn(
        0,
        json!([["append", "x", 1]]),
        json!([["append", "x", 1]]),
    ));
    h.extend(ok_txn(
        1,
        json!([["r", "x", null]]),
        json!([["r", "x", [1, 2]]]),
    ));
    finds(LA, "strict-serializable", "G0-process", &h);
    for r in run(LA, "serializable", &h) {
        assert_eq!(r.valid, Validity::Valid, "{:?}", r.anomalies);
    }
}

#[test]
fn g_single_realtime_stale_read() {
    let mut h: Vec<Ev> = Vec::new();
    h.extend(ok_txn(
        0,
        json!([["append", "x", 1]]),
        json!([["append", "x", 1]]),
    ));
    h.extend(ok_txn(
        1,
        json!([["r", "x", null]]),
        json!([["r", "x", []]]),
    ));
    h.extend(ok_txn(
        2,
        json!([["r", "x", null]]),
        json!([["r", "x", [1]]]),
    ));
    let a = finds(LA, "strict-serializable", "G-single-realtime", &h);
    assert!(a["edges"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["type"] == "realtime"));
    for r in run(LA, "serializable", &h) {
        assert_eq!(r.valid, Validity::Valid);
    }
}

#[test]
fn internal() {
    let h = ok_txn(
        0,
        json!([["append", "x", 1], ["r", "x", null]]),
        json!([["append", "x", 1], ["r", "x", []]]),
    );
    finds(LA, "snapshot-isolation", "internal", &h);
}

#[test]
fn incompatible_order() {
    let mut h: Vec<Ev> = Vec::new();
    h.extend(ok_txn(
        0,
        json!([["append", "x", 1]]),
        json!([["append", "x", 1]]),
    ));
    h.extend(ok_txn(
        0,
        json!([["append", "x", 2]]),
        json!([["append", "x", 2]]),
    ));
    h.extend(ok_txn(
        1,
        json!([["r", "x", null]]),
        json!([["r", "x", [1, 2]]]),
    ));
    h.extend(ok_txn(
        2,
        json!([["r", "x", null]]),
        json!([["r", "x", [2]]]),
    ));
    finds(LA, "read-committed", "incompatible-order", &h);
}

#[test]
fn duplicate_elements() {
    let mut h: Vec<Ev> = Vec::new();
    h.extend(ok_txn(
        0,
        json!([["append", "x", 1]]),
        json!([["append", "x", 1]]),
    ));
    h.extend(ok_txn(
        1,
        json!([["r", "x", null]]),
        json!([["r", "x", [1, 1]]]),
    ));
    finds(LA, "read-uncommitted", "duplicate-elements", &h);
}

#[test]
fn dirty_update() {
    let mut h: Vec<Ev> = vec![
        (0, "invoke", json!([["append", "x", 1]])),
        (0, "fail", json!([["append", "x", 1]])),
    ];
    h.extend(ok_txn(
        1,
        json!([["append", "x", 2]]),
        json!([["append", "x", 2]]),
    ));
    h.extend(ok_txn(
        2,
        json!([["r", "x", null]]),
        json!([["r", "x", [1, 2]]]),
    ));
    finds(LA, "read-committed", "dirty-update", &h);
}

#[test]
fn lost_update() {
    let h = [
        (0, "invoke", json!([["r", "x", null], ["append", "x", 1]])),
        (1, "invoke", json!([["r", "x", null], ["append", "x", 2]])),
        (0, "ok", json!([["r", "x", []], ["append", "x", 1]])),
        (1, "ok", json!([["r", "x", []], ["append", "x", 2]])),
        (2, "invoke", json!([["r", "x", null]])),
        (2, "ok", json!([["r", "x", [1, 2]]])),
    ];
    finds(LA, "snapshot-isolation", "lost-update", &h);
}

#[test]
fn garbage_read() {
    let h = ok_txn(0, json!([["r", "x", null]]), json!([["r", "x", [9]]]));
    finds(LA, "read-uncommitted", "garbage-read", &h);
}

#[test]
fn register_g0_and_cyclic_versions() {
    let h = [
        (
            0,
            "invoke",
            json!([["w", "x", 1], ["r", "y", null], ["w", "y", 4]]),
        ),
        (
            1,
            "invoke",
            json!([["r", "x", null], ["w", "x", 2], ["w", "y", 3]]),
        ),
        (
            1,
            "ok",
            json!([["r", "x", 1], ["w", "x", 2], ["w", "y", 3]]),
        ),
        (
            0,
            "ok",
            json!([["w", "x", 1], ["r", "y", 3], ["w", "y", 4]]),
        ),
    ];
    finds(RR, "read-uncommitted", "G0", &h);
    let mut c: Vec<Ev> = Vec::new();
    c.extend(ok_txn(
        0,
        json!([["r", "x", null], ["w", "x", 2]]),
        json!([["r", "x", 1], ["w", "x", 2]]),
    ));
    c.extend(ok_txn(
        1,
        json!([["r", "x", null], ["w", "x", 1]]),
        json!([["r", "x", 2], ["w", "x", 1]]),
    ));
    finds(RR, "read-uncommitted", "cyclic-versions", &c);
}

#[test]
fn register_g1a_g1b_garbage_internal() {
    let h = [
        (0, "invoke", json!([["w", "x", 1]])),
        (0, "fail", json!([["w", "x", 1]])),
        (1, "invoke", json!([["r", "x", null]])),
        (1, "ok", json!([["r", "x", 1]])),
    ];
    finds(RR, "read-committed", "G1a", &h);
    let h = [
        (0, "invoke", json!([["w", "x", 1], ["w", "x", 2]])),
        (1, "invoke", json!([["r", "x", null]])),
        (1, "ok", json!([["r", "x", 1]])),
        (0, "ok", json!([["w", "x", 1], ["w", "x", 2]])),
    ];
    finds(RR, "read-committed", "G1b", &h);
    finds(
        RR,
        "read-uncommitted",
        "garbage-read",
        &ok_txn(0, json!([["r", "x", null]]), json!([["r", "x", 7]])),
    );
    finds(
        RR,
        "serializable",
        "internal",
        &ok_txn(
            0,
            json!([["w", "x", 1], ["r", "x", null]]),
            json!([["w", "x", 1], ["r", "x", 2]]),
        ),
    );
}

#[test]
fn register_cycles() {
    // Read skew: G-single through the initial nil.
    let h = [
        (0, "invoke", json!([["r", "x", null], ["r", "y", null]])),
        (1, "invoke", json!([["w", "x", 1], ["w", "y", 1]])),
        (1, "ok", json!([["w", "x", 1], ["w", "y", 1]])),
        (0, "ok", json!([["r", "x", null], ["r", "y", 1]])),
    ];
    let a = finds(RR, "snapshot-isolation", "G-single", &h);
    assert!(a["message"].as_str().unwrap().contains("the initial state"));
    // Write skew: G2-item, allowed by snapshot isolation.
    let h = [
        (0, "invoke", json!([["r", "x", null], ["w", "y", 1]])),
        (1, "invoke", json!([["r", "y", null], ["w", "x", 1]])),
        (0, "ok", json!([["r", "x", null], ["w", "y", 1]])),
        (1, "ok", json!([["r", "y", null], ["w", "x", 1]])),
    ];
    finds(RR, "serializable", "G2-item", &h);
    for r in run(RR, "snapshot-isolation", &h) {
        assert_eq!(r.valid, Validity::Valid, "{:?}", r.anomalies);
    }
    // Lost update.
    let h = [
        (0, "invoke", json!([["r", "x", null], ["w", "x", 1]])),
        (1, "invoke", json!([["r", "x", null], ["w", "x", 2]])),
        (0, "ok", json!([["r", "x", null], ["w", "x", 1]])),
        (1, "ok", json!([["r", "x", null], ["w", "x", 2]])),
    ];
    finds(RR, "snapshot-isolation", "lost-update", &h);
}

/// Jepsen's own EDN spelling, written by hand.
#[test]
fn jepsen_edn_txn_history() {
    let text = r#"{:type :invoke, :f :txn, :value [[:append :x 1] [:r :y nil]], :process 0, :time 10, :index 0}
{:type :invoke, :f :txn, :value [[:append :y 1] [:r :x nil]], :process 1, :time 20, :index 1}
{:type :ok, :f :txn, :value [[:append :x 1] [:r :y []]], :process 0, :time 30, :index 2}
{:type :ok, :f :txn, :value [[:append :y 1] [:r :x []]], :process 1, :time 40, :index 3}
{:type :invoke, :f :txn, :value [[:r :x nil] [:r :y nil]], :process 0, :time 50, :index 4}
{:type :ok, :f :txn, :value [[:r :x [1]] [:r :y [1]]], :process 0, :time 60, :index 5}
"#;
    let h = read_history("history.edn", text, Format::Auto)
        .unwrap()
        .history;
    let r = check(LA, Models::default(), &h, None).unwrap();
    assert_eq!(r.valid, Validity::Invalid);
    assert!(
        types(&r).contains(&"G2-item".to_string()),
        "{:?}",
        r.anomalies
    );
}

#[test]
fn bad_micro_op_names_its_event() {
    let text = jsonl(&ok_txn(
        0,
        json!([["put", "x", 1]]),
        json!([["put", "x", 1]]),
    ));
    let h = read_history("h", &text, Format::Jsonl).unwrap().history;
    let e = check(LA, Models::default(), &h, None).unwrap_err();
    assert!(e.to_string().contains("append or r"), "{e}");
}

#[test]
fn generated_histories_are_valid() {
    use checkers::txn::gen::{generate, TxnGen};
    for kind in [LA, RR] {
        for seed in 0..5 {
            let cfg = TxnGen {
                kind,
                txns: 2000,
                seed,
                crash_rate: 0.05,
                ..TxnGen::default()
            };
            let events = generate(&cfg);
            let text = checkers::history::jsonl::to_string(&events);
            let h = checkers::history::History::from_events(events).unwrap();
            let r = check(kind, Models::default(), &h, None).unwrap();
            assert_eq!(
                r.valid,
                Validity::Valid,
                "{kind:?} seed {seed}: {:?}",
                r.anomalies
            );
            assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
            let fast = checkers::txn::read::read_jsonl("g", kind, text.as_bytes()).unwrap();
            let r2 = checkers::txn::check_txns(
                kind,
                Models::default(),
                &fast.txns,
                std::time::Instant::now(),
                None,
            );
            assert_eq!(r2.valid, Validity::Valid);
            assert_eq!(r2.ops, r.ops);
            assert_eq!(
                r2.summary.as_ref().unwrap()["edges"],
                r.summary.as_ref().unwrap()["edges"]
            );
        }
    }
}

#[test]
fn streaming_reader_messages_torn_lines_and_nemesis() {
    use checkers::txn::read::read_jsonl;
    let good = jsonl(&ok_txn(
        0,
        json!([["append", "x", 1]]),
        json!([["append", "x", 1]]),
    ));
    // A nemesis event with an arbitrary value, and a torn last line.
    let text = format!(
        "{good}{{\"process\":\"nemesis\",\"type\":\"info\",\"f\":\"start-partition\",\"value\":{{\"n1\":[\"n2\"]}}}}\n{{\"process\":1,\"ty"
    );
    let r = read_jsonl("h.jsonl", LA, text.as_bytes()).unwrap();
    assert_eq!(r.txns.len(), 1);
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    // A bad line in the middle is an error naming its line.
    let bad = format!(
        "{good}{{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"value\":null}}\n{good}"
    );
    let e = read_jsonl("h.jsonl", LA, bad.as_bytes()).err().unwrap();
    assert_eq!(e.line, Some(3));
    assert!(e.message.contains("no operation \"read\""), "{e}");
    let bad = format!("{good}{{\"process\":1,\"type\":\"ok\",\"f\":\"txn\",\"value\":[]}}\n");
    let e = read_jsonl("h.jsonl", LA, bad.as_bytes()).err().unwrap();
    assert_eq!(e.line, Some(3));
    assert!(
        e.message.contains("without an outstanding invocation"),
        "{e}"
    );
    let bad = format!(
        "{good}{{\"process\":1,\"type\":\"invoke\",\"f\":\"txn\",\"value\":[[\"w\",\"x\",1]]}}\n"
    );
    let e = read_jsonl("h.jsonl", LA, bad.as_bytes()).err().unwrap();
    assert!(e.to_string().starts_with("h.jsonl:3: "), "{e}");
    assert!(e.message.contains("append or r"), "{e}");
    assert!(read_jsonl("h.jsonl", LA, "".as_bytes()).is_err());
}

/// Lines of unusual shape (spaces, escapes, floats, big or negative
/// numbers, repeated and unknown keys, string keys) read by the streaming
/// reader as by the ordinary one: same anomalies, same edges.
#[test]
fn streaming_reader_takes_odd_lines_as_the_ordinary_reader() {
    let base = [
        r#"{"process":0,"type":"invoke","f":"txn","value":[["append","x",1],["r","y",null]]}"#,
        r#"{"process":1,"type":"invoke","f":"txn","value":[["append","y",1],["r","x",null]]}"#,
        r#"{"process":0,"type":"ok","f":"txn","value":[["append","x",1],["r","y",[]]]}"#,
        r#"{"process":1,"type":"ok","f":"txn","value":[["append","y",1],["r","x",[]]]}"#,
        r#"{"process":2,"type":"invoke","f":"txn","value":[["r","x",null],["r","y",null]]}"#,
        r#"{"process":2,"type":"ok","f":"txn","value":[["r","x",[1]],["r","y",[1]]]}"#,
    ];
    let edits: [(&str, &str); 9] = [
        (",", " , "),
        ("\"x\"", "\"\\u0078\""),
        ("\"x\",1]", "\"x\",1.0]"),
        ("\"x\",1]", "\"x\",-1]"),
        ("[1]]", "[18446744073709551615]]"),
        ("\"process\"", "\"time\":null,\"index\":5,\"process\""),
        ("\"process\"", "\"e\":{\"a\":[1]},\"t\":true,\"process\""),
        ("\"y\"", "4611686018427387904"),
        ("\"x\"", "\"ключ\""),
    ];
    for (from, to) in edits {
        let text: String = base.iter().map(|l| l.replace(from, to) + "\n").collect();
        let h = read_history("h", &text, Format::Auto).unwrap().history;
        let r = check(LA, Models::default(), &h, None).unwrap();
        let fast = checkers::txn::read::read_jsonl("h", LA, text.as_bytes()).unwrap();
        let r2 = checkers::txn::check_txns(
            LA,
            Models::default(),
            &fast.txns,
            std::time::Instant::now(),
            None,
        );
        let types = |r: &CheckResult| r.summary.as_ref().unwrap()["anomaly_types"].clone();
        assert_eq!(r2.valid, r.valid, "{to}");
        assert_eq!(types(&r2), types(&r), "{to}");
        let edges = |r: &CheckResult| r.summary.as_ref().unwrap()["edges"].clone();
        assert_eq!(edges(&r2), edges(&r), "{to}");
    }
}
