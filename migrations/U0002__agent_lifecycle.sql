-- datakit:lock-timeout=5s
DROP TABLE ms_agents.agent_lifecycle_events;
DROP TABLE ms_agents.agent_instances;
