-- datakit:lock-timeout=5s
DROP FUNCTION ms_config.put_configuration(text, jsonb, text);
DROP VIEW ms_config.current_configurations;
DROP TABLE ms_config.configurations;
