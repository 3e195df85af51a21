-- Data-modification audit, access logs and data classification.
-- datakit:lock-timeout=5s
CREATE TABLE ms_audit.data_modifications (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_name  varchar(255) NOT NULL,
    record_id   varchar(255) NOT NULL,
    operation   varchar(10) NOT NULL CHECK (operation IN ('INSERT', 'UPDATE', 'DELETE')),
    old_values  jsonb,
    new_values  jsonb,
    modified_by varchar(255),
    modified_at timestamptz NOT NULL DEFAULT now(),
    audit_data  jsonb
);
CREATE INDEX idx_data_modifications_record ON ms_audit.data_modifications (table_name, record_id);
CREATE INDEX idx_data_modifications_at ON ms_audit.data_modifications (modified_at);

CREATE TABLE ms_security.access_logs (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id        varchar(255),
    agent_id       varchar(255),
    resource_type  varchar(100) NOT NULL,
    resource_id    varchar(255) NOT NULL,
    action         varchar(100) NOT NULL,
    access_granted boolean NOT NULL,
    ip_address     inet,
    user_agent     text,
    "timestamp"    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_access_logs_timestamp ON ms_security.access_logs ("timestamp");
CREATE INDEX idx_access_logs_resource ON ms_security.access_logs (resource_type, resource_id);
CREATE INDEX idx_access_logs_user ON ms_security.access_logs (user_id);

CREATE TABLE ms_security.data_classification (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    table_name          varchar(255) NOT NULL,
    column_name         varchar(255) NOT NULL,
    classification      varchar(50) NOT NULL CHECK (classification IN
                            ('PUBLIC', 'INTERNAL', 'CONFIDENTIAL', 'RESTRICTED')),
    encryption_required boolean NOT NULL DEFAULT false,
    retention_days      integer CHECK (retention_days > 0),
    access_controls     jsonb,
    CONSTRAINT unique_column_classification UNIQUE (table_name, column_name)
);
