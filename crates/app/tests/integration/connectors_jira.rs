//! The Jira Cloud connector against the strict local stand-in (tests/standins/jira.py).
