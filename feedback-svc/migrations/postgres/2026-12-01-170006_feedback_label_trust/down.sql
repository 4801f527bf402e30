DROP TABLE IF EXISTS feedback.label_exclusions;
ALTER TABLE feedback.feedback DROP COLUMN IF EXISTS writer_xid;
ALTER TABLE feedback.feedback DROP COLUMN IF EXISTS trusted;
