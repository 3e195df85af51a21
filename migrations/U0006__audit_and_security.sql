-- datakit:lock-timeout=5s
DROP TABLE ms_security.data_classification;
DROP TABLE ms_security.access_logs;
DROP TABLE ms_audit.data_modifications;
