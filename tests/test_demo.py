"""`make demo` runs the whole simulated day and checks itself; here it runs quietly."""
from databricks.devtools import demo
from databricks.teachinglab.adapters.ledger.models import OutboxMessage


def test_demo_day_goes_as_described(tmp_path, capsys):
    assert demo.main(["--out", str(tmp_path / "demo"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and out.count("ok ") == 12
    assert (tmp_path / "demo" / "timeline.log").read_text().count("terminated") == 3
    assert len(list((tmp_path / "demo" / "mail").glob("*.eml"))) == OutboxMessage.select().count() == 7
