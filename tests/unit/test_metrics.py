"""The counters of :mod:`chatnet.stats` and their Prometheus view, :mod:`chatnet.metrics`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from support.chat import logged_in, new_server
from twisted.web.test.requesthelper import DummyRequest

from chatnet.metrics import HealthPage, MetricsPage, make_registry
from chatnet.stats import Histogram, Stats
from chatnet.testing import TestServer


@pytest.fixture
def server(tmp_path: Path) -> TestServer:
    return new_server(tmp_path / "spool", upload_slots=1, room_capacity=3)


def value(registry: object, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)  # type: ignore[attr-defined, no-any-return]


def test_histogram_buckets_are_inclusive_and_cumulative() -> None:
    """A value on a bound counts in that bound's bucket (``le``); the series is cumulative."""
    h = Histogram((1.0, 2.0))
    for v in (0.5, 1.0, 1.5, 3.0):
        h.observe(v)
    assert h.cumulative() == [("1.0", 2), ("2.0", 3), ("+Inf", 4)]
    assert h.count == 4 and h.sum == 6.0


def test_requests_untimed_by_default() -> None:
    """Without metrics, requests cost no clock reads: there is nowhere to put them."""
    stats = Stats()
    stats.request("ping", 0.001)
    assert stats.requests is None


def test_one_request_in_n_is_timed(server: TestServer) -> None:
    """With sampling, a session's first request and then every n-th one are timed."""
    server.hub.stats = stats = Stats(time_requests=True, sample_every=4)
    (a,) = logged_in(server, "alice")
    for _ in range(9):
        a.request("ping")
    assert stats.requests is not None
    # login, then pings 4 and 8 of 9
    assert stats.requests["login"].count == 1 and stats.requests["ping"].count == 2


def test_gauges_read_live_state(server: TestServer) -> None:
    """Connections, users, rooms and upload figures are what the server holds now."""
    registry = make_registry(server.hub)
    a, b, _ = logged_in(server, "alice", "bob", "carol", room="r")
    server.connect()  # not logged in
    d = logged_in(server, "dave")[0]
    d.request("join", room="other")
    assert value(registry, "chatnet_connections") == 5
    assert value(registry, "chatnet_users_online") == 4
    assert value(registry, "chatnet_rooms") == 2
    assert a.request("sendfile", to="bob", name="a.txt", size=10)["type"] == "ok"
    assert b.request("sendfile", to="alice", name="b.txt", size=10)["type"] == "ok"
    server.advance()
    assert value(registry, "chatnet_uploads_running") == 1
    assert value(registry, "chatnet_uploads_queued") == 1
    assert value(registry, "chatnet_upload_queue_capacity") == 100
    assert value(registry, "chatnet_spool_bytes") == 10  # the running upload, by declared size
    assert value(registry, "chatnet_spool_capacity_bytes") == server.transfers.budget.total
    d.lose()
    assert value(registry, "chatnet_connections") == 4
    assert value(registry, "chatnet_rooms") == 1


def test_counters_follow_the_traffic(server: TestServer) -> None:
    """Messages, deliveries, errors, logins, transfers and file bytes count what happened."""
    registry = make_registry(server.hub)
    a, b, c = logged_in(server, "alice", "bob", "carol", room="r")
    x = server.connect()
    assert x.request("login", username="alice")["code"] == "username-taken"
    a.request("broadcast", text="hi")  # 2 deliveries
    b.request("broadcast", text="hello")  # 2 more
    a.request("whisper", to="carol", text="psst")
    a.request("whisper", to="nobody", text="psst")
    assert value(registry, "chatnet_messages_total", kind="broadcast") == 2
    assert value(registry, "chatnet_messages_total", kind="whisper") == 1
    assert value(registry, "chatnet_deliveries_total") == 5
    assert value(registry, "chatnet_errors_total", code="no-such-user") == 1
    assert value(registry, "chatnet_errors_total", code="username-taken") == 1
    assert value(registry, "chatnet_errors_total", code="room-full") == 0  # present before it happens
    assert value(registry, "chatnet_logins_total", result="ok") == 3
    assert value(registry, "chatnet_logins_total", result="username-taken") == 1

    data = b"z" * 100_000
    t = a.request("sendfile", to="bob", name="f.bin", size=len(data))["transfer"]
    server.advance(0.3)
    a.send_data(t, data[:60_000])
    a.send_data(t, data[60_000:])
    assert b.history("file-end")
    t2 = a.request("sendfile", to="carol", name="g.bin", size=5)["transfer"]
    a.request("cancel", transfer=t2)
    assert value(registry, "chatnet_file_bytes_total", direction="in") == len(data)
    assert value(registry, "chatnet_file_bytes_total", direction="out") == len(data)
    assert value(registry, "chatnet_transfers_total", result="delivered") == 1
    assert value(registry, "chatnet_transfers_total", result="cancelled") == 1
    assert value(registry, "chatnet_transfers_total", result="shutdown") == 0
    assert value(registry, "chatnet_upload_wait_seconds_count") == 1
    assert value(registry, "chatnet_upload_wait_seconds_bucket", le="0.01") == 0
    assert value(registry, "chatnet_upload_wait_seconds_bucket", le="0.5") == 1
    assert value(registry, "chatnet_request_seconds_count", type="broadcast") == 2
    assert value(registry, "chatnet_request_seconds_count", type="login") == 4


def test_slow_consumer_counted(tmp_path: Path) -> None:
    """A connection dropped for unsent output is one slow consumer."""
    server = new_server(tmp_path / "spool", max_output=1000)
    registry = make_registry(server.hub)
    a, b = logged_in(server, "alice", "bob", room="r")
    assert b.transport.producer is not None
    b.transport.producer.pauseProducing()  # bob's transport is full
    for _ in range(5):
        a.request("broadcast", text="x" * 400)
    assert value(registry, "chatnet_slow_consumers_total") == 1


def test_output_buffered_bytes(server: TestServer) -> None:
    """Frames queued for a client whose transport has paused us are buffered bytes."""
    registry = make_registry(server.hub)
    a, b = logged_in(server, "alice", "bob", room="r")
    assert b.transport.producer is not None
    b.transport.producer.pauseProducing()
    a.request("broadcast", text="x" * 100)
    assert 100 < value(registry, "chatnet_output_buffered_bytes") < 300  # type: ignore[operator]


def test_exposition_has_the_standard_collectors(server: TestServer) -> None:
    """The text format carries chatnet's families and the process and Python ones."""
    text = generate_latest(make_registry(server.hub)).decode()
    for name in ("chatnet_connections ", "chatnet_messages_total{kind=\"broadcast\"}",
                 "chatnet_build_info{version=", "python_info{", "python_gc_objects_collected_total"):
        assert name in text
    assert "process_cpu_seconds_total" in text or not Path("/proc/self/stat").exists()


def test_metrics_page_serves_text_format(server: TestServer) -> None:
    """``/metrics`` answers with Prometheus' content type."""
    request = DummyRequest([b""])
    body = MetricsPage(make_registry(server.hub)).render_GET(request)  # type: ignore[arg-type]
    assert b"chatnet_users_online 0.0" in body
    content_type = request.responseHeaders.getRawHeaders(b"content-type")
    assert content_type is not None and content_type[0].startswith(b"text/plain")


def test_health_page() -> None:
    """200 and ok while every check passes; 503 naming the first failing check."""
    reasons: list[str | None] = [None, None]
    page = HealthPage([lambda: reasons[0], lambda: reasons[1]])
    request = DummyRequest([b""])
    assert json.loads(page.render_GET(request)) == {"status": "ok"}  # type: ignore[arg-type]
    assert request.responseCode in (None, 200)
    reasons[1] = "cluster unreachable"
    reasons[0] = "shutting down"
    request = DummyRequest([b""])
    body = page.render_GET(request)  # type: ignore[arg-type]
    assert request.responseCode == 503
    assert body.count(b"\n") == 1
    assert json.loads(body) == {"status": "unavailable", "reason": "shutting down"}
