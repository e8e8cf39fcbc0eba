//! Register values: cheap to clone, hash and compare.

use serde_json::Value;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// A JSON value in a form the search can hash quickly. Integers and strings
/// are the common case; anything else is kept as canonical JSON text.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Val {
    Null,
    Int(i64),
    Str(Text),
    /// Any other JSON value, as its serialised text.
    Other(Arc<str>),
}

/// Multiplier of the polynomial string hash (odd, so powers never vanish mod 2^64).
const P: u64 = 0x100_0000_01B3;

/// An immutable string with its polynomial hash, so that hashing a state is
/// O(1) and appending updates the hash without reading the old text:
/// `h(a ++ b) = h(a) * P^len(b) + h(b)` (wrapping).
///
/// Appending is O(1) too: the result is a link (prefix, chunk) sharing the
/// prefix, flattened every [`MAX_LINKS`] links so that walks stay short.
#[derive(Clone)]
pub struct Text {
    hash: u64,
    len: usize,
    links: u32,
    node: Arc<Node>,
}

enum Node {
    Leaf(Box<str>),
    Link(Text, Text),
}

/// Links after which an appended text is flattened into one string.
const MAX_LINKS: u32 = 32;

/// A string to append, with what appending it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub text: Text,
    /// P^len, to shift the old hash.
    pow: u64,
}

fn poly(s: &str) -> u64 {
    s.bytes()
        .fold(0u64, |h, b| h.wrapping_mul(P).wrapping_add(b as u64 + 1))
}

impl Text {
    pub fn new(s: &str) -> Text {
        Text {
            hash: poly(s),
            len: s.len(),
            links: 0,
            node: Arc::new(Node::Leaf(s.into())),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn write_to(&self, out: &mut String) {
        match &*self.node {
            Node::Leaf(s) => out.push_str(s),
            Node::Link(a, b) => {
                a.write_to(out);
                b.write_to(out);
            }
        }
    }

    /// The string, if it is stored in one piece.
    pub fn leaf(&self) -> Option<&str> {
        match &*self.node {
            Node::Leaf(s) => Some(s),
            Node::Link(..) => None,
        }
    }

    /// Whether `s` starts with this text (compared piece by piece, no copying).
    pub fn is_prefix_of(&self, s: &str) -> bool {
        self.len <= s.len() && self.matches_at(s.as_bytes(), 0)
    }

    fn matches_at(&self, s: &[u8], at: usize) -> bool {
        match &*self.node {
            Node::Leaf(x) => s.get(at..at + x.len()) == Some(x.as_bytes()),
            Node::Link(a, b) => a.matches_at(s, at) && b.matches_at(s, at + a.len),
        }
    }

    /// The whole string.
    pub fn to_string_lossless(&self) -> String {
        let mut s = String::with_capacity(self.len);
        self.write_to(&mut s);
        s
    }

    pub fn poly_hash(&self) -> u64 {
        self.hash
    }

    /// This text followed by `c`.
    pub fn append(&self, c: &Chunk) -> Text {
        if self.len == 0 {
            return c.text.clone();
        }
        let mut t = Text {
            hash: self.hash.wrapping_mul(c.pow).wrapping_add(c.text.hash),
            len: self.len + c.text.len,
            links: self.links + 1,
            node: Arc::new(Node::Link(self.clone(), c.text.clone())),
        };
        if t.links >= MAX_LINKS {
            t.node = Arc::new(Node::Leaf(t.to_string_lossless().into_boxed_str()));
            t.links = 0;
        }
        t
    }
}

impl Chunk {
    pub fn new(s: &str) -> Chunk {
        let pow = (0..s.len()).fold(1u64, |p, _| p.wrapping_mul(P));
        Chunk {
            text: Text::new(s),
            pow,
        }
    }
}

impl PartialEq for Text {
    fn eq(&self, o: &Self) -> bool {
        if self.hash != o.hash || self.len != o.len {
            return false;
        }
        if Arc::ptr_eq(&self.node, &o.node) {
            return true;
        }
        match (&*self.node, &*o.node) {
            (Node::Leaf(a), Node::Leaf(b)) => a == b,
            // The common case in a search: the same interned prefix and the same chunk.
            (Node::Link(a1, b1), Node::Link(a2, b2))
                if Arc::ptr_eq(&a1.node, &a2.node) && Arc::ptr_eq(&b1.node, &b2.node) =>
            {
                true
            }
            _ => self.to_string_lossless() == o.to_string_lossless(),
        }
    }
}

impl Eq for Text {}

impl Hash for Text {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64(self.hash)
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_string_lossless(), f)
    }
}

impl Val {
    pub fn from_json(v: &Value) -> Val {
        match v {
            Value::Null => Val::Null,
            Value::Number(n) => match n.as_i64() {
                Some(i) => Val::Int(i),
                None => Val::Other(n.to_string().into()),
            },
            Value::String(s) => Val::Str(Text::new(s)),
            other => Val::Other(other.to_string().into()),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Int(i) => Value::from(*i),
            Val::Str(s) => Value::String(s.to_string_lossless()),
            Val::Other(t) => serde_json::from_str(t).unwrap_or(Value::Null),
        }
    }
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Null => f.write_str("null"),
            Val::Int(i) => write!(f, "{i}"),
            Val::Str(s) => write!(f, "{:?}", s.to_string_lossless()),
            Val::Other(t) => f.write_str(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appending_keeps_the_hash_of_the_whole() {
        let a = Text::new("x 1 0 y");
        let ab = a.append(&Chunk::new("x 2 0 y"));
        assert_eq!(ab.to_string_lossless(), "x 1 0 yx 2 0 y");
        assert_eq!(ab, Text::new("x 1 0 yx 2 0 y"));
        assert_eq!(ab.poly_hash(), Text::new("x 1 0 yx 2 0 y").poly_hash());
        assert_ne!(ab, Text::new("x 2 0 yx 1 0 y"));
        assert_eq!(Text::new("").append(&Chunk::new("z")), Text::new("z"));
        // Long chains flatten and still compare by content.
        let mut t = Text::new("");
        let mut want = String::new();
        for i in 0..100 {
            let c = format!("<{i}>");
            t = t.append(&Chunk::new(&c));
            want.push_str(&c);
        }
        assert_eq!(t, Text::new(&want));
        assert_eq!(t.to_string_lossless(), want);
        assert!(t.is_prefix_of(&format!("{want}more")));
        assert!(!t.is_prefix_of(&want[1..]));
        assert!(Text::new("").is_prefix_of(""));
    }
}
