"""
The operator's HTTP endpoint: Prometheus metrics at ``/metrics`` and a
health check at ``/healthz``, served by :mod:`twisted.web` on the server's
own reactor (``--metrics ENDPOINT``).

Gauges are read from the live state when Prometheus scrapes
(:class:`ChatCollector`); counters and histograms come from the
:class:`~chatnet.stats.Stats` the session and the transfers bump.  Nothing is
computed between scrapes, and the hot paths never touch ``prometheus_client``.

Every service has a registry of its own (never the global default one), with
the standard process, platform and garbage-collector collectors, so several
servers can run in one process (as the tests do).  ``prometheus_client.twisted``
is deliberately not used: importing it installs the default reactor.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from chatnet._version import __version__
from chatnet.errors import ErrorCode, FailReason
from chatnet.hub import Hub
from chatnet.stats import Histogram

#: A health check: ``None`` while all is well, else why not (one line).
HealthCheck = Callable[[], "str | None"]


class ClusterStatus(Protocol):
    """
    What cluster mode tells ``/metrics`` and ``/healthz`` about this node's
    link to the cluster, read at each scrape or probe.
    """

    @property
    def up(self) -> bool:
        """Whether the node is registered (its lease live) and Redis answers."""

    @property
    def why(self) -> str:
        """While not :attr:`up`: why not, in one line (``Redis not answering``)."""


class ClusterCollector(Collector):
    """``chatnet_cluster_up``: 1 while ``cluster`` is up, else 0."""

    def __init__(self, cluster: ClusterStatus) -> None:
        self._cluster = cluster

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "chatnet_cluster_up",
            "1 while this node is registered in the cluster and Redis answers, else 0.",
            value=1 if self._cluster.up else 0,
        )


def cluster_health(cluster: ClusterStatus) -> HealthCheck:
    """
    The ``/healthz`` check of cluster mode: fails, with ``cluster
    unavailable: why``, while ``cluster`` is not up (a node that cannot
    reach the cluster serves nobody: take it out of the load balancer).
    """

    def check() -> str | None:
        if cluster.up:
            return None
        why = " ".join(str(cluster.why).split())
        return f"cluster unavailable: {why}" if why else "cluster unavailable"

    return check


class ChatCollector(Collector):
    """Every ``chatnet_*`` metric of one server, read from ``hub`` when scraped."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub

    def collect(self) -> Iterator[Metric]:
        hub = self._hub
        yield from self._gauges(hub)
        yield from self._counters(hub)
        yield from self._histograms(hub)
        info = InfoMetricFamily("chatnet_build", "The chatnet version serving.")
        info.add_metric([], {"version": __version__})
        yield info

    @staticmethod
    def _gauges(hub: Hub) -> Iterator[Metric]:
        directory, transfers, settings = hub.directory, hub.transfers, hub.settings
        unsent = sum(getattr(s.outbox, "unsent", 0) for s in hub.sessions)
        for name, doc, value in (
            ("connections", "Connections open, logged in or not.", len(hub.sessions)),
            ("max_clients", "Connections the server holds at most (--max-clients).",
             settings.max_clients),
            ("users_online", "Users logged in.", len(directory.users)),
            ("rooms", "Rooms with at least one member.", len(directory.rooms)),
            ("uploads_running", "Uploads holding a slot.", transfers.running),
            ("upload_slots", "Upload slots (--upload-slots).", settings.upload_slots),
            ("uploads_queued", "Accepted uploads waiting for a slot.", transfers.waiting),
            ("upload_queue_capacity", "Uploads that may wait for a slot (--upload-queue).",
             settings.upload_queue),
            ("deliveries_streaming", "Files streaming to their addressees.",
             transfers.delivering),
            ("deliveries_waiting",
             "Uploaded files waiting for their addressee's earlier deliveries to end.",
             transfers.deliveries_waiting),
            ("spool_bytes",
             "Bytes the spool holds: uploads with a slot (by declared size) and "
             "files not yet delivered.", transfers.spool_used),
            ("spool_capacity_bytes", "Bytes the spool may hold (--spool-size).",
             transfers.spool_capacity),
            ("output_buffered_bytes",
             "Bytes of control frames queued in chatnet for clients that do not "
             "keep up (beyond what the transports buffer).", unsent),
        ):
            yield GaugeMetricFamily(f"chatnet_{name}", doc, value=value)

    @staticmethod
    def _counters(hub: Hub) -> Iterator[Metric]:
        stats = hub.stats
        messages = CounterMetricFamily(
            "chatnet_messages", "Messages sent, by kind.", labels=["kind"]
        )
        messages.add_metric(["broadcast"], stats.broadcasts)
        messages.add_metric(["whisper"], stats.whispers)
        yield messages
        yield CounterMetricFamily(
            "chatnet_deliveries",
            "Messages handed to recipients (each member a broadcast reached, "
            "each whisper's addressee).", value=stats.deliveries,
        )
        yield _labelled(
            "chatnet_errors", "Error replies sent, by error code.", "code",
            stats.errors_by, (c.value for c in ErrorCode),
        )
        yield _labelled(
            "chatnet_logins", "Login attempts, by result (ok, or the error code).",
            "result", stats.logins_by, ("ok", ErrorCode.AUTH_FAILED.value),
        )
        file_bytes = CounterMetricFamily(
            "chatnet_file_bytes", "File data received from senders (in) and "
            "sent to addressees (out).", labels=["direction"],
        )
        file_bytes.add_metric(["in"], stats.file_bytes_in)
        file_bytes.add_metric(["out"], stats.file_bytes_out)
        yield file_bytes
        yield _labelled(
            "chatnet_transfers", "Finished transfers, by result (delivered, or "
            "the fail reason).", "result", stats.transfers_by,
            ("delivered", *(r.value for r in FailReason)),
        )
        yield CounterMetricFamily(
            "chatnet_slow_consumers", "Connections closed as slow consumers.",
            value=stats.slow_consumers,
        )

    @staticmethod
    def _histograms(hub: Hub) -> Iterator[Metric]:
        stats = hub.stats
        wait = HistogramMetricFamily(
            "chatnet_upload_wait_seconds", "Seconds an accepted upload waited for a slot."
        )
        _add_histogram(wait, [], stats.upload_wait)
        yield wait
        requests = HistogramMetricFamily(
            "chatnet_request_seconds", "Seconds spent handling a request, by type.",
            labels=["type"],
        )
        for kind, histogram in sorted((stats.requests or {}).items()):
            _add_histogram(requests, [kind], histogram)
        yield requests


def _labelled(
    name: str, doc: str, label: str, counts: dict[str, int], always: Iterable[str]
) -> CounterMetricFamily:
    """A counter with one series per label value: ``always`` ones even at 0."""
    family = CounterMetricFamily(name, doc, labels=[label])
    values = dict.fromkeys(always, 0)
    values.update(counts)
    for value, n in sorted(values.items()):
        family.add_metric([value], n)
    return family


def _add_histogram(family: HistogramMetricFamily, labels: list[str], h: Histogram) -> None:
    family.add_metric(labels, [(b, float(n)) for b, n in h.cumulative()], h.sum)


def make_registry(hub: Hub, cluster: ClusterStatus | None = None) -> CollectorRegistry:
    """
    A registry of one server's metrics, with the standard collectors; with
    ``cluster`` (cluster mode), ``chatnet_cluster_up`` too.
    """
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(ChatCollector(hub))
    if cluster is not None:
        registry.register(ClusterCollector(cluster))
    return registry


class MetricsPage(Resource):
    """``/metrics``: the registry in Prometheus' text format."""

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        Resource.__init__(self)
        self._registry = registry

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        return generate_latest(self._registry)


class HealthPage(Resource):
    """
    ``/healthz``: ``200 {"status": "ok"}`` while every check passes, else
    ``503 {"status": "unavailable", "reason": "..."}`` naming the first
    that fails.

    :param checks: called on every request, in order (a cluster adds
        :func:`cluster_health`).
    """

    isLeaf = True

    def __init__(self, checks: list[HealthCheck]) -> None:
        Resource.__init__(self)
        self.checks = checks

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        for check in self.checks:
            reason = check()
            if reason is not None:
                request.setResponseCode(503)
                return _json_line({"status": "unavailable", "reason": reason})
        return _json_line({"status": "ok"})


def _json_line(obj: dict[str, str]) -> bytes:
    return json.dumps(obj).encode("utf-8") + b"\n"


class QuietSite(Site):
    """A :class:`Site` that writes no access log line per scrape."""

    noisy = False

    def __init__(self, resource: Resource) -> None:
        Site.__init__(self, resource)

    def log(self, request: http.Request) -> None:
        pass


def make_site(registry: CollectorRegistry, checks: list[HealthCheck]) -> Site:
    """The HTTP site: ``/metrics`` and ``/healthz``."""
    root = Resource()
    root.putChild(b"metrics", MetricsPage(registry))
    root.putChild(b"healthz", HealthPage(checks))
    return QuietSite(root)
