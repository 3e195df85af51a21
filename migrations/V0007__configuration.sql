-- Versioned configuration: each change of a key is a new row; the newest is current.
-- datakit:lock-timeout=5s
CREATE TABLE ms_config.configurations (
    config_key  varchar(255) NOT NULL,
    version     integer NOT NULL CHECK (version > 0),
    data        jsonb NOT NULL,
    environment varchar(50) NOT NULL DEFAULT 'default',
    created_by  varchar(255) NOT NULL DEFAULT current_user,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (config_key, environment, version)
);
CREATE INDEX idx_configurations_created ON ms_config.configurations (created_at);

CREATE VIEW ms_config.current_configurations AS
SELECT DISTINCT ON (config_key, environment) config_key, environment, version, data, created_at
  FROM ms_config.configurations
 ORDER BY config_key, environment, version DESC;

-- Stores a new version of a key and returns its number.
CREATE FUNCTION ms_config.put_configuration(p_key text, p_data jsonb,
                                            p_environment text DEFAULT 'default')
RETURNS integer LANGUAGE sql
BEGIN ATOMIC
    INSERT INTO ms_config.configurations (config_key, environment, version, data)
    SELECT p_key, p_environment, coalesce(max(version), 0) + 1, p_data
      FROM ms_config.configurations
     WHERE config_key = p_key AND environment = p_environment
    RETURNING version;
END;
