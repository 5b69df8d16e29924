"""Logging: JSON lines with extra fields, rotation, an unwritable path falls back to stderr."""

import io
import json
import logging

import pytest

from aura_dashboard.logs import configure_logging
from tests.conftest import make_settings


@pytest.fixture(autouse=True)
def restore_root():
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in before:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def settings_for(path, **file):
    return make_settings({"LOG_FILE": str(path)},
                         {"logging": {"format": "json", "file": {"enabled": True, **file}}}).logging


def test_json_lines_to_stream_and_file(tmp_path):
    stream = io.StringIO()
    handler = configure_logging(settings_for(tmp_path / "logs" / "d.log"), stream=stream)
    assert handler is not None
    logging.getLogger("aura_dashboard.test").info("hello", extra={"stream": "system"})
    handler.flush()
    for text in (stream.getvalue(), (tmp_path / "logs" / "d.log").read_text()):
        record = json.loads(text.strip().splitlines()[-1])
        assert record["level"] == "INFO" and record["logger"] == "aura_dashboard.test"
        assert record["message"] == "hello" and record["stream"] == "system" and "ts" in record


def test_rotation_keeps_backup_count(tmp_path):
    settings = settings_for(tmp_path / "d.log", max_size_mb=1, backup_count=2)
    handler = configure_logging(settings, stream=io.StringIO())
    log = logging.getLogger("aura_dashboard.rotate")
    for _ in range(3000):
        log.info("x" * 1000)
    handler.flush()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["d.log", "d.log.1", "d.log.2"]


def test_unwritable_path_falls_back_to_stderr_and_says_so_once(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    stream = io.StringIO()
    handler = configure_logging(settings_for(blocker / "sub" / "d.log"), stream=stream)
    assert handler is None
    logging.getLogger("aura_dashboard.after").warning("still logging")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    falls = [line for line in lines if "cannot be written" in line["message"]]
    assert len(falls) == 1 and falls[0]["key"] == "logging.file.path"
    assert lines[-1]["message"] == "still logging"


def test_empty_log_file_means_no_file_and_no_warning():
    stream = io.StringIO()
    settings = make_settings({"LOG_FILE": ""}, {"logging": {"file": {"enabled": True}}}).logging
    assert configure_logging(settings, stream=stream) is None
    assert stream.getvalue() == ""


def test_every_line_names_the_instance_and_each_replica_gets_its_own_file(tmp_path):
    settings = settings_for(tmp_path / "logs" / "{instance}.log")
    stream = io.StringIO()
    handler = configure_logging(settings, stream=stream, instance="replica-a")
    logging.getLogger("aura_dashboard.test").info("hello")
    handler.flush()
    assert (tmp_path / "logs" / "replica-a.log").exists()
    for text in (stream.getvalue(), (tmp_path / "logs" / "replica-a.log").read_text()):
        assert json.loads(text.strip().splitlines()[-1])["instance"] == "replica-a"


def test_console_stdout_sends_records_to_stdout_only(capsys):
    settings = make_settings({"LOG_FILE": "", "LOG_CONSOLE": "stdout"}).logging
    configure_logging(settings, instance="replica-b")
    logging.getLogger("aura_dashboard.test").warning("to stdout")
    out, err = capsys.readouterr()
    assert json.loads(out.strip().splitlines()[-1])["message"] == "to stdout"
    assert "to stdout" not in err


def test_text_format_names_the_instance_too():
    stream = io.StringIO()
    settings = make_settings({"LOG_FILE": ""}, {"logging": {"format": "text"}}).logging
    configure_logging(settings, stream=stream, instance="replica-c")
    logging.getLogger("aura_dashboard.test").warning("plain")
    assert " replica-c WARNING aura_dashboard.test: plain" in stream.getvalue()
