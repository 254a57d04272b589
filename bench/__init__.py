"""Benchmarks; `stun_load` is the load generator they and the metrics tests share."""
