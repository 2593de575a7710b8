"""Every shell command of README.md works as written: its ```sh blocks run, in order, in one
shell, against `bin/run` (what `make run` starts) on embedded defaults, as a newcomer would run
them from a second terminal. Only the port differs: a free one instead of 8000. `make` lines
are not run (the suite is one of them); their targets must exist."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventbus.redis import embedded
from tests.processes import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
# What the test session puts in its environment (tests/conftest.py, config/settings_test.py): a
# newcomer's terminal has none of it.
SET_BY_THE_SUITE = ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "SECRET_KEY", "EMBEDDED_REDIS", "EMAIL_URL")
# The answers the README shows on purpose that are not 2xx, by a piece of their command.
NOT_2XX = {'"quantity": 0': 400}


def sh_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def commands(block: str) -> list[str]:
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def is_make_block(block: str) -> bool:
    return all(line.startswith("make ") for line in commands(block))


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), flags=re.MULTILINE))


def test_the_readme_is_a_page_not_a_manual():
    assert len(README.read_text().splitlines()) <= 250


def test_every_sh_block_is_make_targets_or_commands_to_run_not_a_mix():
    for block in sh_blocks(README.read_text()):
        lines = commands(block)
        assert lines, f"an empty sh block: {block!r}"
        assert is_make_block(block) or not any(line.startswith("make ") for line in lines), block


def test_every_make_command_of_the_readme_names_a_target_of_the_makefile():
    targets = make_targets()
    named = [line.split()[1] for b in sh_blocks(README.read_text()) if is_make_block(b) for line in commands(b)]
    assert named, "the README names no make command"
    assert set(named) <= targets, f"not in the Makefile: {set(named) - targets}"


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """bin/run on a free port, with nothing set but its own state directory: embedded SQLite
    and Redis, as on a fresh machine. Yields the environment a second terminal would have."""
    var = tmp_path_factory.mktemp("make-run-var")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in SET_BY_THE_SUITE}
    env.update(VAR_DIR=str(var), PORT=str(port), BIND="127.0.0.1", PROMETHEUS_MULTIPROC_DIR=str(var / "prometheus"))
    log = (var / "make-run.log").open("wb")
    proc = subprocess.Popen(
        ["bin/run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip

    def ready() -> bool:
        assert proc.poll() is None, f"bin/run exited {proc.returncode}:\n{(var / 'make-run.log').read_text()}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz?pipeline=1", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    try:
        wait_until(ready, timeout=240, what="bin/run's web, relay and consumers", interval=0.5)
        yield {**env, "PORT": str(port)}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in its terminal
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        embedded.stop_server(var / "redis")  # bin/run's own trap does this; in case it could not
        log.close()


def test_the_readmes_commands_work_as_written_against_make_run(make_run):
    blocks = [b for b in sh_blocks(README.read_text()) if not is_make_block(b)]
    # Every curl also says its answer's status, on stderr, leaving what the README pipes alone.
    report = "curl() { command curl -w '%{stderr}HTTP %{http_code} %{url_effective}\\n' \"$@\"; }"
    script = ["set -euo pipefail", report]
    for n, block in enumerate(blocks):
        script += [f"echo '--- block {n}' >&2", block.replace("localhost:8000", f"localhost:{make_run['PORT']}")]
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)], cwd=ROOT, env=make_run, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    answers = re.findall(r"^HTTP (\d{3}) (\S+)$", done.stderr, flags=re.MULTILINE)
    assert len(answers) >= sum(b.count("curl ") for b in blocks), done.stderr
    wrong = []
    for block_stderr, block in zip(done.stderr.split("--- block ")[1:], blocks, strict=True):
        want = next((status for piece, status in NOT_2XX.items() if piece in block), None)
        for status, url in re.findall(r"^HTTP (\d{3}) (\S+)$", block_stderr, flags=re.MULTILINE):
            if not (int(status) == want if want else status.startswith("2")):
                wrong.append((status, url, commands(block)[0]))
    assert not wrong, f"answers the README does not lead one to expect: {wrong}\nstdout:\n{done.stdout}"
