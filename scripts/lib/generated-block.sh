# shellcheck shell=bash
# replace_block FILE NAME CONTENT_FILE: puts CONTENT_FILE between the lines
# `<!-- generated:NAME begin ... -->` and `<!-- generated:NAME end -->` of FILE (appended at the
# end when FILE has no such block). Everything outside the block is left as it is.
replace_block() {
  local file="$1" name="$2" content="$3" tmp
  tmp="$(mktemp)"
  if grep -q "^<!-- generated:$name begin" "$file"; then
    awk -v name="$name" -v content="$content" '
      $0 ~ "^<!-- generated:" name " begin" { print; while ((getline line < content) > 0) print line; skip = 1; next }
      $0 ~ "^<!-- generated:" name " end" { skip = 0 }
      !skip { print }
    ' "$file" > "$tmp"
  else
    { cat "$file"; echo; echo "<!-- generated:$name begin (do not edit by hand) -->"; cat "$content"; echo "<!-- generated:$name end -->"; } > "$tmp"
  fi
  cat "$tmp" > "$file"
  rm -f "$tmp"
}
