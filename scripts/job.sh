# Shared by the cron wrappers: run one job under `timeout`, its log lines to journald.
#   run_job SECONDS MODULE [ARGS...]
# Lines carry <N> priorities (--journald) for `systemd-cat --level-prefix`. Where journald is not
# running (no systemd-cat), lines go to syslog through `logger`, or else to stderr, which cron
# mails to the crontab's owner: never nowhere.
# A run killed by `timeout` (exit 124) cannot say so itself: this leaves an err-priority line, and
# the next run of the job (which finds the run unfinished in the ledger) alerts the admin once.

journal() {
  # The sockets journald and syslog listen on (overridable for the wrapper's own tests).
  local journal_socket="${TEACHINGLAB_JOURNAL_SOCKET:-/run/systemd/journal/stdout}"
  local syslog_socket="${TEACHINGLAB_SYSLOG_SOCKET:-/dev/log}"
  if command -v systemd-cat >/dev/null 2>&1 && [ -S "$journal_socket" ]; then
    systemd-cat -t dbr_scripts --level-prefix=true
  elif command -v logger >/dev/null 2>&1 && [ -S "$syslog_socket" ]; then
    sed -u 's/^<[0-7]>//' | logger -t dbr_scripts
  else
    cat >&2
  fi
}

run_job() {
  local seconds="$1" module="$2"
  shift 2
  local python="${TEACHINGLAB_PYTHON:-.venv/bin/python}"
  timeout "$seconds" "$python" -m "$module" --journald "$@" 2>&1 | journal
  local status="${PIPESTATUS[0]}"
  if [ "$status" -eq 124 ]; then
    echo "<3>${module}: killed by timeout after ${seconds} s; the next run alerts the admin" | journal
  fi
  return "$status"
}
