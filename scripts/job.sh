# Shared by the cron wrappers: run one job under `timeout`, its log lines where this machine keeps logs.
#   run_job SECONDS MODULE [ARGS...]
# journald when it runs (lines carry <N> priorities for `systemd-cat --level-prefix`); else
# syslog through `logger`; else (a plain VM or a container) the job writes its own rotated log
# file, teachinglab.log in TEACHINGLAB_LOG_DIR or the ledger's folder, and prints one line only
# when it failed, so cron mails failures and nothing else. The job is told which (--log-to), so
# its alert mails say where to read the log.
# A run killed by `timeout` (exit 124) cannot say so itself: this leaves an err-priority line (in
# file mode, on stderr: cron mails it), and the next run of the job alerts the admin once.

log_target() {
  # The sockets journald and syslog listen on (overridable for the wrapper's own tests).
  local journal_socket="${TEACHINGLAB_JOURNAL_SOCKET:-/run/systemd/journal/stdout}"
  local syslog_socket="${TEACHINGLAB_SYSLOG_SOCKET:-/dev/log}"
  if command -v systemd-cat >/dev/null 2>&1 && [ -S "$journal_socket" ]; then
    echo journald
  elif command -v logger >/dev/null 2>&1 && [ -S "$syslog_socket" ]; then
    echo syslog
  else
    echo file
  fi
}

journal() {
  case "$1" in
    journald) systemd-cat -t dbr_scripts --level-prefix=true ;;
    syslog) sed -u 's/^<[0-7]>//' | logger -t dbr_scripts ;;
    *) sed -u 's/^<[0-7]>//' >&2 ;;
  esac
}

run_job() {
  local seconds="$1" module="$2"
  shift 2
  local python="${TEACHINGLAB_PYTHON:-.venv/bin/python}"
  local target status
  target="$(log_target)"
  if [ "$target" = file ]; then
    timeout "$seconds" "$python" -m "$module" --log-to file "$@"
    status=$?
  else
    timeout "$seconds" "$python" -m "$module" --journald --log-to "$target" "$@" 2>&1 | journal "$target"
    status="${PIPESTATUS[0]}"
  fi
  if [ "$status" -eq 124 ]; then
    echo "<3>${module}: killed by timeout after ${seconds} s; the next run alerts the admin" | journal "$target"
  fi
  return "$status"
}
