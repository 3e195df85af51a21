-- datakit:lock-timeout=5s
DROP TABLE ms_framework.aggregate_snapshots;
DROP TABLE ms_framework.event_store;
