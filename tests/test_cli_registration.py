"""The .pth bootstrap registers our commands in the real dvc CLI, in fresh interpreters."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dvc_stream.testing.cli import dvc_env, make_config_dir, run_dvc

COMMANDS = ("stream", "append")


@pytest.fixture
def env(tmp_path):
    return dvc_env(config_dir=make_config_dir(tmp_path))


def _python(code, *, env, cwd):
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, check=True
    )


def _listed(help_text):
    return {line.split()[0] for line in help_text.splitlines() if line.startswith("    ")}


def test_dvc_help_lists_commands(env, tmp_path):
    out = run_dvc("--help", cwd=tmp_path, env=env).stdout
    assert set(COMMANDS) <= _listed(out)


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help(env, tmp_path, command):
    proc = run_dvc(command, "--help", cwd=tmp_path, env=env)
    assert proc.stdout.startswith("usage: dvc " + command)


def test_console_script_fallback(env, tmp_path):
    script = Path(sys.executable).with_name("dvc-stream")
    assert script.exists()
    proc = subprocess.run(
        [script, "--help"], env=env, cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert set(COMMANDS) <= _listed(proc.stdout)


def test_broken_plugin_does_not_break_dvc(env, tmp_path):
    site = tmp_path / "site"
    dist = site / "broken_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[dvc.commands]\nbroken = broken_plugin_mod\n")
    (site / "broken_plugin_mod.py").write_text("raise ImportError('this plugin is broken')\n")
    env["PYTHONPATH"] = str(site)

    proc = run_dvc("--help", cwd=tmp_path, env=env)

    assert set(COMMANDS) <= _listed(proc.stdout)
    output = proc.stdout + proc.stderr
    warnings = [line for line in output.splitlines() if "broken" in line]
    assert len(warnings) == 1, output
    assert "WARNING" in warnings[0].upper()


def test_plain_interpreter_does_not_import_dvc(env, tmp_path):
    code = "import sys; print('dvc' in sys.modules, 'dvc.cli.parser' in sys.modules)"
    assert _python(code, env=env, cwd=tmp_path).stdout.split() == ["False", "False"]


def test_bootstrap_is_armed_by_pth(env, tmp_path):
    code = "import sys; print('dvc_stream._bootstrap' in sys.modules)"
    assert _python(code, env=env, cwd=tmp_path).stdout.split() == ["True"]


def test_install_twice_registers_once(env, tmp_path):
    code = textwrap.dedent(
        """
        import dvc_stream._bootstrap as boot
        boot.install(); boot.install()
        import dvc.cli.parser as parser
        boot.install(); boot.register_commands()
        names = [m.__name__ for m in parser.COMMANDS]
        print(names.count("dvc_stream.commands.stream"), names.count("dvc_stream.commands.append"))
        """
    )
    assert _python(code, env=env, cwd=tmp_path).stdout.split() == ["1", "1"]


def test_cli_hooks_run_once_and_a_broken_one_does_not_break_dvc(env, tmp_path):
    site = tmp_path / "site"
    dist = site / "hook_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hook-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[dvc.cli_hooks]\ncounted = hook_plugin_mod:counted\nbroken = hook_plugin_mod:broken\n"
    )
    (site / "hook_plugin_mod.py").write_text(
        "import sys\n"
        "def counted():\n    print('hook ran', file=sys.stderr)\n"
        "def broken():\n    raise RuntimeError('this hook is broken')\n"
    )
    env["PYTHONPATH"] = str(site)

    proc = run_dvc("--help", cwd=tmp_path, env=env)

    assert set(COMMANDS) <= _listed(proc.stdout)
    assert proc.stderr.count("hook ran") == 1, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "broken" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0].upper(), proc.stderr


@pytest.mark.parametrize("first_import", ["dvc.cli.parser", "dvc.repo", "dvc.api"])
def test_partial_workspace_patches_are_installed(env, tmp_path, first_import):
    """Through the CLI's parser and through DVC's Python API alike."""
    code = textwrap.dedent(
        f"""
        import {first_import}
        from dvc.output import Output
        from dvc_stream.workspace import dvc_patches
        print(dvc_patches.installed(), Output.save.__module__)
        """
    )
    out = _python(code, env=env, cwd=tmp_path).stdout.split()
    assert out == ["True", "dvc_stream.workspace.dvc_patches"]


def test_repo_hooks_run_once_and_a_broken_one_does_not_break_dvc(env, tmp_path):
    site = tmp_path / "site"
    dist = site / "repo_hook_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: repo-hook-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[dvc.repo_hooks]\ncounted = repo_hook_mod:counted\nbroken = repo_hook_mod:broken\n"
    )
    (site / "repo_hook_mod.py").write_text(
        "import sys\n"
        "def counted():\n    print('repo hook ran', file=sys.stderr)\n"
        "def broken():\n    raise RuntimeError('this hook is broken')\n"
    )
    env["PYTHONPATH"] = str(site)
    code = "import dvc.repo, dvc.api\nfrom dvc.repo import Repo\nprint(Repo.__name__)"
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout.split() == ["Repo"], proc.stderr
    assert proc.stderr.count("repo hook ran") == 1, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "broken" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0].upper(), proc.stderr
