"""The comparison behind ``nox -s cpython``: any case or test file that ends differently counts."""

from __future__ import annotations

from .cpython_suites import Results, differences, read_junit, read_summary

JUNIT = """<testsuites tests="4" errors="1" failures="1"><testsuite tests="4">
<testcase name="test.test_os.A.test_pass" status="run" result="completed" time="0.1" />
<testcase name="test.test_os.A.test_skip" status="run" result="completed" time="0.0">
<skipped message="needs fd support" /></testcase>
<testcase name="test.test_os.A.test_fail" status="run" result="completed" time="0.0">
<failure message="AssertionError">Traceback</failure></testcase>
<testcase name="test.test_os.A.test_error" status="run" result="completed" time="0.0">
<error message="TypeError">Traceback</error></testcase>
</testsuite></testsuites>"""

SUMMARY = """== Tests result: FAILURE ==

1 test altered the execution environment:
    test_io

2 tests failed:
    test_os test_shutil

8 tests OK.

Total duration: 19.2 sec
"""


def test_read_junit_gives_each_case_its_outcome(tmp_path):
    (tmp_path / "results.xml").write_text(JUNIT)
    assert read_junit(tmp_path / "results.xml") == {
        "test.test_os.A.test_pass": "passed",
        "test.test_os.A.test_skip": "skipped",
        "test.test_os.A.test_fail": "failed",
        "test.test_os.A.test_error": "failed",
    }


def test_read_summary_gives_each_test_file_not_ok_its_state():
    assert read_summary(SUMMARY) == {
        "test_io": "altered the execution environment",
        "test_os": "failed",
        "test_shutil": "failed",
    }


def test_every_change_of_outcome_is_a_difference():
    plain = Results({"a": "passed", "b": "passed", "c": "failed", "d": "passed"}, {})
    hooked = Results({"a": "passed", "b": "skipped", "c": "passed", "e": "passed"}, {})
    assert differences(plain, hooked) == [
        "b: passed without the hooks, skipped with them",
        "c: failed without the hooks, passed with them",
        "d: passed without the hooks, not run with them",
        "e: not run without the hooks, passed with them",
    ]
    assert differences(plain, plain) == []


def test_a_test_file_that_changes_state_is_a_difference():
    plain = Results({"a": "passed"}, {"test_io": "failed"})
    hooked = Results({"a": "passed"}, {"test_os": "altered the execution environment"})
    assert differences(plain, hooked) == [
        "test_io: failed without the hooks, OK with them",
        "test_os: OK without the hooks, altered the execution environment with them",
    ]
