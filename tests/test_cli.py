"""The pagecat command: help everywhere, exit codes, one-line errors."""

import subprocess
import sys

import pytest
import yaml

from pagecat.stages import STAGE_ORDER


def pagecat(*args, cwd=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "pagecat", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


@pytest.mark.parametrize("command", [[], *[[s] for s in STAGE_ORDER], ["run"], ["demo"], ["config"],
                                     ["config", "show"]])
def test_help_everywhere(command):
    r = pagecat(*command, "--help")
    assert r.returncode == 0, r.stderr
    assert "usage: pagecat" in r.stdout


def test_config_show_prints_effective_config_with_defaults(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("crawl:\n  max_depth: 3\n")
    r = pagecat("config", "show", "-c", str(cfg), "--set", "train.seed=7")
    assert r.returncode == 0, r.stderr
    shown = yaml.safe_load(r.stdout)
    assert shown["crawl"]["max_depth"] == 3 and shown["train"]["seed"] == 7
    assert shown["crawl"]["max_pages_per_site"] == 10  # a default


def one_line_error(r, code=2):
    assert r.returncode == code, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


def test_unknown_stage_exits_2():
    line = one_line_error(pagecat("crawlx"))
    assert "invalid choice: 'crawlx'" in line


def test_malformed_config_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("crawl:\n  max_depht: 2\n")
    line = one_line_error(pagecat("run", "-c", str(bad)))
    assert "crawl.max_depht: unknown key; did you mean crawl.max_depth?" in line
    bad.write_text("crawl: [\n")
    assert "not valid YAML" in one_line_error(pagecat("run", "-c", str(bad)))
    assert "not found" in one_line_error(pagecat("run", "-c", str(tmp_path / "none.yaml")))


def test_bad_set_value_exits_2():
    assert "expected section.key=value" in one_line_error(pagecat("config", "show", "--set", "max_depth"))
    assert "expected int" in one_line_error(pagecat("config", "show", "--set", "crawl.max_depth=deep"))


def test_nothing_to_run_exits_2(tmp_path):
    line = one_line_error(pagecat("run", "--run-dir", str(tmp_path / "r")))
    assert "set crawl.seeds" in line


def test_missing_input_exits_2(tmp_path):
    line = one_line_error(pagecat("parse", "--run-dir", str(tmp_path / "r"),
                                  "--set", f"parse.inputs=[{tmp_path / 'nothing-here.warc.gz'}]"))
    assert "nothing-here.warc.gz" in line


def test_stage_before_its_upstream_exits_2(tmp_path):
    line = one_line_error(pagecat("train", "--run-dir", str(tmp_path / "r"), "--workers", "1"))
    assert "needs stage" in line and "first" in line


def test_unreachable_scheduler_exits_2(tmp_path):
    html = tmp_path / "pages"
    html.mkdir()
    (html / "a.html").write_text("<html><body><p>some words here for the page</p></body></html>")
    r = pagecat("parse", "--run-dir", str(tmp_path / "r"), "--scheduler", "tcp://127.0.0.1:9",
                "--set", f"parse.inputs=[{html}]", "--set", "cluster.connect_timeout=2")
    line = one_line_error(r)
    assert "cluster.scheduler tcp://127.0.0.1:9: cannot connect" in line


def test_empty_inputs_exit_2(tmp_path):
    seeds = tmp_path / "seeds.csv"
    seeds.write_text("url_id,url\n")
    line = one_line_error(pagecat("crawl", "--run-dir", str(tmp_path / "r"), "--set", f"crawl.seeds={seeds}"))
    assert "no rows" in line and str(seeds) in line
    empty = tmp_path / "empty"
    empty.mkdir()
    line = one_line_error(pagecat("parse", "--run-dir", str(tmp_path / "r"), "--set", f"parse.inputs=[{empty}]"))
    assert "holds no usable file" in line
