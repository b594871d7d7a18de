#!/usr/bin/env bash
# Build shipdeck in release mode and install it with its themes, shell completions and man
# page. Default prefix: ~/.local (binary in ~/.local/bin). Usage: ./install.sh [--prefix DIR]
set -euo pipefail

prefix="${HOME}/.local"
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
    --prefix=*) prefix="${1#--prefix=}"; shift ;;
    -h|--help) sed -n '2,3p' "$0" | sed 's/^# //'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done

if ! command -v cargo >/dev/null 2>&1; then
  echo "install.sh: cargo not found. Install Rust (https://rustup.rs) and run ./install.sh again." >&2
  exit 1
fi
if ! command -v git >/dev/null 2>&1; then
  echo "install.sh: warning: git not found; shipdeck uses the system git for repositories and the sandbox." >&2
fi

here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
echo "install.sh: building shipdeck (release); a cold build takes several minutes"
cargo build --release --locked

bin_dir="$prefix/bin"
share_dir="$prefix/share/shipdeck"
mkdir -p "$bin_dir" "$share_dir/themes" \
  "$prefix/share/bash-completion/completions" \
  "$prefix/share/zsh/site-functions" \
  "$prefix/share/fish/vendor_completions.d" \
  "$prefix/share/man/man1"
install -m 0755 target/release/shipdeck "$bin_dir/shipdeck"
install -m 0644 themes/*.toml "$share_dir/themes/"
"$bin_dir/shipdeck" completions bash > "$prefix/share/bash-completion/completions/shipdeck"
"$bin_dir/shipdeck" completions zsh > "$prefix/share/zsh/site-functions/_shipdeck"
"$bin_dir/shipdeck" completions fish > "$prefix/share/fish/vendor_completions.d/shipdeck.fish"
"$bin_dir/shipdeck" man > "$prefix/share/man/man1/shipdeck.1"

echo "install.sh: installed $bin_dir/shipdeck (themes in $share_dir/themes)"
case ":$PATH:" in
  *":$bin_dir:"*) ;;
  *) echo "install.sh: note: $bin_dir is not on PATH; add it, e.g. export PATH=\"$bin_dir:\$PATH\"" ;;
esac
