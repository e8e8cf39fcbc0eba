//! The nodes file (docs/formats.md): one host per line, `#` comments.
//!
//! A line is `host`, `user@host`, `host:port` or `user@host:port`; the user
//! defaults to root and the port to 22. A trailing comment of one word names
//! the node (`root@10.77.0.11:22  # n1`); otherwise the host is its name.

use std::path::Path;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeAddr {
    /// What messages call the node.
    pub name: String,
    pub user: String,
    pub host: String,
    pub port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct NodesError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// Parses a nodes file's text; `file` is only used in messages.
pub fn parse(file: &str, text: &str) -> Result<Vec<NodeAddr>, NodesError> {
    let mut nodes = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let err = |message: String| NodesError {
            file: file.into(),
            line: n + 1,
            message,
        };
        let (spec, comment) = match raw.split_once('#') {
            Some((s, c)) => (s.trim(), c.trim()),
            None => (raw.trim(), ""),
        };
        if spec.is_empty() {
            continue;
        }
        if spec.split_whitespace().count() > 1 {
            return Err(err(format!("one host per line, got {spec:?}")));
        }
        let (user, rest) = match spec.split_once('@') {
            Some((u, r)) if !u.is_empty() => (u.to_string(), r),
            Some(_) => return Err(err(format!("empty user in {spec:?}"))),
            None => ("root".to_string(), spec),
        };
        if rest.starts_with('[') || rest.matches(':').count() > 1 {
            return Err(err(format!(
                "IPv6 addresses are not supported yet: {spec:?}"
            )));
        }
        let (host, port) = match rest.split_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .ok()
                    .filter(|&p| p > 0)
                    .ok_or_else(|| err(format!("bad port {p:?} in {spec:?}")))?,
            ),
            None => (rest, 22),
        };
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        {
            return Err(err(format!("bad host {host:?}")));
        }
        let name = match comment.split_whitespace().collect::<Vec<_>>()[..] {
            [one] => one.to_string(),
            _ => host.to_string(),
        };
        if nodes.iter().any(|m: &NodeAddr| m.name == name) {
            return Err(err(format!("node {name} is listed twice")));
        }
        nodes.push(NodeAddr {
            name,
            user,
            host: host.to_string(),
            port,
        });
    }
    if nodes.is_empty() {
        return Err(NodesError {
            file: file.into(),
            line: 0,
            message: "no hosts listed".into(),
        });
    }
    Ok(nodes)
}

/// Reads and parses a nodes file.
pub fn read(path: &Path) -> Result<Vec<NodeAddr>, NodesError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| NodesError {
        file: file.clone(),
        line: 0,
        message: format!("cannot read: {e}"),
    })?;
    parse(&file, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, user: &str, host: &str, port: u16) -> NodeAddr {
        NodeAddr {
            name: name.into(),
            user: user.into(),
            host: host.into(),
            port,
        }
    }

    #[test]
    fn forms() {
        let text = "# the cluster\nn1\n10.0.0.2\nadmin@n3:2222\nroot@10.77.0.11:22  # n4\n\n";
        assert_eq!(
            parse("f", text).unwrap(),
            vec![
                node("n1", "root", "n1", 22),
                node("10.0.0.2", "root", "10.0.0.2", 22),
                node("n3", "admin", "n3", 2222),
                node("n4", "root", "10.77.0.11", 22),
            ]
        );
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line, needle) in [
            ("n1\nn2:99999\n", 2, "bad port"),
            ("n1 n2\n", 1, "one host per line"),
            ("@n1\n", 1, "empty user"),
            ("n1\nn1\n", 2, "twice"),
            ("fe80::1\n", 1, "IPv6"),
            ("n$1\n", 1, "bad host"),
            ("# nothing\n", 0, "no hosts"),
        ] {
            let e = parse("nodes", text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}");
            assert!(e.message.contains(needle), "{text:?}: {e}");
        }
    }
}
