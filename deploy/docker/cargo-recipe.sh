#!/usr/bin/env bash
# Writes the "recipe" of a Cargo workspace: its manifests and lock file, and an empty stub for
# every Rust target root (lib.rs, main.rs, src/bin/*.rs, build.rs, explicit `path = "….rs"`).
# The Dockerfile builds the dependencies against this recipe in a layer of its own, so that
# a change to the real sources reuses that layer; the recipe only changes when a manifest does.
# (The same idea as cargo-chef, without another tool to install.)
#
# usage: cargo-recipe.sh SOURCE_DIR RECIPE_DIR
set -euo pipefail

src=$(cd "$1" && pwd)
dst=$2
mkdir -p "$dst"
cd "$src"

cp Cargo.toml Cargo.lock "$dst/"
if [[ -d .cargo ]]; then
    cp -R .cargo "$dst/"
fi

stub() { # stub FILE: an empty library, or a binary that does nothing
    local file=$1
    mkdir -p "$dst/$(dirname "$file")"
    case $file in
    */lib.rs) : >"$dst/$file" ;;
    *) echo 'fn main() {}' >"$dst/$file" ;;
    esac
}

while IFS= read -r manifest; do
    dir=$(dirname "$manifest")
    dir=${dir#./}
    [[ $dir == . ]] && continue
    mkdir -p "$dst/$dir"
    cp "$manifest" "$dst/$dir/Cargo.toml"
    for root in src/lib.rs src/main.rs build.rs; do
        if [[ -f $dir/$root ]]; then
            stub "$dir/$root"
        fi
    done
    if [[ -d $dir/src/bin ]]; then
        while IFS= read -r bin; do
            stub "$bin"
        done < <(find "$dir/src/bin" -name '*.rs' -type f)
    fi
    # Targets declared with an explicit path ([[bin]], [[test]], [[bench]], [[example]]).
    while IFS= read -r path; do
        if [[ -f $dir/$path ]]; then
            stub "$dir/$path"
        fi
    done < <(sed -nE 's/^[[:space:]]*path[[:space:]]*=[[:space:]]*"([^"]+\.rs)".*/\1/p' "$manifest")
done < <(find . -name Cargo.toml -not -path './target/*' -not -path './.git/*' | sort)
