"""The wheel installs into a fresh virtual environment and imports without the source tree."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_installs_and_imports_in_a_fresh_venv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(dist),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("jitchaos-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "jitchaos/py.typed" in names
    assert "jitchaos/strategies/__init__.py" in names
    assert not any(n.startswith(("tests/", "strategies/", "examples/")) for n in names)
    # The known-bug services ship in the package (the demo and python -m jitchaos.known_bugs).
    assert "jitchaos/known_bugs/introspection_cache.py" in names
    assert "jitchaos/known_bugs/__main__.py" in names

    env = tmp_path / "fresh"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"{wheel}[notebook,pytest]"],
        check=True,
        capture_output=True,
        timeout=900,
    )
    probe = (
        "import jitchaos, jitchaos.strategies, jitchaos.idp; "
        "print(jitchaos.__file__); print(jitchaos.strategies.scopes)"
    )
    result = subprocess.run(
        [str(python), "-c", probe],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert str(env) in result.stdout.splitlines()[0]  # the installed copy, not the source tree
    cli = subprocess.run(
        [str(env / "bin" / "jitchaos"), "audit", "/nonexistent"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 2
    assert "does not exist" in cli.stderr

    # Every listed demo runs from the wheel, outside any checkout.
    jitchaos = str(env / "bin" / "jitchaos")
    listed = subprocess.run(
        [jitchaos, "demo", "--list"], capture_output=True, text=True, timeout=60, check=True
    )
    demos = [line.split()[0] for line in listed.stdout.splitlines()]
    assert len(demos) >= 8
    for name in demos:
        shown = subprocess.run(
            [jitchaos, "demo", name, "--notebooks", str(tmp_path / "nb")],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=600,
        )
        assert shown.returncode == 0, (name, shown.stdout[-2000:], shown.stderr[-2000:])
        assert "found at example" in shown.stdout, (name, shown.stdout[-2000:])
        assert "the correct twin" in shown.stdout
    # A known-bug service serves from the wheel in its own process.
    usage = subprocess.run(
        [str(python), "-m", "jitchaos.known_bugs", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert usage.returncode == 0
    assert "introspection_cache" in usage.stdout

    # The README's quickstart and every python block of docs/ run from the wheel too.
    import re

    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    blocks = [
        (page.name, block)
        for page in pages
        for block in re.findall(
            r"```python(?: title=\S+)?\n(.*?)```", page.read_text(), flags=re.DOTALL
        )
    ]
    assert len(blocks) >= 8
    for number, (page, block) in enumerate(blocks):
        script = tmp_path / f"snippet_{number}.py"
        script.write_text(block)
        ran = subprocess.run(
            [str(python), str(script)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=600,
        )
        assert ran.returncode == 0, (page, block[:300], ran.stderr[-2000:])
