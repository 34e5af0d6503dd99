-- Receipts are purged by age (ingest.receipt_retention_days): found by when they came.
CREATE INDEX signal_receipts_received ON signal_receipts (received_at);
