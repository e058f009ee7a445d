"""Key rotations in a machine take pre-generated keys: the same ones in every example for a
service the machine runs (fresh each example), always new ones for a service in another
process (whose JWKS cache outlives examples)."""

from __future__ import annotations

import functools
from typing import Any, ClassVar

from jitchaos import AuthChaosMachine, Policy
from jitchaos.known_bugs import jwks_cache


class Rotating(AuthChaosMachine):
    service = staticmethod(functools.partial(jwks_cache.make_app, fixed=True))
    routes: ClassVar[dict[str, set[str]]] = {"GET /read": {"read"}}
    policy = Policy(staleness=30)


def _kids_after_rotations(machine_cls: type[Any]) -> list[str]:
    machine = machine_cls()
    try:
        kids = [machine.world.signing_keys.current.kid]
        machine.rotate_keys("add")
        kids.append(machine.world.signing_keys.current.kid)
        machine.rotate_keys("add")
        kids.append(machine.world.signing_keys.current.kid)
        return kids
    finally:
        machine.teardown()


def test_each_example_rotates_through_the_same_distinct_keys() -> None:
    first = _kids_after_rotations(Rotating)
    second = _kids_after_rotations(Rotating)
    assert len(set(first)) == 3  # the first key and two distinct new ones
    assert first == second  # generated once per run, handed out in order


def test_rekey_takes_a_pool_key_and_keeps_the_kid() -> None:
    machine = Rotating()
    try:
        ring = machine.world.signing_keys
        before = ring.current
        machine.rotate_keys("rekey")
        assert ring.current.kid == before.kid
        assert ring.current.private_key is not before.private_key
    finally:
        machine.teardown()


def test_a_pool_that_must_not_reuse_always_generates() -> None:
    from jitchaos._worlds import _KeyPool

    pool = _KeyPool(reuse=False)
    first = pool.take("ES256")
    pool.restart()
    assert pool.take("ES256").kid != first.kid
    reusing = _KeyPool(reuse=True)
    kept = reusing.take("ES256")
    assert reusing.take("ES256").kid != kept.kid
    reusing.restart()
    assert reusing.take("ES256").kid == kept.kid


def test_a_service_in_another_process_gets_new_keys_every_example() -> None:
    class Remote(AuthChaosMachine):
        service = "http://127.0.0.1:9"  # not contacted: no rule runs
        routes: ClassVar[dict[str, set[str]]] = {"GET /read": {"read"}}

    kids = []
    for _ in range(2):
        machine = Remote()
        try:
            machine.rotate_keys("add")
            kids.append(machine.world.signing_keys.current.kid)
        finally:
            machine.teardown()
    assert kids[0] != kids[1]
