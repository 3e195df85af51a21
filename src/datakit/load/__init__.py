"""Load tests: Locust workloads against a stack's outputs, held to the stack's baselines.

`runner.run(LoadOptions(...))` is what `datakit load` calls. Inside the Locust processes:
`listeners` (microsecond histograms, concurrency check, result file), `postgres_client`,
`redis_client`, `kafka_client` (per-process clients built on first use). After the run:
`summary`, `baseline_check`, `report` (HTML with plots), `soak` (node drift).
"""
