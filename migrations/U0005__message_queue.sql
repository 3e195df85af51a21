-- datakit:lock-timeout=5s
DROP TABLE ms_messaging.dead_letter_queue;
DROP TABLE ms_messaging.message_queue;
