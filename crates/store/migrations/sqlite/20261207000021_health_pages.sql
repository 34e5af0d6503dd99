-- The pages of an AWS Health event split over several EventBridge messages: which have come,
-- and the affected resources they brought, so the ticket is decided on all of them.

ALTER TABLE correlations ADD COLUMN pages TEXT;
