-- The entries that change a ticket's status, by ticket: the clock watcher reads a ticket's
-- status history at every look, and a ticket kept up to date by a monitor gathers thousands
-- of other entries (one per occurrence) that it need not read. The condition is the one
-- the watcher's query uses, so both databases take this index for it.
CREATE INDEX audit_log_status ON audit_log (ticket_id, seq) WHERE changes LIKE '%"status"%';
