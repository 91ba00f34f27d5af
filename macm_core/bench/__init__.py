"""Benchmarks behind ``macm bench``: one JSON object per measurement, then a summary line."""
