"""Tests for :mod:`chatnet.client.reconnect`: the policy's states, without a reactor."""

import pytest

from chatnet.client.reconnect import (
    Attempt,
    Backoff,
    GiveUp,
    Policy,
    Server,
    parse_servers,
    reconnected_text,
    status_text,
    waiting_text,
)

A, B, C = Server("a", 1), Server("b", 2), Server("c", 3)


class Time:
    """The injected clock."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def policy(*servers: Server, chance: float = 0.0, **options: float) -> tuple[Policy, Time]:
    t = Time()
    return Policy(list(servers), t, random=lambda: chance, **options), t  # type: ignore[arg-type]


def test_backoff_doubles_to_the_cap_with_jitter() -> None:
    """1, 2, 4 ... 30 s nominal; the jitter takes up to half off, never adds."""
    b = Backoff()
    assert [b.delay(n, 0.0) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert b.delay(0, 0.999) == pytest.approx(0.5, abs=0.01)
    assert b.delay(1000, 0.5) == 22.5  # capped, no overflow
    assert Backoff(first=0.1, cap=1).delay(5, 0) == 1


def test_lost_then_failures_on_one_server() -> None:
    """One server: tried again after 1 s, then 2, 4, 8 ... 30, 30."""
    p, _ = policy(A)
    assert p.lost() == Attempt(A, 1.0, 1)
    delays = []
    for _ in range(7):
        step = p.failed()
        assert isinstance(step, Attempt) and step.server == A
        delays.append(step.delay)
    assert delays == [2, 4, 8, 16, 30, 30, 30]


def test_failure_moves_to_the_next_server_at_once() -> None:
    """A refused server: the next one immediately; a full round makes the pause grow."""
    p, _ = policy(A, B, C)
    assert p.lost() == Attempt(A, 1.0, 1)
    assert p.failed() == Attempt(B, 0.0, 2)
    assert p.failed() == Attempt(C, 0.0, 3)
    assert p.failed() == Attempt(A, 2.0, 4)  # round over: back to the first, longer
    assert p.failed() == Attempt(B, 0.0, 5)
    p.connected()  # B works
    assert p.server == B
    assert p.lost() == Attempt(B, 1.0, 1)  # B again first, pauses afresh
    assert p.failed() == Attempt(C, 0.0, 2)
    assert p.failed() == Attempt(A, 0.0, 3)
    assert p.failed() == Attempt(B, 2.0, 4)


def test_name_taken_waits_on_the_same_server() -> None:
    """The old session still holds the name: the same server, at least taken_wait later."""
    p, _ = policy(A, B)
    p.lost()
    assert p.name_taken() == Attempt(A, 5.0, 2)
    for _ in range(4):
        p.name_taken()
    assert p.name_taken() == Attempt(A, 30.0, 7)


def test_retry_now() -> None:
    """``/reconnect``: the current server at once; the pauses carry on from where they were."""
    p, _ = policy(A)
    p.lost()
    p.failed()
    assert p.retry_now() == Attempt(A, 0.0, 3)
    assert p.failed() == Attempt(A, 4.0, 4)


def test_gives_up_after_the_limit() -> None:
    """With give_up_after, the first failure past it gives up; success resets the clock."""
    p, t = policy(A, give_up_after=60.0)
    p.lost()
    t.now += 59
    assert isinstance(p.failed(), Attempt)
    t.now += 1
    step = p.failed()
    assert isinstance(step, GiveUp) and step.why == "no working connection for 60 s"
    p.connected()
    p.lost()
    t.now += 30
    assert isinstance(p.failed(), Attempt)


def test_never_gives_up_by_default() -> None:
    p, t = policy(A)
    p.lost()
    t.now += 10**6
    assert isinstance(p.failed(), Attempt)


def test_jitter_is_drawn_each_time() -> None:
    draws = iter([0.0, 1.0 - 1e-9, 0.5])
    p = Policy([A], Time(), random=lambda: next(draws))
    assert [p.lost().delay, round(p.failed().delay, 3), p.failed().delay] == [1.0, 1.0, 3.0]  # type: ignore[union-attr]


def test_no_servers() -> None:
    with pytest.raises(ValueError):
        Policy([], Time())


@pytest.mark.parametrize(
    "words, expected",
    [
        ([], ["127.0.0.1:8080"]),
        (["chat.example"], ["chat.example:8080"]),
        (["chat.example", "9000"], ["chat.example:9000"]),
        (["h1:8080", "h2:8081"], ["h1:8080", "h2:8081"]),
        (["h1:8080", "h2"], ["h1:8080", "h2:8080"]),
        (["h1", "h2", "h3:1"], ["h1:8080", "h2:8080", "h3:1"]),
        (["[::1]:9000", "::1"], ["[::1]:9000", "[::1]:8080"]),
        (["[::1]"], ["[::1]:8080"]),
    ],
)
def test_parse_servers(words: list[str], expected: list[str]) -> None:
    """Both forms: ``HOST [PORT]`` and ``host:port ...``."""
    assert [str(s) for s in parse_servers(words, "127.0.0.1", 8080)] == expected


@pytest.mark.parametrize(
    "words, message",
    [
        (["h", "x"], "port 'x' is not a number"),
        (["h", "0"], "port 0 is out of range"),
        (["h:1", "h:70000"], "port 70000 is out of range"),
        (["h:1", ":2"], "':2': no host"),
        (["[::1]x"], "expected [address]:port"),
        # HOST PORT mixed with host:port: the port is no host
        (["127.0.0.1", "8081", "h:2"], "'8081' is a port, not a host"),
        (["8081"], "'8081' is a port, not a host: give several servers as host:port"),
    ],
)
def test_parse_servers_refuses(words: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_servers(words, "127.0.0.1", 8080)


def test_texts() -> None:
    """What the front ends say."""
    assert reconnected_text(A, "alice", "groupA", None) == "reconnected to a:1 as alice, back in groupA"
    assert reconnected_text(A, "alice", None, None) == "reconnected to a:1 as alice"
    assert reconnected_text(A, "alice", "g", "Room 'g' is full") == (
        "reconnected to a:1 as alice; could not rejoin g: Room 'g' is full")
    assert waiting_text("lost", Attempt(A, 12.4, 1)) == (
        "lost; reconnecting to a:1 in 12 s (/reconnect to try now)")
    assert waiting_text("refused", Attempt(A, 0.0, 1)) == "refused; reconnecting to a:1 now"
    assert status_text(A, 3.21) == "DISCONNECTED, retry in 3.2 s (Ctrl+R now)"
    assert status_text(A, None) == "DISCONNECTED, connecting to a:1..."
