DROP TABLE IF EXISTS feedback.outbox;
DROP TABLE IF EXISTS feedback.feedback;
