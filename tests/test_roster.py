"""Moodle roster parsing: real-format samples, edge cases, stable keys, and a round-trip property."""
import csv
import io
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from conftest import ROOT
from databricks.teachinglab.adapters.roster_files import read_users_csv, write_users_csv
from databricks.teachinglab.core.roster import RosterError, group_key, parse_roster

DATA = ROOT / "tests" / "data"

HEADER = ["Group ID", "Group Name", "Group Size", "Group Description", "Assigned teacher Username",
          "Assigned teacher Firstname", "Assigned teacher Lastname", "Assigned teacher Email"]


def export(groups, *, sep_line=True, bom=True, crlf=True, blocks=None) -> bytes:
    """Write a mod_groupselect export: groups = [(id, name, [(first, last, email), ...])]."""
    n = blocks or max([len(m) for _, _, m in groups] + [1])
    header = list(HEADER)
    for i in range(1, n + 1):
        header += [f"Member {i} Username", f"Member {i} ID Number", f"Member {i} Firstname",
                   f"Member {i} Lastname", f"Member {i} Email"]
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n" if crlf else "\n")
    w.writerow(header)
    for gid, name, members in groups:
        row = [gid, name, str(len(members)), "", "", "", "", ""]
        for first, last, email in members:
            row += [email.split("@")[0], "", first, last, email]
        row += [""] * (len(header) - len(row))
        w.writerow(row)
    text = ("sep=,\r\n" if sep_line else "") + out.getvalue()
    return (("\ufeff" if bom else "") + text).encode()


def test_real_format_sample_with_sep_bom_crlf_hebrew_and_quoted_commas():
    roster = parse_roster((DATA / "moodle_groupselect.csv").read_bytes(), "moodle.csv")
    names = {g.key: g.name for g in roster.groups}
    assert names == {"g1043": "Team Rocket", "g1044": "קבוצה שלוש", "g1045": "Solo", "g1046": "Data, Inc."}
    sizes = {g.key: len(g.members) for g in roster.groups}
    assert sizes == {"g1043": 3, "g1044": 2, "g1045": 1, "g1046": 1}
    hebrew = next(g for g in roster.groups if g.key == "g1044")
    assert hebrew.members[0].first_name == "אביגיל"
    assert [str(p) for p in roster.problems] == [
        "moodle.csv:6: 'not-an-email' in 'Data, Inc.' is not an email address: correct it in Moodle and export again"]


@pytest.mark.parametrize("sep_line,bom,crlf", [(False, False, False), (True, False, True), (False, True, False)])
def test_optional_sep_line_bom_and_line_endings(sep_line, bom, crlf):
    raw = export([("7", "A", [("a", "b", "a@u.edu")])], sep_line=sep_line, bom=bom, crlf=crlf)
    roster = parse_roster(raw)
    assert [(g.key, [s.email for s in g.members]) for g in roster.groups] == [("g7", ["a@u.edu"])]
    assert roster.problems == []


def test_problems_have_file_line_and_what_to_do():
    raw = export([("1", "A", [("a", "a", "a@u.edu"), ("b", "b", "b@u.edu")]),
                  ("2", "B", [("a", "a", "A@u.edu")]),          # student in two groups
                  ("3", "Empty", []),                            # empty group
                  ("1", "A again", [("c", "c", "c@u.edu")])],    # duplicate group id
                 sep_line=False)
    roster = parse_roster(raw, "x.csv")
    text = "\n".join(map(str, roster.problems))
    assert "x.csv:3: a@u.edu is in 'A' (line 2) and in 'B'" in text
    assert "x.csv:4: group 'Empty' has no members" in text
    assert "x.csv:5: group id 1 ('A again') already appears on line 2" in text
    assert [g.key for g in roster.groups] == ["g1", "g2", "g3"]  # the empty group is kept


def test_no_email_column_is_fatal_with_advice():
    raw = b"Group ID,Group Name,Member 1 Username,Member 1 Firstname\n1,A,u,F\n"
    with pytest.raises(RosterError, match="Member N Email"):
        parse_roster(raw, "m.csv")


def test_core_overview_long_format():
    roster = parse_roster((DATA / "moodle_overview.csv").read_bytes(), "o.csv")
    assert {g.name: [s.email for s in g.members] for g in roster.groups} == {
        "Team A": ["ann@uni.example.edu", "ben@uni.example.edu"], "Team B": ["cai@uni.example.edu"]}
    assert [str(p) for p in roster.problems][0].startswith("o.csv:5: nogroup@uni.example.edu is in no group")


def test_group_keys_are_ascii_and_stable():
    assert group_key("Team Rocket", "1043") == "g1043"
    assert group_key("Team Rocket") == "team_rocket"
    hebrew = group_key("קבוצה שלוש")
    assert hebrew.isascii() and hebrew.startswith("grp_") and hebrew == group_key("קבוצה שלוש")


def test_removing_a_group_leaves_every_other_key_unchanged():
    groups = [(str(100 + i), f"Group {i}", [(f"f{i}", "l", f"s{i}@u.edu")]) for i in range(6)]
    before = {g.name: g.key for g in parse_roster(export(groups)).groups}
    after = {g.name: g.key for g in parse_roster(export(groups[:2] + groups[3:][::-1])).groups}
    del before["Group 2"]
    assert after == before
    no_ids = [("", name, m) for _, name, m in groups]
    before = {g.name: g.key for g in parse_roster(export(no_ids)).groups}
    after = {g.name: g.key for g in parse_roster(export(no_ids[1:])).groups}
    assert all(after[n] == before[n] for n in after)


def test_strict_makes_problems_fatal_and_writes_nothing(tmp_path):
    out = tmp_path / "users.csv"
    r = subprocess.run([sys.executable, "-m", "databricks.main", "--convert_moodle",
                        str(DATA / "moodle_groupselect.csv"), "-o", str(out), "--strict"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 2 and not out.exists() and "Traceback" not in r.stderr
    assert "moodle_groupselect.csv:6:" in r.stderr
    r = subprocess.run([sys.executable, "terraform/convert_moodle_to_tf_format.py",
                        str(DATA / "moodle_groupselect.csv"), "-o", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "4 groups, 7 students" in r.stdout
    assert out.read_text().splitlines()[0] == "group_key,group_name,email,first_name,last_name"


names = st.text(alphabet=st.characters(whitelist_categories=("L", "N", "Zs"), max_codepoint=0x5FF),
                min_size=1, max_size=20).map(str.strip).filter(bool)
people = st.tuples(st.text(alphabet="abcdefghij", min_size=1, max_size=6),
                   st.text(alphabet="klmnopqrst", min_size=1, max_size=6))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.tuples(names, st.lists(people, min_size=1, max_size=5)), min_size=1, max_size=8,
                unique_by=lambda g: g[0]),
       st.booleans(), st.booleans())
def test_export_parse_convert_keeps_every_membership(tmp_path_factory, groups, sep_line, crlf):
    counter = iter(range(10_000))
    spec = []
    for gi, (name, members) in enumerate(groups):
        spec.append((str(500 + gi), name, [(f, l, f"{f}.{l}.{next(counter)}@u.example.edu") for f, l in members]))
    roster = parse_roster(export(spec, sep_line=sep_line, crlf=crlf))
    assert roster.problems == []
    out = tmp_path_factory.mktemp("rt") / "users.csv"
    write_users_csv(roster, out)
    back = read_users_csv(out)
    want = {(name, email.lower()) for _, name, ms in spec for _, _, email in ms}
    got = {(g.name, s.email) for g, s in back.memberships()}
    assert got == want and back.problems == []


@pytest.mark.parametrize("sep", [";", "\t"])
def test_semicolon_and_tab_separated_exports_are_read_without_a_sep_line(sep):
    """European Excel saves CSV with ";" (and other tools with tabs): before, "no group column"."""
    text = sep.join(["Group", "First name", "Last name", "Email address"]) + "\n" \
        + sep.join(["Team A", "Dana", "Levi", "dana@uni.edu"]) + "\n" \
        + sep.join(["Team A", "Omer", "Cohen, Jr", "omer@uni.edu"]) + "\n"
    roster = parse_roster(text)
    assert [(g.name, [s.email for s in g.members]) for g in roster.groups] == [
        ("Team A", ["dana@uni.edu", "omer@uni.edu"])]
    assert not roster.problems


def test_a_student_in_two_groups_is_cited_at_both_of_their_lines():
    text = ("Group,Email address\n"
            "Team A,x@uni.edu\n"
            "Team A,dana@uni.edu\n"
            "Team B,y@uni.edu\n"
            "Team B,dana@uni.edu\n")
    problem = next(p for p in parse_roster(text, "m.csv").problems if "dana@uni.edu" in p.message)
    assert problem.line == 5 and "(line 3)" in problem.message and "(line 5)" in problem.message
