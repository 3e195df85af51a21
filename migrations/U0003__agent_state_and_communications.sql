-- datakit:lock-timeout=5s
DROP TABLE ms_agents.agent_communications;
DROP TABLE ms_agents.agent_states;
