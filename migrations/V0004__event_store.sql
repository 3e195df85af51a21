-- The event store (one version per aggregate event) and aggregate snapshots.
-- datakit:lock-timeout=5s
CREATE TABLE ms_framework.event_store (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    aggregate_id   uuid NOT NULL,
    aggregate_type varchar(100) NOT NULL,
    event_type     varchar(100) NOT NULL,
    event_data     jsonb NOT NULL,
    event_version  integer NOT NULL CHECK (event_version > 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    correlation_id uuid,
    causation_id   uuid,
    CONSTRAINT unique_aggregate_version UNIQUE (aggregate_id, event_version)
);
CREATE INDEX idx_event_store_type ON ms_framework.event_store (aggregate_type);
CREATE INDEX idx_event_store_created ON ms_framework.event_store (created_at);
CREATE INDEX idx_event_store_correlation ON ms_framework.event_store (correlation_id)
    WHERE correlation_id IS NOT NULL;

CREATE TABLE ms_framework.aggregate_snapshots (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    aggregate_id     uuid NOT NULL UNIQUE,
    aggregate_type   varchar(100) NOT NULL,
    snapshot_data    jsonb NOT NULL,
    snapshot_version integer NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_snapshots_version ON ms_framework.aggregate_snapshots (snapshot_version);
