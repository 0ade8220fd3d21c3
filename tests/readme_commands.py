"""Run the README's set-up command as a newcomer would: ``nox -s readme``.

The README's first lines give two commands, in the ``sh`` block after the
``<!-- readme-test: ... -->`` marker:

1. ``apt-get ... && python3 -m venv .venv && .venv/bin/pip install . &&
   .venv/bin/xendiscover --port 8002``: set up, then sweep the local networks;
2. ``bash .ci/run``: the tests.

This script checks that they still work as written:

- Command 1 runs in a fresh ``git clone`` of this repository's HEAD, once in a
  clean environment whose ``python3`` is Debian's own ``/usr/bin/python3``
  (``env -i`` with the standard PATH, no pyenv, an empty HOME) and once in
  this machine's own environment (here, pyenv's ``python3``). Its set-up half
  (everything before ``.venv/bin/xendiscover``) runs for real, apt-get
  included (it is idempotent; without root the apt-get part is only checked).
- The sweep half never runs in this machine's network namespace: it runs in
  the admin namespace of the lab (``tests/netlab.py``), whose up interfaces
  hold the lab's Xen fakes and whose resolver is the lab's dnsmasq, and must
  print exactly the lab's Xen hosts. Without root (no namespaces) the sweep
  is replaced by ``demo``, which stays on loopback.
- The README's demo line runs too (in the lab's admin namespace when it is up).
- Command 2 is not run (CI runs it, and it runs this script): it must be
  exactly ``bash .ci/run``, and the nox command the README names must be the
  one ``.ci/run`` runs.
- The Getting-started page of the docs shows the same two commands.

Usage: ``python tests/readme_commands.py [--keep]`` (``--keep`` leaves the
clones in place and prints where).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import netlab

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
GETTING_STARTED = ROOT / "docs" / "index.md"
CI_RUN = ROOT / ".ci" / "run"

MARKER = "<!-- readme-test:"
#: The test command, run by CI and never from here.
CI_COMMAND = "bash .ci/run"
#: The command that command 1 ends with: the sweep, run inside the lab.
SWEEP = ".venv/bin/xendiscover"
#: A stock Debian root shell's PATH, less /usr/local/bin (where a Python built by
#: hand would be): its python3 is Debian's own /usr/bin/python3.
DEBIAN_PATH = "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
SETUP_TIMEOUT = 900.0
SWEEP_TIMEOUT = 300.0


class ReadmeError(AssertionError):
    """The README's commands are not what this check expects, or do not work."""


@dataclass(frozen=True)
class SetupCommands:
    """The README's two set-up commands, command 1 split at its sweep."""

    first: str
    second: str
    setup: tuple[tuple[str, ...], ...]  # the ``&&``-chained commands before the sweep
    sweep: tuple[str, ...]  # ``.venv/bin/xendiscover ARGS``


def _chain(line: str) -> list[tuple[str, ...]]:
    """Split a shell line into its ``&&``-chained commands (no other operators)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token == "&&":
            commands.append([])
        elif token and set(token) <= set("&|;()<>"):
            raise ReadmeError(f"command 1 may chain with && only, not {token!r}: {line}")
        else:
            commands[-1].append(token)
    if not all(commands):
        raise ReadmeError(f"an empty command in: {line}")
    return [tuple(argv) for argv in commands]


def parse_setup_commands(markdown: str) -> SetupCommands:
    """Find the two set-up commands: the ``sh`` block right after the marker."""
    at = markdown.find(MARKER)
    if at < 0:
        raise ReadmeError(f"no {MARKER} ... --> marker before the set-up commands")
    block = re.match(r"[^\n]*-->\n```sh\n(.*?)\n```\n", markdown[at:], re.DOTALL)
    if block is None:
        raise ReadmeError("the marker must be followed by a ```sh block")
    lines = [line.strip() for line in block[1].splitlines()]
    commands = [line for line in lines if line and not line.startswith("#")]
    if len(commands) != 2:
        raise ReadmeError(f"expected exactly two set-up commands, found {commands}")
    first, second = commands
    chain = _chain(first)
    if chain[-1][0] != SWEEP:
        raise ReadmeError(f"command 1 must end with the sweep, {SWEEP} ARGS: {first}")
    # The set-up half runs in this machine's own namespace: nothing in it may scan.
    for argv in chain[:-1]:
        if "xendiscover" in Path(argv[0]).name or ("-m" in argv and "xendiscover" in argv):
            raise ReadmeError(f"only the last command of command 1 may run xendiscover: {first}")
    return SetupCommands(first, second, tuple(chain[:-1]), chain[-1])


def check_second_command(commands: SetupCommands, readme: str, ci_run: str) -> str:
    """Command 2 is what CI runs; the nox command the README names is .ci/run's."""
    if commands.second != CI_COMMAND:
        raise ReadmeError(f"command 2 must be exactly {CI_COMMAND!r}, not {commands.second!r}")
    runs = re.search(r'^exec "\$venv/bin/nox" (-s [\w ]+)$', ci_run, re.MULTILINE)
    if runs is None:
        raise ReadmeError('.ci/run no longer ends with exec "$venv/bin/nox" -s SESSIONS')
    nox = f"nox {runs[1].strip()}"
    if f"`{nox}`" not in readme:
        raise ReadmeError(f"the README must name the test command .ci/run runs: `{nox}`")
    return nox


def demo_command(readme: str) -> tuple[str, ...]:
    """The README's demo line: ``.venv/bin/xendiscover demo``."""
    found = re.search(r"`(\.venv/bin/xendiscover demo)`", readme)
    if found is None:
        raise ReadmeError("the README no longer shows `.venv/bin/xendiscover demo`")
    return tuple(found[1].split())


# --------------------------------------------------------------------------- running


def _say(message: str) -> None:
    print(f"readme: {message}", file=sys.stderr, flush=True)


def _run(
    argv: Sequence[str], *, cwd: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    _say("+ " + shlex.join(argv))
    done = subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    # What the command printed: the end of it, and all of stderr's end when it failed.
    shown = [("stdout", done.stdout, 12)]
    if done.returncode != 0:
        shown.append(("stderr", done.stderr, 40))
    for name, text, lines in shown:
        for line in text.rstrip().splitlines()[-lines:]:
            _say(f"  {name}| {line}")
    _say(f"  exit {done.returncode}")
    return done


def debian_env(home: Path) -> dict[str, str]:
    """``env -i`` with a stock Debian root PATH and an empty HOME."""
    return {"PATH": DEBIAN_PATH, "HOME": str(home)}


def machine_env() -> dict[str, str]:
    """This machine's own environment, less nox's session venv and interpreter links."""
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    nox_dir = str(ROOT / ".nox")
    parts = env.get("PATH", os.defpath).split(os.pathsep)
    env["PATH"] = os.pathsep.join(p for p in parts if not p.startswith(nox_dir))
    return env


def _which_python3(env: dict[str, str], cwd: Path) -> str:
    done = _run(
        ["sh", "-c", 'p=$(command -v python3) && echo "$p $("$p" -V)"'],
        cwd=cwd,
        env=env,
        timeout=60,
    )
    if done.returncode != 0:
        raise ReadmeError(f"no python3 on PATH={env.get('PATH')}")
    return done.stdout.strip()


def clone(dest: Path) -> Path:
    """A fresh clone of this repository at HEAD (what a newcomer gets)."""
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if dirty:
        _say(f"note: uncommitted changes are not in the clone; it tests commit {head[:12]}")
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(ROOT), str(dest)], check=True)
    subprocess.run(["git", "-C", str(dest), "checkout", "-q", head], check=True)
    return dest


def run_setup(commands: SetupCommands, checkout: Path, env: dict[str, str]) -> None:
    """Command 1's set-up half, as written (its apt-get part only checked without root)."""
    setup = commands.setup
    if os.geteuid() != 0:
        apt = [argv for argv in setup if argv[0] == "apt-get"]
        setup = tuple(argv for argv in setup if argv[0] != "apt-get")
        if apt and subprocess.run(["dpkg", "-s", "python3-venv"], capture_output=True).returncode:
            raise ReadmeError("not root, and python3-venv is not installed")
        _say(f"not root: not running {' && '.join(map(shlex.join, apt))}")
    line = " && ".join(shlex.join(argv) for argv in setup)
    done = _run(["sh", "-c", line], cwd=checkout, env=env, timeout=SETUP_TIMEOUT)
    if done.returncode != 0:
        raise ReadmeError(f"command 1's set-up half failed ({done.returncode}): {line}")
    if not (checkout / SWEEP).exists():
        raise ReadmeError(f"command 1's set-up half made no {SWEEP}")


def expected_sweep(topo: netlab.Topology) -> list[str]:
    """What the sweep must print in the lab's admin namespace: one name per Xen host."""
    # IPv4 first, as the output sorts machines (the lab's ULA host answers the echo).
    addresses = sorted(
        topo.auto_xen, key=lambda a: (ipaddress.ip_address(a).version, ipaddress.ip_address(a))
    )
    return [topo.hostname(address) or address for address in addresses]


def run_sweep(
    commands: SetupCommands, checkout: Path, env: dict[str, str], lab: netlab.Lab
) -> None:
    """Command 1's sweep half, inside the lab's admin namespace; check what it found."""
    argv = lab.exec_argv(lab.admin, commands.sweep)  # ip netns exec passes env on
    done = _run(argv, cwd=checkout, env=env, timeout=SWEEP_TIMEOUT)
    # One line per Xen machine: its key, then (two spaces on) what it runs.
    found = [line.split("  ", 1)[0] for line in done.stdout.splitlines()]
    want = expected_sweep(lab.topo)
    if done.returncode != 0 or found != want:
        raise ReadmeError(
            f"the sweep in the lab exited {done.returncode} and printed {found}; want {want}"
        )


def run_demo(
    demo: Sequence[str], checkout: Path, env: dict[str, str], lab: netlab.Lab | None
) -> None:
    """The README's demo line: fakes on loopback, a scan of them."""
    argv = list(demo)
    if lab is not None:  # its own loopback, apart from anything else on this machine
        argv = lab.exec_argv(lab.admin, argv)
    done = _run(argv, cwd=checkout, env=env, timeout=SWEEP_TIMEOUT)
    if done.returncode != 0 or "confirmed" not in done.stdout:
        raise ReadmeError(f"{shlex.join(demo)} exited {done.returncode}: {done.stdout}")
    _say(f"  demo found {done.stdout.count('confirmed')} confirmed ports")


def check(keep: bool = False) -> None:
    """Run every check in the module docstring; raise :class:`ReadmeError` on the first miss."""
    readme = README.read_text()
    commands = parse_setup_commands(readme)
    _say(f"command 1: {commands.first}")
    _say(f"command 2: {commands.second}")
    nox = check_second_command(commands, readme, CI_RUN.read_text())
    _say(f"command 2 is what CI runs, and runs {nox}: not run from here")
    for command in (commands.first, commands.second):
        if command not in GETTING_STARTED.read_text():
            raise ReadmeError(f"docs/index.md does not show the README's command: {command}")
    demo = demo_command(readme)

    reason = netlab.unavailable_reason() or ", ".join(netlab.missing_tools()) or None
    work = Path(tempfile.mkdtemp(prefix="xendiscover-readme-"))
    try:
        with contextlib.ExitStack() as stack:
            lab = None if reason else stack.enter_context(netlab.Lab(loss_percent=0))
            if lab is None:
                _say(f"no namespace lab ({reason}): the sweep is replaced by {shlex.join(demo)}")
            else:
                _say(lab.describe())
            home = work / "home"
            home.mkdir()
            for name, env in (("debian", debian_env(home)), ("machine", machine_env())):
                checkout = clone(work / name)
                python3 = _which_python3(env, checkout)
                _say(f"{name}: python3 is {python3}")
                if name == "debian" and not python3.startswith("/usr/bin/python3 "):
                    raise ReadmeError(f"PATH={DEBIAN_PATH} finds {python3}, not Debian's")
                run_setup(commands, checkout, env)
                if lab is not None:
                    run_sweep(commands, checkout, env, lab)
                run_demo(demo, checkout, env, lab)
                _say(f"{name}: command 1 works as written")
    finally:
        if keep:
            _say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--keep", action="store_true", help="keep the clones")
    args = parser.parse_args(argv)
    try:
        check(keep=args.keep)
    except ReadmeError as exc:
        _say(f"FAILED: {exc}")
        return 1
    _say("passed: the README's set-up commands work as written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
