"""Glue between Airflow and the package: assets, task bodies, the local runner."""
