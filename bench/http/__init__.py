"""The HTTP benchmark: ``authward serve`` against a floor app, driven over real sockets.

Spec: authward GitHub issue 10 item 1 (token endpoint throughput and latency against a floor,
a wrong-secret flood, a soak); RFC 6749 §4.1.3, §4.4, §6 and RFC 7662 §2 (the measured
requests); RFC 7523 §2.2 (private_key_jwt); RFC 9449 §4, §5 (DPoP refresh).

``python -m bench http`` (see :mod:`bench.http.cli`) starts both servers on SQLite and on
PostgreSQL, mints what the requests need through authward's real pages before timing, runs the
load driver (:mod:`bench.http.driver`) in its own process for every scenario and concurrency,
writes ``bench/results/http.json`` and renders the tables of ``docs/performance.md``.
"""
