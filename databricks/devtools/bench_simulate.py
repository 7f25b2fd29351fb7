"""make bench: the policy simulator over a semester of 300 clusters x 120 days, from a real SQLite
ledger filled with synthetic sessions (one or two a day per cluster, 1-4 nodes)."""
from __future__ import annotations

import random
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from databricks.teachinglab.adapters.ledger.models import Cluster, UsageSession, open_ledger
from databricks.teachinglab.cli.wiring import close_ledger
from databricks.teachinglab.adapters.policy_file import load_policy
from databricks.teachinglab.cli.config import load_settings
from databricks.teachinglab.services.simulate import simulate

START = date(2026, 3, 2)
POLICY = """\
[daily]
warn_minutes = 90
max_minutes = 120
[weekly]
max_minutes = 420
carry_over_max_minutes = 60
[semester]
start = 2026-03-02
end = 2026-06-29
max_minutes = 6000
[[topup]]
groups = ["*"]
minutes = 60
from = 2026-05-11
until = 2026-05-12
reason = "project deadline"
"""


def measure_simulator(n_clusters: int = 300, days: int = 120, seed: int = 7) -> dict:
    tz = ZoneInfo("Asia/Jerusalem")
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        now = datetime(2026, 7, 1, tzinfo=timezone.utc)
        open_ledger(db_path=folder / "ledger.db", database_url=None, now=now)
        try:
            Cluster.insert_many([{"cluster_id": f"c{i:03d}", "name": f"cluster_{i:03d}", "group_name": f"group_{i:03d}",
                                  "group_source": "tag", "node_type_id": "Standard_DS3_v2", "first_seen": now,
                                  "last_seen": now} for i in range(n_clusters)]).execute()
            rows = []
            for i in range(n_clusters):
                for d in range(days):
                    day = START + timedelta(days=d)
                    t = datetime(day.year, day.month, day.day, 8, tzinfo=tz) + timedelta(minutes=rng.randint(0, 240))
                    for _ in range(rng.choice((0, 1, 1, 2))):
                        end = t + timedelta(minutes=rng.randint(20, 180))
                        rows.append({"cluster": f"c{i:03d}", "group_name": f"group_{i:03d}", "start": t, "end": end,
                                     "nodes": rng.randint(1, 4)})
                        t = end + timedelta(minutes=rng.randint(10, 120))
            for k in range(0, len(rows), 5000):
                UsageSession.insert_many(rows[k:k + 5000]).execute()
            (folder / "policy.toml").write_text(POLICY)
            settings = load_settings({"QUOTA_TIMEZONE": tz.key, "CLUSTER_UPTIMES_DB": str(folder / "ledger.db"),
                                      "HOME": tmp}, need_workspace=False)
            candidate = load_policy(folder / "policy.toml", settings.quota.unit, defaults=None)
            started = time.perf_counter()
            result = simulate(settings, candidate, today=START + timedelta(days=days))
            seconds = time.perf_counter() - started
        finally:
            close_ledger()
    return {"seconds": seconds, "sessions": result.sessions, "groups": len(result.groups),
            "stops": sum(len(g.candidate.stops) for g in result.groups)}
