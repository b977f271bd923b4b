#!/bin/sh
# Juju's hook tools, faked (tests/juju/README.md). Only shell builtins: a call is one `sh`.
m="$FAKE_JUJU"
tool=${0##*/}
{ printf '%s' "$tool"; for a in "$@"; do printf '\t%s' "$a"; done; printf '\n'; } >> "$m/calls"
# Prints a file of the model (as `cat`, without starting it).
show() { while IFS= read -r l || [ -n "$l" ]; do printf '%s\n' "$l"; done < "$1"; }
case "$tool" in
config-get) show "$m/config.json" ;;
is-leader) if [ -f "$m/leader" ]; then show "$m/leader"; else echo true; fi ;;
action-get) if [ -f "$m/action-params.json" ]; then show "$m/action-params.json"; else echo '{}'; fi ;;
status-get)
  case "$3" in
  --application=true) printf '{"application-status":{"status":"unknown","message":""},"units":{}}\n' ;;
  *) if [ -f "$m/status" ]; then
       { read -r s; read -r msg; } < "$m/status"
       printf '{"status":"%s","message":"%s","status-data":{}}\n' "$s" "$msg"
     else printf '{"status":"unknown","message":"","status-data":{}}\n'; fi ;;
  esac ;;
status-set)
  case "$1" in --application=true) f=app-status ;; *) f=status ;; esac
  printf '%s\n%s\n' "$2" "$4" > "$m/$f" ;;
action-set) for a in "$@"; do printf '%s\n' "$a" >> "$m/action-results"; done ;;
relation-ids) cat "$m/relation-ids-$2.json" 2>/dev/null || echo '[]' ;;
relation-list)
  case "$4" in
  --app) cat "$m/relation-$3-app.json" ;;
  *) cat "$m/relation-$3-units.json" 2>/dev/null || echo '[]' ;;
  esac ;;
relation-get) cat "$m/bag-$3-$(printf '%s' "$5" | tr / _).json" 2>/dev/null || echo '{}' ;;
esac
exit 0
