//! The commands a fake node finds first on PATH: iptables kept in a file,
//! `id -u` as root, and refusals of what would touch this machine.

use std::path::Path;

pub(super) fn write_shims(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let date = which("date");
    let id = which("id");
    let shims = [
        ("iptables", IPTABLES.to_string()),
        ("iptables-restore", RESTORE.to_string()),
        ("iptables-save", SAVE.to_string()),
        (
            "id",
            format!("#!/bin/sh\n[ \"$1\" = -u ] && {{ echo 0; exit 0; }}\nexec {id} \"$@\"\n"),
        ),
        (
            "date",
            format!(
                "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in -s|--set*) echo 'fake node: date -s refused' >&2; exit 1;; esac; done\nexec {date} \"$@\"\n"
            ),
        ),
    ];
    for (name, text) in shims {
        let p = dir.join(name);
        std::fs::write(&p, text)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
    }
    for name in ["mount", "umount", "ip", "fusermount3", "tc", "sysctl"] {
        let p = dir.join(name);
        std::fs::write(
            &p,
            format!("#!/bin/sh\necho 'fake node: {name} refused' >&2\nexit 1\n"),
        )?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

fn which(cmd: &str) -> String {
    ["/usr/bin", "/bin"]
        .iter()
        .map(|d| format!("{d}/{cmd}"))
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| cmd.into())
}

/// The filter table in `$FAKE_ROOT/iptables/rules`: `-N CHAIN` and
/// `-A CHAIN rule` lines, in order. Drop rules for a source count the
/// probe bytes that source wrote to this node since the rule was made.
const IPTABLES: &str = r#"#!/bin/sh
# shakedown's fake iptables: the filter table of a fake node, in a file.
R="$FAKE_ROOT/iptables"; F="$R/rules"; touch "$F"
builtin() { case "$1" in INPUT|OUTPUT|FORWARD) return 0;; esac; return 1; }
exists() { builtin "$1" || grep -qxF -- "-N $1" "$F"; }
nochain() { echo "iptables: No chain/target/match by that name." >&2; exit 1; }
norm() {
  out=; prev=
  for w in "$@"; do
    case "$prev" in -s|-d) case "$w" in */*) ;; *) w="$w/32";; esac;; esac
    out="$out${out:+ }$w"; prev="$w"
  done
  echo "$out"
}
while :; do
  case "$1" in
    -w) shift;;
    -t) [ "$2" = filter ] || { echo "fake iptables: only the filter table" >&2; exit 2; }; shift 2;;
    *) break;;
  esac
done
op="$1"; shift
case "$op" in
  --version) echo "iptables v1.8.9 (fake)";;
  -N) exists "$1" && { echo "iptables: Chain already exists." >&2; exit 1; }; echo "-N $1" >> "$F";;
  -C) exists "$1" || nochain; c="$1"; shift; grep -qxF -- "-A $c $(norm "$@")" "$F" || { echo "iptables: Bad rule (does a matching rule exist in that chain?)." >&2; exit 1; };;
  -A|-I)
    c="$1"; shift; exists "$c" || nochain
    if [ "$op" = -I ]; then case "$1" in [0-9]*) shift;; esac; fi
    rule="-A $c $(norm "$@")"
    case " $rule " in *" ! -s "*) ;; *" -s "*" -j DROP "*)
      src=$(echo "$rule" | sed 's/.* -s \([^ /]*\).*/\1/')
      f="$FAKE_UDP/$src/$FAKE_IP/9"; [ -f "$f" ] && wc -c < "$f" > "$R/base/$src" || echo 0 > "$R/base/$src";;
    esac
    if [ "$op" = -A ]; then echo "$rule" >> "$F"
    else
      put=; : > "$F.new"
      while IFS= read -r l; do
        case "$l" in "-A $c "*) [ -z "$put" ] && { echo "$rule" >> "$F.new"; put=1; };; esac
        echo "$l" >> "$F.new"
      done < "$F"
      [ -n "$put" ] || echo "$rule" >> "$F.new"
      mv "$F.new" "$F"
    fi;;
  -F) exists "$1" || nochain; grep -v -- "^-A $1 " "$F" > "$F.new"; mv "$F.new" "$F";;
  -S)
    if [ -n "$1" ]; then
      exists "$1" || nochain
      if builtin "$1"; then echo "-P $1 ACCEPT"; else echo "-N $1"; fi
      grep -- "^-A $1 " "$F" || true
    else
      for c in INPUT FORWARD OUTPUT; do echo "-P $c ACCEPT"; done
      cat "$F"
    fi;;
  *) echo "fake iptables: not simulated: $op $*" >&2; exit 2;;
esac
"#;

/// `iptables-restore --noflush`: a chain declared is made and flushed.
const RESTORE: &str = r#"#!/bin/sh
# shakedown's fake iptables-restore (--noflush): declared chains flushed.
[ "$1" = --version ] && { echo "iptables-restore v1.8.9 (fake)"; exit 0; }
I="$(dirname "$0")/iptables"
while IFS= read -r line; do
  case "$line" in
    '*filter'|COMMIT|'') ;;
    :*) c=$(echo "${line#:}" | cut -d' ' -f1)
        "$I" -S "$c" >/dev/null 2>&1 || "$I" -N "$c" || exit 1
        "$I" -F "$c" || exit 1;;
    -A\ *) eval "set -- $line"; "$I" "$@" || exit 1;;
    *) echo "fake iptables-restore: not simulated: $line" >&2; exit 2;;
  esac
done
"#;

/// `iptables-save -t filter -c`: the table with packet counters.
const SAVE: &str = r#"#!/bin/sh
# shakedown's fake iptables-save: probes written while a drop rule held.
R="$FAKE_ROOT/iptables"; F="$R/rules"; touch "$F"
echo "*filter"
for c in INPUT FORWARD OUTPUT; do echo ":$c ACCEPT [0:0]"; done
sed -n 's/^-N \(.*\)/:\1 - [0:0]/p' "$F"
grep '^-A ' "$F" | while IFS= read -r rule; do
  n=0
  case " $rule " in *" ! -s "*) ;; *" -s "*" -j DROP "*)
    src=$(echo "$rule" | sed 's/.* -s \([^ /]*\).*/\1/')
    f="$FAKE_UDP/$src/$FAKE_IP/9"
    if [ -f "$f" ] && [ ! -e "$R/leak" ]; then n=$(( $(wc -c < "$f") - $(cat "$R/base/$src" 2>/dev/null || echo 0) )); fi;;
  esac
  echo "[$n:$(( n * 28 ))] $rule"
done
echo "COMMIT"
"#;
