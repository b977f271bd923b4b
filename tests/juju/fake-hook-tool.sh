#!/bin/sh
m="$FAKE_JUJU"
tool=${0##*/}
{ printf '%s' "$tool"; for a in "$@"; do printf '\t%s' "$a"; done; printf '\n'; } >> "$m/calls"
case "$tool" in
config-get) cat "$m/config.json" ;;
is-leader) cat "$m/leader" 2>/dev/null || echo true ;;
action-get) cat "$m/action-params.json" 2>/dev/null || echo '{}' ;;
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
