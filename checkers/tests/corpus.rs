//! Every history of the Porcupine corpus gets its known verdict.

use checkers::history::{read_history, Format};
use checkers::linear::{check, Options};
use checkers::model::ModelKind;
use checkers::Validity;
use std::path::Path;

#[test]
fn every_corpus_history_gets_its_verdict() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/porcupine");
    let table = std::fs::read_to_string(dir.join("VERDICTS.tsv")).unwrap();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (file, model, want) = (cols[0], cols[1], cols[2] == "true");
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        if text.is_empty() {
            // Porcupine calls its empty log valid; nothing read is nothing tested.
            let e = read_history(file, &text, Format::Auto).unwrap_err();
            assert!(e.message.contains("empty"), "{e}");
            checked += 1;
            continue;
        }
        let parsed = read_history(file, &text, Format::Auto).unwrap();
        let kind = ModelKind::parse(model).unwrap();
        let r = check(
            kind,
            &serde_json::Value::Null,
            &parsed.history,
            &Options::default(),
        )
        .unwrap();
        let want = if want {
            Validity::Valid
        } else {
            Validity::Invalid
        };
        if r.valid != want {
            wrong.push(format!("{file}: got {:?}, want {want:?}", r.valid));
        }
        if r.valid == Validity::Invalid {
            // Every violation comes with a witness that names an operation.
            let cx = r.counterexample.as_ref().expect("counterexample");
            assert!(cx["op"]["process"].is_number(), "{file}: {cx}");
            assert!(!cx["message"].as_str().unwrap().is_empty());
        }
        checked += 1;
    }
    assert_eq!(checked, 109);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

// Regression: an empty log (the cluster never started) was "valid"; nothing
// read is an input error, under every format.
#[test]
fn empty_log_is_an_input_error() {
    for f in [Format::Auto, Format::JepsenLog, Format::Edn, Format::Jsonl] {
        let e = read_history("etcd_095.log", "", f).unwrap_err();
        assert!(e.to_string().starts_with("etcd_095.log: "), "{e}");
    }
}
