-- Agent instances and their lifecycle events.
-- datakit:lock-timeout=5s
CREATE TABLE ms_agents.agent_instances (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_type   varchar(100) NOT NULL,
    agent_id     varchar(255) NOT NULL,
    state        jsonb NOT NULL,
    status       varchar(50) NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT unique_agent_instance UNIQUE (agent_type, agent_id)
);
CREATE INDEX idx_agent_instances_status ON ms_agents.agent_instances (status);
CREATE INDEX idx_agent_instances_heartbeat ON ms_agents.agent_instances (heartbeat_at);
CREATE TRIGGER agent_instances_touch BEFORE UPDATE ON ms_agents.agent_instances
    FOR EACH ROW EXECUTE FUNCTION ms_framework.touch_updated_at();

CREATE TABLE ms_agents.agent_lifecycle_events (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_instance_id uuid NOT NULL REFERENCES ms_agents.agent_instances (id) ON DELETE CASCADE,
    event_type        varchar(100) NOT NULL,
    event_data        jsonb,
    "timestamp"       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_agent_lifecycle_instance ON ms_agents.agent_lifecycle_events (agent_instance_id);
CREATE INDEX idx_agent_lifecycle_timestamp ON ms_agents.agent_lifecycle_events ("timestamp");
CREATE INDEX idx_agent_lifecycle_type ON ms_agents.agent_lifecycle_events (event_type);
