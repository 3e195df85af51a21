-- The data layer's schemas, one per concern.
-- datakit:lock-timeout=5s
CREATE SCHEMA IF NOT EXISTS ms_framework;
CREATE SCHEMA IF NOT EXISTS ms_agents;
CREATE SCHEMA IF NOT EXISTS ms_messaging;
CREATE SCHEMA IF NOT EXISTS ms_audit;
CREATE SCHEMA IF NOT EXISTS ms_config;
CREATE SCHEMA IF NOT EXISTS ms_security;

-- Keeps updated_at current on tables that have one.
CREATE FUNCTION ms_framework.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;
