-- Sign-ons in progress are forgotten by age and counted at each start: find old ones fast.

CREATE INDEX sso_logins_created ON sso_logins (created_at);
