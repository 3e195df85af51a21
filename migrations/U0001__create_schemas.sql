-- datakit:lock-timeout=5s
DROP FUNCTION ms_framework.touch_updated_at();
DROP SCHEMA ms_security;
DROP SCHEMA ms_config;
DROP SCHEMA ms_audit;
DROP SCHEMA ms_messaging;
DROP SCHEMA ms_agents;
DROP SCHEMA ms_framework;
