-- Versioned agent states and the history of messages between agents.
-- datakit:lock-timeout=5s
CREATE TABLE ms_agents.agent_states (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id      varchar(255) NOT NULL,
    agent_type    varchar(100) NOT NULL,
    state_version integer NOT NULL DEFAULT 1 CHECK (state_version > 0),
    state_data    jsonb NOT NULL,
    metadata      jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    CONSTRAINT unique_agent_state UNIQUE (agent_id, state_version)
);
CREATE INDEX idx_agent_states_expires ON ms_agents.agent_states (expires_at)
    WHERE expires_at IS NOT NULL;
CREATE INDEX idx_agent_states_updated ON ms_agents.agent_states (updated_at);
CREATE TRIGGER agent_states_touch BEFORE UPDATE ON ms_agents.agent_states
    FOR EACH ROW EXECUTE FUNCTION ms_framework.touch_updated_at();

CREATE TABLE ms_agents.agent_communications (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    source_agent_id varchar(255) NOT NULL,
    target_agent_id varchar(255),
    message_type    varchar(100) NOT NULL,
    message_data    jsonb NOT NULL,
    status          varchar(20) NOT NULL DEFAULT 'SENT',
    sent_at         timestamptz NOT NULL DEFAULT now(),
    received_at     timestamptz,
    response_data   jsonb
);
CREATE INDEX idx_agent_comm_source ON ms_agents.agent_communications (source_agent_id);
CREATE INDEX idx_agent_comm_target ON ms_agents.agent_communications (target_agent_id);
CREATE INDEX idx_agent_comm_sent ON ms_agents.agent_communications (sent_at);
