//! A cycle of transactions as hand-written SVG: the transactions on a
//! circle, each a link to its row in the timeline, and the edges between
//! them as arrows coloured and labelled by type (ww, wr, rw, process,
//! realtime). Every string from the history is escaped here.

use serde::Serialize;
use std::fmt::Write;

/// A cycle of transactions, as data; [`Cycle::render`] draws it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cycle {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

impl Cycle {
    /// The cycle as SVG (`None` when there is nothing to draw).
    pub fn render(&self) -> Option<String> {
        svg(&self.nodes, &self.edges)
    }
}

/// One transaction of the cycle.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Node {
    /// T1, T2, ...
    pub name: String,
    /// The transaction as written, e.g. `[[append x 1] [r y [1 2]]]`.
    pub label: String,
    /// Its row in the timeline, for the link.
    pub op: Option<usize>,
}

/// An edge between nodes, by position.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    pub kind: String,
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn colour(kind: &str) -> &'static str {
    match kind {
        "ww" => "#1565c0",
        "wr" => "#2e7d32",
        "rw" => "#c62828",
        "process" => "#6a1b9a",
        _ => "#ef6c00",
    }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// The drawing; `None` for fewer than two nodes.
pub fn svg(nodes: &[Node], edges: &[Edge]) -> Option<String> {
    let n = nodes.len();
    if n < 2 {
        return None;
    }
    let r = 70.0 + 22.0 * n as f64;
    let (w, h) = (2.0 * r + 360.0, 2.0 * r + 80.0);
    let (cx, cy) = (w / 2.0, h / 2.0);
    let pos = |i: usize| {
        let a = -std::f64::consts::FRAC_PI_2 + 2.0 * std::f64::consts::PI * i as f64 / n as f64;
        (cx + r * a.cos(), cy + r * a.sin())
    };
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="sans-serif" font-size="12" role="img"><title>A cycle of {n} transactions</title><defs>"#
    );
    for k in ["ww", "wr", "rw", "process", "realtime"] {
        let _ = write!(
            s,
            r##"<marker id="arrow-{k}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{}"/></marker>"##,
            colour(k)
        );
    }
    s.push_str("</defs>");
    for e in edges {
        let (Some(_), Some(_)) = (nodes.get(e.from), nodes.get(e.to)) else {
            continue;
        };
        let ((x1, y1), (x2, y2)) = (pos(e.from), pos(e.to));
        let (dx, dy) = (x2 - x1, y2 - y1);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let (ux, uy) = (dx / len, dy / len);
        // Start and end outside the node circles; bend to the left so that
        // opposite edges between the same pair stay apart.
        let (sx, sy) = (x1 + ux * 20.0, y1 + uy * 20.0);
        let (ex, ey) = (x2 - ux * 22.0, y2 - uy * 22.0);
        let bend = 0.18 * len;
        let (mx, my) = ((sx + ex) / 2.0 + uy * bend, (sy + ey) / 2.0 - ux * bend);
        let kind = match e.kind.as_str() {
            k @ ("ww" | "wr" | "rw" | "process") => k,
            _ => "realtime",
        };
        let c = colour(kind);
        let _ = write!(
            s,
            r##"<path d="M{sx:.1},{sy:.1} Q{mx:.1},{my:.1} {ex:.1},{ey:.1}" fill="none" stroke="{c}" stroke-width="2" marker-end="url(#arrow-{kind})"/><text x="{:.1}" y="{:.1}" fill="{c}" text-anchor="middle" font-weight="bold">{kind}</text>"##,
            (sx + ex) / 4.0 + mx / 2.0,
            (sy + ey) / 4.0 + my / 2.0 - 4.0
        );
    }
    for (i, node) in nodes.iter().enumerate() {
        let (x, y) = pos(i);
        let anchor = if x < cx - 1.0 {
            "end"
        } else if x > cx + 1.0 {
            "start"
        } else {
            "middle"
        };
        let lx = match anchor {
            "end" => x - 24.0,
            "start" => x + 24.0,
            _ => x,
        };
        let ly = if anchor == "middle" {
            if y < cy {
                y - 24.0
            } else {
                y + 34.0
            }
        } else {
            y + 4.0
        };
        let body = format!(
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="18" fill="#fff" stroke="#333" stroke-width="1.5"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" font-weight="bold">{}</text><text x="{lx:.1}" y="{ly:.1}" text-anchor="{anchor}">{}</text>"##,
            y + 4.0,
            esc(&node.name),
            esc(&clip(&node.label, 48))
        );
        match node.op {
            Some(op) => {
                let _ = write!(
                    s,
                    r##"<a href="#op={op}"><title>{} in the timeline</title>{body}</a>"##,
                    esc(&node.name)
                );
            }
            None => s.push_str(&body),
        }
    }
    s.push_str("</svg>");
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_links_and_escapes() {
        let nodes = vec![
            Node {
                name: "T1".into(),
                label: "[[r x <script>]]".into(),
                op: Some(3),
            },
            Node {
                name: "T2".into(),
                label: "[[append x 1]]".into(),
                op: None,
            },
        ];
        let edges = vec![
            Edge {
                from: 0,
                to: 1,
                kind: "rw".into(),
            },
            Edge {
                from: 1,
                to: 0,
                kind: "realtime".into(),
            },
        ];
        let s = svg(&nodes, &edges).unwrap();
        assert!(s.starts_with("<svg"));
        assert!(s.contains(r##"href="#op=3""##));
        assert!(!s.contains("<script"));
        assert!(s.contains("&lt;script&gt;"));
        assert_eq!(s.matches("marker-end=").count(), 2);
        assert!(svg(&nodes[..1], &[]).is_none());
    }
}
