"""Property tests of the incident and assignment state machines (pure, no server)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from server.incidents import states

status = st.sampled_from(states.STATUSES)


@given(st.lists(status, max_size=30))
def test_any_walk_of_legal_moves_only_goes_forward_and_stamps_every_stage_once(targets: list[str]) -> None:
    current, stamped = "reported", set()
    for target in targets:
        if not states.can_move(current, target):
            continue
        stamps = states.stamps_for(current, target)
        assert stamped.isdisjoint(stamps), "a stage is stamped twice"
        stamped.update(stamps)
        if target != "cancelled":
            assert states.FLOW.index(target) > states.FLOW.index(current)
        current = target
    # every stage up to the current one carries a timestamp, skipped ones included
    if current in states.FLOW:
        expected = {states.STAGE_STAMP[s] for s in states.FLOW[1 : states.FLOW.index(current) + 1]}
        assert stamped == expected
    else:
        assert "cancelled_at" in stamped


@given(status, status)
def test_terminal_states_have_no_way_out_and_cancel_is_open_only(current: str, target: str) -> None:
    if current in states.TERMINAL:
        assert not states.can_move(current, target)
    if target == "cancelled":
        assert states.can_move(current, target) == (current in states.OPEN)
    if states.can_move(current, target) and target != "cancelled":
        assert states.FLOW.index(target) > states.FLOW.index(current)
    if target == "closed":
        assert states.can_move(current, target) == (current == "resolved")


@given(status, status)
def test_advance_never_moves_backwards_or_out_of_terminal(current: str, floor: str) -> None:
    target = states.advance(current, floor)
    if target is not None:
        assert states.can_move(current, target) and target == floor
    if current in states.TERMINAL or current == "resolved":
        assert target is None


@given(st.sampled_from(sorted(states.OPEN)), st.sampled_from(states.FLOW))
def test_closed_is_reachable_from_every_open_state(start: str, via: str) -> None:
    # resolved, and then closed, are always next steps from an open state
    assert states.can_move(start, "resolved") and states.can_move("resolved", "closed")
    if states.can_move(start, via) and via in states.OPEN:
        assert states.can_move(via, "resolved")


def test_illegal_examples() -> None:
    assert not states.can_move("on_scene", "dispatched")
    assert not states.can_move("closed", "reported")
    assert not states.can_move("reported", "closed")
    assert not states.can_move("resolved", "cancelled")


@given(st.sampled_from(states.ASSIGNMENT_STATUSES), st.sampled_from(states.ASSIGNMENT_STATUSES))
def test_assignment_machine(current: str, target: str) -> None:
    ok = states.can_move_assignment(current, target)
    if current in ("declined", "released"):
        assert not ok
    if ok and target not in ("declined", "released"):
        order = ("pending", "accepted", "en_route", "on_scene")
        assert order.index(target) > order.index(current)
    if current in states.ASSIGNMENT_ACTIVE and target == "released":
        assert ok
    if target == "declined":
        assert ok == (current == "pending")
