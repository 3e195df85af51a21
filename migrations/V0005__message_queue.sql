-- The persistent message queue (status, priority, scheduling, retries) and dead letters.
-- datakit:lock-timeout=5s
CREATE TABLE ms_messaging.message_queue (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    queue_name    varchar(255) NOT NULL,
    message_id    varchar(255) NOT NULL,
    payload       jsonb NOT NULL,
    headers       jsonb,
    priority      integer NOT NULL DEFAULT 5,
    created_at    timestamptz NOT NULL DEFAULT now(),
    scheduled_at  timestamptz NOT NULL DEFAULT now(),
    processed_at  timestamptz,
    status        varchar(20) NOT NULL DEFAULT 'PENDING' CHECK (status IN
                      ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'DEAD_LETTER')),
    retry_count   integer NOT NULL DEFAULT 0,
    max_retries   integer NOT NULL DEFAULT 3,
    error_message text,
    CONSTRAINT unique_queue_message UNIQUE (queue_name, message_id)
);
CREATE INDEX idx_message_queue_status ON ms_messaging.message_queue (status);
CREATE INDEX idx_message_queue_scheduled ON ms_messaging.message_queue (scheduled_at);
CREATE INDEX idx_message_queue_priority ON ms_messaging.message_queue (priority DESC);
-- What a consumer polls: ready messages of a queue, most urgent first.
CREATE INDEX idx_message_queue_ready ON ms_messaging.message_queue
    (queue_name, priority DESC, scheduled_at) WHERE status = 'PENDING';

CREATE TABLE ms_messaging.dead_letter_queue (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    original_message_id uuid,
    queue_name          varchar(255) NOT NULL,
    payload             jsonb NOT NULL,
    headers             jsonb,
    failure_reason      text,
    failed_at           timestamptz NOT NULL DEFAULT now(),
    retry_attempts      integer
);
CREATE INDEX idx_dlq_queue_name ON ms_messaging.dead_letter_queue (queue_name);
CREATE INDEX idx_dlq_failed_at ON ms_messaging.dead_letter_queue (failed_at);
