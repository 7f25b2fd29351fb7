"""The semester commands: --simulate a policy over the recorded sessions, serve --status_page,
--rotate_status_secret. Each declares itself to the registry (cli/registry.py)."""
from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

from databricks.teachinglab.adapters.policy_file import PolicyFileError, load_policy
from databricks.teachinglab.adapters.web.pages import render_page
from databricks.teachinglab.cli.clock import utcnow
from databricks.teachinglab.adapters.files import write_private
from databricks.teachinglab.cli.registry import Invocation, command
from databricks.teachinglab.core.cells import safe_row
from databricks.teachinglab.cli.status_page import serve
from databricks.teachinglab.core.accounting import local_day
from databricks.teachinglab.services.simulate import CAVEAT, Simulation, simulate as run_simulation
from databricks.teachinglab.services.status import known_groups, link_secret, rotate_secret, status_link


@command("simulate", "replay the recorded sessions under POLICY_FILE (--from/--to, --json, --out DIR for "
         "HTML, CSV and a PNG chart) against the policy in force; reads the ledger only",
         flag={"metavar": "POLICY_FILE"}, ledger=True, changes=True)  # --out writes files; never the ledger
def simulate(inv: Invocation) -> int:
    settings, args = inv.settings, inv.args
    quota = settings.quota
    try:
        candidate = load_policy(Path(args.simulate), quota.unit, defaults=(quota.warn_limit, quota.max_limit))
    except PolicyFileError as err:
        for line in err.messages:
            print(line, file=sys.stderr)
        return 2
    inv.context()
    result = run_simulation(settings, candidate, today=local_day(inv.now, quota.timezone),
                            date_from=args.date_from, date_to=args.date_to)
    rows = result.as_json()
    if args.json:
        json.dump(rows, sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        print(summary(result, rows))
    if args.out and args.dry_run:
        print(f"would write simulation.html, simulation.csv and simulation.png into {args.out}; nothing written "
              "(--dry-run)", file=sys.stderr if args.json else sys.stdout)
    elif args.out:
        for path in write_simulation(result, rows, Path(args.out)):
            print(path, file=sys.stderr if args.json else sys.stdout)
    return 0


def summary(result: Simulation, rows: list[dict]) -> str:
    out = io.StringIO()
    print(f"{result.candidate.source} against {result.current.source}, {result.report_from} to "
          f"{result.report_to} ({result.sessions} sessions replayed)", file=out)
    width = max([len(r["group"]) for r in rows] + [5])
    print(f"{'group'.ljust(width)}  stops (now)  denied min (now)  saved USD (now)", file=out)
    for r in rows:
        c = r["current"]
        print(f"{r['group'].ljust(width)}  {r['stops']:>5} {'(' + str(c['stops']) + ')':<5}  {r['denied_minutes']:>10} "
              f"{'(' + str(c['denied_minutes']) + ')':<6}  {r['cost_saved_usd']:>9.2f} ({c['cost_saved_usd']:.2f})",
              file=out)
        for m in r["nearest_stops"]:
            print(f"{'':{width}}    {m['what']} {m['window']}: nearest stop "
                  f"{m['nearest_stop'] or 'none'}" + (f", {m['days_away']} day(s) away" if m["days_away"] else ""),
                  file=out)
    totals = [sum(r[k] for r in rows) for k in ("stops", "denied_minutes")]
    now = [sum(r["current"][k] for r in rows) for k in ("stops", "denied_minutes")]
    print(f"{'total'.ljust(width)}  {totals[0]:>5} {'(' + str(now[0]) + ')':<5}  {totals[1]:>10} ({now[1]})", file=out)
    served = [r for r in rows if "serverless" in r]
    if served:
        print(f"serverless ({result.candidate.source}'s [serverless] caps; now in brackets):", file=out)
        for r in served:
            s, c = r["serverless"], r["serverless"]["current"]
            print(f"{r['group'].ljust(width)}  used {s['used_dbu']:.2f} DBU, beyond the caps {s['denied_dbu']:.2f} "
                  f"({c['denied_dbu']:.2f}), days switched off {len(s['off_days'])} ({len(c['off_days'])})", file=out)
    print(CAVEAT, file=out)
    return out.getvalue().rstrip()


def write_simulation(result: Simulation, rows: list[dict], out: Path) -> list[Path]:
    """simulation.html, .csv and .png: private files, cells that cannot run as formulas."""
    html = render_page("simulation", rows=rows, candidate=result.candidate.source, current=result.current.source,
                       report_from=result.report_from, report_to=result.report_to, sessions=result.sessions,
                       caveat=CAVEAT)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["group", "stops", "denied_minutes", "cost_saved_usd", "current_stops", "current_denied_minutes",
                     "recorded_stops", "stop_days", "serverless_used_dbu", "serverless_denied_dbu",
                     "serverless_off_days"])
    for r in rows:
        s = r.get("serverless") or {}
        writer.writerow(safe_row([r["group"], r["stops"], r["denied_minutes"], r["cost_saved_usd"], r["current"]["stops"],
                                  r["current"]["denied_minutes"], r["recorded_stops"], " ".join(r["stop_days"]),
                                  s.get("used_dbu", ""), s.get("denied_dbu", ""), " ".join(s.get("off_days", []))]))
    files = {"simulation.html": html.encode("utf-8"), "simulation.csv": ("\ufeff" + buf.getvalue()).encode("utf-8"),
             "simulation.png": _chart(rows)}
    return [write_private(out / name, data) for name, data in files.items()]


def _chart(rows: list[dict]) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from databricks.teachinglab.adapters.report_files import chart_labels

    labels = chart_labels([_Row(r["group"]) for r in rows])
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(rows) + 2), 4), dpi=100)
    ax.bar([i - 0.2 for i in x], [r["current"]["denied_minutes"] for r in rows], width=0.4, label="policy now")
    ax.bar([i + 0.2 for i in x], [r["denied_minutes"] for r in rows], width=0.4, label="candidate")
    ax.set_xticks(list(x), labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("minutes denied")
    ax.set_title("Minutes denied per group")
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


class _Row:
    def __init__(self, group: str):
        self.group, self.cluster_name = group, "(right-to-left name)"


@command("status_page", "serve each group's page (STATUS_PAGE_URL/g/<token>) and /admin (STATUS_PAGE_PASSWORD) "
         "on --host/--port, from the ledger", ledger=True)
def status_page(inv: Invocation) -> int:
    inv.context()
    serve(inv.settings, utcnow, inv.args.host, inv.args.port)
    return 0


@command("status_links", "print each group's status page link (STATUS_PAGE_URL/g/<token>), or --json; the groups "
         "are those the poll has seen", changes=True, ledger=True)
def status_links(inv: Invocation) -> int:
    """The links the mails carry, for an admin who wants to post them (say, in Moodle) before
    any mail went out. The first call makes the ledger's secret when STATUS_PAGE_SECRET is unset."""
    settings, args = inv.settings, inv.args
    if not settings.status.url:
        print("STATUS_PAGE_URL is not set: set it in .env to the address students reach --status_page at "
              "(e.g. https://lab.example.edu/status); the links are made from it", file=sys.stderr)
        return 2
    inv.context()
    groups = known_groups()
    if args.dry_run and link_secret(settings, inv.now, create=False) is None:
        print(f"{len(groups)} group(s); the links need a secret, which would be made now; nothing changed (--dry-run)")
        return 0
    links = [{"group": g, "url": status_link(settings, g, inv.now)} for g in groups]
    if args.json:
        json.dump(links, sys.stdout, indent=2, ensure_ascii=False)
        print()
    elif not links:
        print("no groups yet: the links appear once a poll has seen the course's clusters")
    else:
        width = max(len(x["group"]) for x in links)
        for x in links:
            name = x['group'] if x['group'].isprintable() else repr(x['group'])  # no line breaks or escapes
            print(f"{name:<{width}}  {x['url']}")
    return 0


@command("rotate_status_secret", "a new secret for the status page's links: every link sent so far stops "
         "working (when STATUS_PAGE_SECRET is set, change it there instead)", changes=True, ledger=True)
def rotate_status_secret(inv: Invocation) -> int:
    if inv.settings.status.secret:
        print("STATUS_PAGE_SECRET is set: change it in the environment (.env) to rotate the links", file=sys.stderr)
        return 2
    if inv.args.dry_run:
        print("would make a new status page secret (every link sent so far would stop working); nothing changed")
        return 0
    inv.context()
    rotate_secret(inv.now)
    print("new status page secret made; links sent before no longer work, new mails carry new links")
    return 0
