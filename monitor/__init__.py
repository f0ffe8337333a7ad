"""Realized accuracy of the served champion: D+1 MAE over recent sessions vs the naive forecast.

A component of its own (its own process, port and ServiceMonitor): a failing data source shows up
here as stale gauges and failed runs, never in inference.
"""
