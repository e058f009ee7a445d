"""The fault catalogue: one module per fault, a literal registry, faults as replayable data."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jitchaos import InvalidArgument
from jitchaos.faults import (
    FAULTS,
    ClockSkew,
    Expire,
    HoldRefresh,
    Latency,
    Narrow,
    Outage,
    Revoke,
    RotateKeys,
)
from tests.common.cli import run_cli

FAULTS_DIR = Path(__file__).resolve().parents[2] / "jitchaos" / "faults"


def test_one_module_per_registered_fault() -> None:
    modules = sorted(
        p.stem for p in FAULTS_DIR.glob("_*.py") if p.stem not in ("__init__", "_base")
    )
    assert modules == sorted(f"_{name}" for name in FAULTS)
    for name, fault in FAULTS.items():
        assert fault.kind == name
        module = importlib.import_module(f"jitchaos.faults._{name}")
        assert getattr(module, fault.__name__) is fault
        doc = module.__doc__ or ""
        assert doc.startswith(f"{name}:"), name  # what it does ...
        assert "Exposes" in doc, name  # ... and which bugs it exposes


def test_the_registry_is_a_literal() -> None:
    tree = ast.parse((FAULTS_DIR / "__init__.py").read_text())
    (assignment,) = [
        n
        for n in tree.body
        if isinstance(n, ast.AnnAssign) and getattr(n.target, "id", None) == "FAULTS"
    ]
    assert isinstance(assignment.value, ast.Dict)


@pytest.mark.parametrize("fault", FAULTS.values())
def test_faults_are_frozen_values_with_defaults(fault: type) -> None:
    value = fault()
    assert attrs.has(fault)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(value, attrs.fields(fault)[0].name, None)
    assert hash(value) == hash(fault())


EXAMPLES = [
    Expire(),
    Expire(issued_ttl=5),
    Expire(target="grant:g1"),
    Revoke(target="principal:subject:alice", delay=2.5),
    Revoke(target="token:" + "a" * 16),
    Narrow(scopes=frozenset({"read"})),
    Narrow(),
    RotateKeys(mode="remove-old"),
    Outage(endpoint="jwks", mode="empty-keys", duration=1.0),
    Latency(endpoint="introspection", seconds=0.5),
    ClockSkew(seconds=-3.0, exp_at_leeway=True),
    HoldRefresh(count=3),
]


@pytest.mark.parametrize("fault", EXAMPLES, ids=repr)
def test_repr_is_a_valid_constructor_call(fault: object) -> None:
    namespace = {cls.__name__: cls for cls in FAULTS.values()}
    assert eval(repr(fault), namespace) == fault  # noqa: S307 - our own reprs


@pytest.mark.parametrize(
    ("build", "name"),
    [
        (lambda: Expire(target="everything"), "target"),
        (lambda: Expire(issued_ttl=0), "issued_ttl"),
        (lambda: Revoke(delay=-1), "delay"),
        (lambda: Revoke(delay=float("nan")), "delay"),
        (lambda: Narrow(scopes="read"), "scopes"),
        (lambda: Narrow(scopes={"two words"}), "scopes"),
        (lambda: RotateKeys(mode="shuffle"), "mode"),  # type: ignore[arg-type]
        (lambda: Outage(endpoint="db"), "endpoint"),  # type: ignore[arg-type]
        (lambda: Outage(mode="fire"), "mode"),  # type: ignore[arg-type]
        (lambda: Latency(seconds=float("inf")), "seconds"),
        (lambda: ClockSkew(seconds="5"), "seconds"),  # type: ignore[arg-type]
        (lambda: HoldRefresh(count=1), "count=1 must be >= 2"),
        (lambda: Revoke(delay=10**400), "delay="),  # no OverflowError
    ],
)
def test_bad_values_name_the_field(build: object, name: str) -> None:
    # InvalidArgument, which every entry point catches: attrs's own ge() raised a ValueError
    # that went through the control API as a 500.
    with pytest.raises(InvalidArgument, match=name):
        build()  # type: ignore[operator]


@pytest.mark.parametrize("fault", FAULTS.values())
def test_from_type_builds_valid_faults(fault: type) -> None:
    @given(st.from_type(fault))
    def check(value: object) -> None:
        assert isinstance(value, fault)

    check()


def test_faults_command_lists_every_fault() -> None:
    result = run_cli("faults")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(FAULTS)
    assert all(len(line.split(None, 1)[1]) > 10 for line in lines)


@pytest.mark.parametrize("first", ["import hypothesis", "import jitchaos"])
def test_from_type_works_whichever_is_imported_first(first: str) -> None:
    import subprocess
    import sys

    program = (
        f"{first}\nfrom hypothesis import strategies as st, find\n"
        "from jitchaos.faults import Outage\n"
        "print(repr(find(st.from_type(Outage), lambda f: f.duration > 10)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Outage(")


def test_a_fault_is_one_file_the_registry_anyfault_and_strategies_agree() -> None:
    import random
    import sys
    import typing

    from hypothesis import find
    from hypothesis import strategies as st

    from jitchaos import Schedule
    from jitchaos.faults import FAULTS, AnyFault
    from jitchaos.strategies import faults

    assert set(typing.get_args(AnyFault)) == set(FAULTS.values())
    for kind, fault in FAULTS.items():
        assert fault.kind == kind
        source = sys.modules[fault.__module__].__file__
        assert source is not None
        assert source.endswith(f"_{kind}.py")  # its own file
        # Its strategy, st.from_type and the registry's strategy draw the same class...
        assert isinstance(find(fault.strategy(), lambda _: True), fault)
        assert isinstance(find(st.from_type(fault), lambda _: True), fault)
        assert isinstance(find(faults(kinds=[kind]), lambda _: True), fault)
        # ... and its seeded draw is the same value for the same generator.
        first = fault.seeded(random.Random(3), "token")  # noqa: S311
        assert first == fault.seeded(random.Random(3), "token")  # noqa: S311
        assert Schedule.from_seed(1, rate=1.0, faults=[kind]).entries[0].fault.kind == kind
    with pytest.raises(InvalidArgument, match="no_such_fault"):
        Schedule.from_seed(1, rate=1.0, faults=["no_such_fault"])
    # No import cycle: the catalogue imports neither the strategies nor the schedules (which
    # import it), not even inside a function.
    package = Path(sys.modules["jitchaos.faults"].__file__ or "").parent
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                name = node.module or ""
                assert not name.startswith(("jitchaos.strategies", "jitchaos._schedule")), (
                    f"{path.name} imports {name}"
                )
