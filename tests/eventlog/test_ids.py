"""UUIDv7 event ids: valid, time-ordered, unique, across clock steps and forks."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from eventlog.ids import uuid7, uuid7s


def test_uuid7_is_a_valid_time_ordered_unique_uuid() -> None:
    ids = [uuid7() for _ in range(20_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    for text in ids[::97] + ids[-3:]:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
        assert str(parsed) == text


def test_uuid7_random_part_uses_every_digit_in_every_position() -> None:
    tails = [uuid7()[-17:] for _ in range(4_000)]  # several pools of random parts
    assert all(tail[4] == "-" for tail in tails)
    assert {tail[0] for tail in tails} == set("89ab")  # the variant bits, then 2 random ones
    for column in [*range(1, 4), *range(5, 17)]:
        assert {tail[column] for tail in tails} == set("0123456789abcdef"), column


def test_uuid7_stays_ordered_when_the_clock_stops_or_steps_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import eventlog.ids

    base = time.time_ns() // 1_000_000 + 1_000_000  # ahead of every id made so far
    now = [base * 1_000_000]
    monkeypatch.setattr(eventlog.ids, "_time_ns", lambda: now[0])
    for name in ("_last_ms", "_seq", "_prefix"):  # restored after the test
        monkeypatch.setattr(eventlog.ids, name, getattr(eventlog.ids, name))
    ids = [uuid7() for _ in range(5_000)]  # more than one millisecond's 4,096 counters
    now[0] -= 3_000_000_000  # the clock steps back 3 s
    ids += [uuid7() for _ in range(100)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    millis = {uuid.UUID(i).int >> 80 for i in ids}
    assert millis == {base, base + 1}  # the second one borrowed


def test_uuid7_carries_the_clock_in_its_first_48_bits() -> None:
    before = time.time_ns() // 1_000_000
    ms = uuid.UUID(uuid7()).int >> 80
    assert before <= ms <= time.time_ns() // 1_000_000 + 1


def test_a_forked_child_does_not_repeat_its_parents_random_parts() -> None:
    uuid7()  # the parent now holds a pool of random parts
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.write(write, uuid7()[-17:].encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child_suffix = os.read(read, 64).decode()
    os.close(read)
    parent_suffixes = {uuid7()[-17:] for _ in range(600)}
    assert len(child_suffix) == 17
    assert child_suffix not in parent_suffixes


def test_uuid7s_continues_the_sequence_of_uuid7_in_order() -> None:
    ids = [uuid7(), *uuid7s(3), uuid7(), *uuid7s(1_000), *uuid7s(1), uuid7()]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids) == 1_007
    for text in ids[::37]:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
        assert str(parsed) == text


def test_uuid7s_borrows_the_next_millisecond_when_the_counter_runs_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import eventlog.ids

    base = time.time_ns() // 1_000_000 + 2_000_000  # ahead of every id made so far
    monkeypatch.setattr(eventlog.ids, "_time_ns", lambda: base * 1_000_000)
    for name in ("_last_ms", "_seq", "_prefix"):  # restored after the test
        monkeypatch.setattr(eventlog.ids, name, getattr(eventlog.ids, name))
    ids = [uuid7(), *uuid7s(4_095), *uuid7s(5_000), uuid7()]  # 10,097 in a stopped clock
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    millis = [uuid.UUID(i).int >> 80 for i in ids]
    assert (millis[0], millis[4_095], millis[4_096], millis[-1]) == (base, base, base + 1, base + 2)
    assert uuid7s(0) == []


def test_uuid7s_random_part_uses_every_digit_in_every_position() -> None:
    tails = [i[-17:] for i in uuid7s(4_000)]
    assert all(tail[4] == "-" for tail in tails)
    assert {tail[0] for tail in tails} == set("89ab")
    for column in [*range(1, 4), *range(5, 17)]:
        assert {tail[column] for tail in tails} == set("0123456789abcdef"), column
