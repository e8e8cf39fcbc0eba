//! Shell quoting for the "reproduce" command lines of reports.

/// `s` as one shell word: unchanged when it holds only characters no shell
/// treats specially, else in single quotes (a quote inside as `'\''`).
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%^".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Regression: the reproduce line was not shell-quoted.
    #[test]
    fn words_survive_the_shell() {
        assert_eq!(shell_quote("store/h-1.jsonl"), "store/h-1.jsonl");
        assert_eq!(shell_quote("my history.edn"), "'my history.edn'");
        assert_eq!(shell_quote("a'b;rm -rf x"), r"'a'\''b;rm -rf x'");
        assert_eq!(shell_quote("$(id)"), "'$(id)'");
        assert_eq!(shell_quote(""), "''");
    }
}
